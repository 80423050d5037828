"""One part of the GPU measurements (issue 17), run on a lent GPU machine by tools/gpu_measure.sh.

python tools/gpu_measure.py PART [--tiny]     PART: fused | minilm | lm | memory
Writes $OUT/gpu_PART.json (or ./gpu_PART.json) and prints a short table. `--tiny` runs the same code at toy sizes
(how it is checked on a CPU before device time is spent).
"""
import json, os, sys, time
from pathlib import Path
import pandas as pd
import torch
pd.set_option('display.width', 250); pd.set_option('display.max_columns', 20)

part, tiny = sys.argv[1], '--tiny' in sys.argv
root = Path(__file__).resolve().parents[1]
smollm2 = root/'.gpu'/'cache'/'smollm2-135m-instruct'  # config and tokenizer (tools/gpu_payload.py)
out = Path(os.environ.get('OUT', '.'))/f'gpu_{part}.json'
start = time.time()

if part == 'fused':  # the fused loss on the GPU against the plain loss, bf16 autocast, SmolLM2's sizes
    import torch.nn.functional as F
    from ftbook.lm import fused_linear_cross_entropy, liger_available
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    n, d, v = (64, 32, 1000) if tiny else (16 * 1024, 576, 49152)
    torch.manual_seed(0)
    h = torch.randn(n, d, device=device, requires_grad=True)
    w = (torch.randn(v, d, device=device) * 0.05).requires_grad_()
    t = torch.randint(0, v, (n,), device=device); t[::7] = -100
    ref_loss = F.cross_entropy((h.double() @ w.double().T), t, ignore_index=-100)
    ref = torch.autograd.grad(ref_loss, (h, w))
    rows = []
    for name, kw in [('chunked (ours)', dict(use_liger=False)), ('liger', dict(use_liger=True))]:
        if name == 'liger' and not (device == 'cuda' and liger_available()): continue
        with torch.autocast(device, dtype=torch.bfloat16, enabled=device == 'cuda'):
            loss = fused_linear_cross_entropy(h, w, t, **kw)
        grads = torch.autograd.grad(loss, (h, w))
        rows.append(dict(loss=name, loss_rel_err=abs(loss.item() - ref_loss.item()) / ref_loss.item(),
                         grad_h_rel_err=((grads[0] - ref[0]).norm() / ref[0].norm()).item(),
                         grad_w_rel_err=((grads[1] - ref[1]).norm() / ref[1].norm()).item()))
    res = dict(device=torch.cuda.get_device_name() if device == 'cuda' else 'cpu', rows=rows)
    print(pd.DataFrame(rows).to_string())
    assert all(r['loss_rel_err'] < 1e-2 and r['grad_h_rel_err'] < 2e-2 and r['grad_w_rel_err'] < 2e-2 for r in rows), rows
elif part == 'minilm':
    from ftbook.bench import run_bench, format_table
    sizes = dict(limit=300, epochs=1, bs=16, max_len=32) if tiny else dict(epochs=2)
    res = run_bench(['ftbook-full', 'ftbook-default', 'plain-same', 'trainer'], **sizes)
    print(format_table(res))
elif part == 'lm':
    from ftbook.bench import run_lm_bench
    import ftbook.lm
    if torch.cuda.is_available() and ftbook.lm.liger_available():
        try:  # Liger's kernels must run with this machine's Triton; if they cannot, the fused variants use our chunked loss
            x = torch.randn(8, 16, device='cuda', requires_grad=True)
            ftbook.lm.fused_linear_cross_entropy(x, torch.randn(32, 16, device='cuda'), torch.arange(8, device='cuda')).backward()
        except Exception as e:
            print('liger-kernel failed here, the fused loss falls back to the chunked PyTorch version:', repr(e)[:300])
            ftbook.lm.liger_available = lambda: False
    sizes = dict(block_size=32, bs=2, steps=2, warmup=1) if tiny else dict(block_size=1024, bs=32, steps=20, warmup=5)
    variants = ['eager, full logits', 'eager, fused loss'] + ([] if tiny else ['compiled, fused loss'])  # compiling on a CPU takes minutes
    res = run_lm_bench(str(smollm2), random_init=True, variants=variants, **sizes)
    print(pd.DataFrame(res['rows']).set_index(['variant', 'contender']).to_string())
elif part == 'memory':
    from ftbook.bench import run_memory_bench
    from transformers import LlamaConfig
    sizes = (dict(config=LlamaConfig(vocab_size=49152, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                                     num_key_value_heads=2, tie_word_embeddings=True), block_size=32, bs=2, steps=2, warmup=1)
             if tiny else dict(block_size=1024, bs=8, steps=8, warmup=3))
    res = run_memory_bench(tokenizer=str(smollm2), **sizes)
    print(pd.DataFrame(res['rows']).set_index(['recipe', 'contender']).to_string())
else: sys.exit(f'unknown part {part!r}: fused, minilm, lm or memory')

res['seconds'] = round(time.time() - start, 1)
out.write_text(json.dumps(res, indent=2, default=str))
print(f'{part}: {res["seconds"]} s, written to {out}', flush=True)
