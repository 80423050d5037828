#!/bin/bash
# The GPU measurements of issue 17 in one device call (each part in its own process, under its own time limit, so that
# one failure leaves the others' results). Prepare `.gpu/` first: `.venv/bin/python tools/gpu_payload.py`; then run this
# on the GPU machine with `.gpu` carried. Check it here first: `TINY=--tiny tools/gpu_measure.sh` (toy sizes, CPU).
set -u
if [ -z "${TINY:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD/.gpu/site:$PWD
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv,noheader
  PY=python3
else
  export PYTHONPATH=$PWD/.gpu/site:$PWD
  PY=.venv/bin/python
fi
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false FTBOOK_CACHE=$PWD/.gpu/cache
export OUT=${OUT:-/tmp/gpu_out}; mkdir -p $OUT
$PY -c "import torch, transformers, fastai, ftbook.bench; print('torch', torch.__version__, 'transformers', transformers.__version__, 'fastai', fastai.__version__, 'cuda', torch.cuda.is_available())" || exit 1
for spec in ${PARTS:-fused:45 minilm:180 lm:210 memory:120}; do
  part=${spec%%:*}; limit=${spec##*:}
  echo "=== $part (limit ${limit}s) $(date +%T)"
  timeout $limit $PY tools/gpu_measure.py $part ${TINY:-} 2>&1 | grep -v -E "Loading weights|it/s\]|FutureWarning|warnings.warn" | tail -40
  echo "=== $part exit ${PIPESTATUS[0]} $(date +%T)"
done
