"""Memory per process of a sharded fine-tuning run against a replicated one (data parallelism), on a Llama-shaped decoder with random weights.

    python tools/shard_memory.py make MODEL                                   # the random-weight model folder (once)
    torchrun --nproc_per_node 2 tools/shard_memory.py sharded MODEL OUT.json   # or: replicated
    python tools/shard_memory.py table OUT_SHARDED.json OUT_REPLICATED.json    # both side by side

Measured per process over a short fit (4 optimizer steps of a classifier on Rotten Tomatoes reviews), after the model is loaded and
placed: the bytes of the parameters, gradients and optimizer state it holds (exact, from the tensors), the resident memory at the start of
the fit (freed heap handed back first) and its peak during the fit (Linux VmHWM, reset at the start), and on a GPU torch's peak allocated memory. The weights are random
(no 1B-class checkpoint is available offline); memory does not depend on their values.
"""
import gc, json, os, sys
from pathlib import Path
import torch
from fastai.callback.core import Callback

def make(folder):
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification
    from ftbook.core import resource_path
    tok = AutoTokenizer.from_pretrained(resource_path('minilm'))
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=tok.vocab_size, hidden_size=768, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=12,
                         num_key_value_heads=4, max_position_embeddings=256, pad_token_id=tok.pad_token_id, num_labels=2)
    LlamaForSequenceClassification(config).save_pretrained(folder)
    tok.save_pretrained(folder)

def _local_bytes(tensors) -> int:
    return sum((t.to_local() if hasattr(t, 'to_local') else t).numel() * t.element_size() for t in tensors if t is not None)

class HeldBytes(Callback):
    "Before each optimizer step: the bytes of parameters, gradients and optimizer state this process holds (the most seen)"
    order = 99
    def before_fit(self): self.held = dict(params=0, grads=0, optimizer_state=0)
    def before_step(self):
        ps = list(self.model.parameters())
        state = [v for s in self.opt.opt.state.values() for v in s.values() if torch.is_tensor(v) and v.ndim > 0]
        for k, v in dict(params=_local_bytes(ps), grads=_local_bytes(p.grad for p in ps), optimizer_state=_local_bytes(state)).items():
            self.held[k] = max(self.held[k], v)

def _status_mb(field:str) -> float:
    "A memory figure of this process from Linux's /proc/self/status (VmRSS: now, VmHWM: the peak since the last reset), in MiB"
    return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith(field + ':')) / 1024

def _reset_peak() -> float:
    "Hand freed heap back to the OS (the full model loaded before sharding), reset the peak resident size, return the resident size now"
    import ctypes
    gc.collect()
    ctypes.CDLL('libc.so.6').malloc_trim(0)
    Path('/proc/self/clear_refs').write_text('5')  # Linux: VmHWM := VmRSS
    return _status_mb('VmRSS')

def measure(mode, folder, out):
    import ftbook.cli  # the task families
    from fastai.torch_core import set_seed
    from ftbook.core import rotten_tomatoes
    from ftbook.learner import task_family
    set_seed(0, reproducible=True)
    family = task_family('classify')
    dls = family.dataloaders(rotten_tomatoes().sample(80, random_state=0), folder, 'text', 'category', None, None, None,
                             bs=8, valid_pct=0.2, seed=0, limit=None, max_len=64)
    learn = family.learner(dls, folder, pretrained=True, mixed_precision=False)
    n_params = sum(p.numel() for p in learn.model.parameters())
    held = HeldBytes()
    context = learn.sharded() if mode == 'sharded' else learn.data_parallel(find_unused_parameters=False)
    with context, learn.no_bar(), learn.no_logging():
        if mode == 'sharded': learn._shard_once()  # shard before measuring: the load of the full model is not the training's memory
        rss_start = _reset_peak()
        if torch.cuda.is_available(): torch.cuda.reset_peak_memory_stats()
        learn.fit(1, 1e-4, cbs=[held])
    mine = dict(rank=torch.distributed.get_rank(), rss_start_mb=rss_start, rss_peak_mb=_status_mb('VmHWM'), **{f'{k}_mb': v / 2**20 for k, v in held.held.items()},
                cuda_peak_mb=torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None)
    everyone = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(everyone, mine)
    if torch.distributed.get_rank() == 0:
        Path(out).write_text(json.dumps(dict(mode=mode, n_params=n_params, processes=len(everyone), device=str(dls.device),
                                             per_process=everyone), indent=1))

def table(*files):
    for f in files:
        r = json.loads(Path(f).read_text())
        for p in r['per_process']:
            held = p['params_mb'] + p['grads_mb'] + p['optimizer_state_mb']
            print(f"{r['mode']:<10} rank {p['rank']}: params {p['params_mb']:7.1f} MiB, grads {p['grads_mb']:7.1f}, Adam state {p['optimizer_state_mb']:7.1f}"
                  f" = {held:7.1f} MiB held; resident {p['rss_start_mb']:7.1f} MiB at the start of the fit, {p['rss_peak_mb']:7.1f} at its peak"
                  f" (+{p['rss_peak_mb'] - p['rss_start_mb']:.1f})")

if __name__ == '__main__':
    cmd = sys.argv[1]
    if cmd == 'make': make(sys.argv[2])
    elif cmd == 'table': table(*sys.argv[2:])
    else: measure(cmd, sys.argv[2], sys.argv[3])
