"The notebooks are the source of truth: exporting them again must reproduce ftbook/ exactly."
import shutil, subprocess, sys
from pathlib import Path
from conftest import ROOT, BIN

def test_nbdev_export_changes_nothing(tmp_path):
    for name in ('nbs', 'ftbook'): shutil.copytree(ROOT/name, tmp_path/name, ignore=shutil.ignore_patterns('__pycache__'))
    for name in ('pyproject.toml', 'settings.ini'): shutil.copy(ROOT/name, tmp_path/name)
    res = subprocess.run([str(BIN/'nbdev-export')], cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    exported = sorted(p.relative_to(tmp_path) for p in (tmp_path/'ftbook').glob('*.py'))
    committed = sorted(p.relative_to(ROOT) for p in (ROOT/'ftbook').glob('*.py'))
    assert exported == committed
    changed = [str(p) for p in exported if (tmp_path/p).read_text() != (ROOT/p).read_text()]
    assert not changed, f'ftbook/ differs from what nbs/ exports: {changed}; edit the notebooks and run nbdev-export'

def test_notebooks_are_clean(tmp_path):
    "nbdev-clean leaves committed notebooks unchanged (no execution counts or noise metadata)"
    shutil.copytree(ROOT/'nbs', tmp_path/'nbs')
    shutil.copy(ROOT/'pyproject.toml', tmp_path/'pyproject.toml')
    res = subprocess.run([str(BIN/'nbdev-clean')], cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    changed = [p.name for p in (ROOT/'nbs').glob('*.ipynb') if (tmp_path/'nbs'/p.name).read_text() != p.read_text()]
    assert not changed, f'run nbdev-clean: these notebooks carry noise metadata: {changed}'

def test_readme_is_rendered_from_index():
    res = subprocess.run([sys.executable, str(ROOT/'tools'/'render_readme.py'), '--check'])
    assert res.returncode == 0, 'README.md is out of date with nbs/index.ipynb: run `make readme`'
