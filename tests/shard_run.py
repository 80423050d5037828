"""Helper of tests/test_shard.py: one fine-tuning of a small random-weight BERT classifier on Rotten Tomatoes reviews, sharded across the
processes `torchrun` started (modes `sharded`, `stop`, `resume`), or in one process over the batches the sharded ranks saw (`reference`); in fp32, or in the
precision FTBOOK_SHARD_PRECISION names (bf16).

    torchrun --nproc_per_node 2 tests/shard_run.py sharded MODEL OUT    # writes OUT/sharded.json, OUT/weights.safetensors
    python tests/shard_run.py reference MODEL OUT                         # reads OUT/sharded.json, writes OUT/reference.safetensors
"""
import json, os, sys
from pathlib import Path
import torch
from fastai.callback.core import Callback, CancelFitException
from fastai.torch_core import set_seed
from safetensors.torch import load_file, save_file
import ftbook.cli  # registers the task families
from ftbook.checkpoint import Checkpointer
from ftbook.core import rotten_tomatoes
from ftbook.learner import task_family
from ftbook.shard import ShardedTrainer, gathered_model, sharding_summary

BS, STOP_AT = 8, 5
PRECISION = os.environ.get('FTBOOK_SHARD_PRECISION', 'fp32')  # bf16: autocast on the CPU that computes it, or on CUDA
# five groups (embeddings, three blocks, head) at discriminative rates: the head trains from the start, the top two blocks join at step 3,
# the lowest block at step 10; the embeddings never train. Step 5, where `stop` stops, is in the middle of the second phase.
PHASES = [dict(groups=[-1], step=0), dict(groups=[-2, -3], step=3), dict(groups=[-4], step=10)]
NEVER_THAWED = ('embeddings.',)

def learner(model, bs):
    set_seed(0, reproducible=True)
    dls = task_family('classify').dataloaders(rotten_tomatoes().sample(160, random_state=0), model, 'text', 'category', None, None, None,
                                              bs=bs, valid_pct=0.25, seed=0, limit=None, max_len=32)
    set_seed(0, reproducible=True)
    return task_family('classify').learner(dls, model, pretrained=True, mixed_precision=PRECISION)

def fit(learn, cbs=()): learn.fit_with_strategy('discr', 2, 1e-3, 0.5, phases=PHASES, cbs=list(cbs))

class StopAfter(Callback):
    "Stop the fit after optimizer step `step` (as a crash would, after the Checkpointer saved it)"
    order = Checkpointer.order + 1
    def __init__(self, step): self.step = step
    def after_batch(self):
        if self.training and self.train_iter == self.step: raise CancelFitException

def sharded(model, out, mode):
    rank, out = torch.distributed.get_rank() if torch.distributed.is_initialized() else int(os.environ['RANK']), Path(out)
    learn = learner(model, BS)
    init = {n: p.detach().clone() for n, p in learn.model.named_parameters()}
    cbs = [] if mode == 'sharded' else [Checkpointer(out/'checkpoints', every=STOP_AT, resume=mode == 'resume')]
    if mode == 'stop': cbs.append(StopAfter(STOP_AT))
    with learn.sharded():
        fit(learn, cbs)
        seen = next(c for c in learn.cbs if isinstance(c, ShardedTrainer)).seen
    summary, everyone = sharding_summary(learn), [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(everyone, seen)
    with_state = {n for n, p in learn.model.named_parameters() if p in learn.opt.opt.state}
    frozen = [n for n in init if any(k in n for k in NEVER_THAWED)]
    # every rank gathers the frozen weights from all shards: the same on all, and what they were before training
    frozen_ok = all(torch.equal(dict(learn.model.named_parameters())[n].full_tensor(), init[n]) for n in frozen)
    full = gathered_model(learn)
    oks = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(oks, frozen_ok)
    if rank == 0:
        save_file({n: p.detach().contiguous() for n, p in full.state_dict().items()}, str(out/f'{mode}.safetensors'))
        if mode == 'sharded': save_file({n: p.contiguous() for n, p in init.items()}, str(out/'init.safetensors'))
        info = dict(seen=everyone, summary=summary, frozen=frozen, frozen_unchanged_on_each_rank=oks,
                    frozen_with_state=sorted(set(frozen) & with_state), n_with_state=len(with_state), n_params=len(init),
                    recorder=[[float(v) for v in r[:2]] for r in learn.recorder.values])
        (out/f'{mode}.json').write_text(json.dumps(info))
    if mode != 'stop': learn.export_pretrained(out/f'{mode}-model')  # every process gathers its shards, rank 0 writes

def reference(model, out):
    "One process, the same model, over the union of the ranks' batches, step by step"
    out = Path(out)
    info = json.loads((out/'sharded.json').read_text())
    seen, ranks = info['seen'], len(info['seen'])
    steps = len(seen[0][0]) // BS + bool(len(seen[0][0]) % BS)
    orders = iter([[i for k in range(steps) for r in range(ranks) for i in seen[r][e][k * BS:(k + 1) * BS]] for e in range(len(seen[0]))])
    learn = learner(model, BS * ranks)
    learn.dls.train = learn.dls.train.new(shuffle=False, get_idxs=lambda: next(orders))
    with learn.no_bar(), learn.no_logging(): fit(learn)
    save_file({n: p.detach().contiguous() for n, p in learn.model.state_dict().items()}, str(out/'reference.safetensors'))

if __name__ == '__main__':
    mode, model, out = sys.argv[1:4]
    reference(model, out) if mode == 'reference' else sharded(model, out, mode)
