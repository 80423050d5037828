"Build the wheel from a copy of the repository and check what a `pip install ftbook` user gets."
import shutil, subprocess, sys, zipfile
from pathlib import Path
from conftest import ROOT

def test_wheel_contents(tmp_path):
    src = tmp_path/'src'
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns('.venv', '.git', 'build', 'dist', '*.egg-info', '__pycache__',
                                                              'models', '_docs', '_proc'))
    res = subprocess.run([sys.executable, '-m', 'build', '--wheel', '--no-isolation', '--outdir', str(tmp_path/'dist')],
                         cwd=src, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    wheel, = (tmp_path/'dist').glob('ftbook-*.whl')
    names = zipfile.ZipFile(wheel).namelist()
    for mod in ('__init__', '_modidx', 'core', 'data', 'splitter', 'learner', 'schedule', 'lora', 'lm', 'distributed', 'cli', 'ablation', 'bench'): assert f'ftbook/{mod}.py' in names
    assert not [n for n in names if n.startswith(('nbs/', 'tests/'))]
    meta = {n.split('/')[-1]: zipfile.ZipFile(wheel).read(n).decode() for n in names if '.dist-info/' in n}
    assert 'ftbook-finetune = ftbook.cli:ftbook_finetune' in meta['entry_points.txt']
    assert 'ftbook-predict = ftbook.cli:ftbook_predict' in meta['entry_points.txt']
    assert 'ftbook-ablation = ftbook.ablation:ftbook_ablation' in meta['entry_points.txt']
    assert 'ftbook-bench = ftbook.bench:ftbook_bench' in meta['entry_points.txt']
    for req in ('fastai', 'transformers', 'torch', 'datasets', 'accelerate', 'peft', 'gguf'): assert f'Requires-Dist: {req}' in meta['METADATA']
    version = [l for l in (ROOT/'settings.ini').read_text().splitlines() if l.startswith('version')][0].split('=')[1].strip()
    assert wheel.name.startswith(f'ftbook-{version}-')
