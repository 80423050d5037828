"""Every notebook in nbs/ is a test: one pytest case per notebook, run by nbdev's own `test_nb`.

Cells flagged with a `tst_flags` flag from pyproject.toml (`notest`, `slow`, `cuda`) are skipped unless named in
the FTBOOK_TEST_FLAGS environment variable (`make test-slow` sets `slow`); `cuda` cells run whenever a GPU is present.
"""
import os, shutil, tempfile
import nbdev
import pytest
import torch
from nbdev.config import get_config
from nbdev.test import test_nb as run_notebook
from conftest import ROOT

CFG = get_config(ROOT)
NOTEBOOKS = sorted(p for p in CFG.nbs_path.rglob('*.ipynb')  # the library's notebooks and the book's chapters (nbs/book)
                   if not any(part.startswith(('_', '.')) for part in p.relative_to(CFG.nbs_path).parts))

def _flags():
    skip = CFG.tst_flags.split() if isinstance(CFG.tst_flags, str) else list(CFG.tst_flags)
    force = os.environ.get('FTBOOK_TEST_FLAGS', '').split() + (['cuda'] if torch.cuda.is_available() else [])
    return skip, force

def test_there_are_notebooks(): assert len(NOTEBOOKS) >= 20, NOTEBOOKS  # 11 of the library, 9 chapters

def _release_notebook_memory():
    """Hand freed heap back to the OS after each notebook, so two workers' RSS does not add up past RAM. The notebook's namespace itself
    must stay: its `@patch`ed methods live on fastai's classes with that namespace as their globals (resetting the shell broke later
    notebooks with NameErrors)"""
    import ctypes, gc
    gc.collect()
    try: ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError): pass  # not glibc

@pytest.mark.parametrize('nb', NOTEBOOKS, ids=[str(p.relative_to(CFG.nbs_path)) for p in NOTEBOOKS])
def test_notebook(nb, tmp_path, monkeypatch):
    skip, force = _flags()
    # the notebooks' temporary folders (checkpoints, exported models: gigabytes for some) go here, and are removed with it
    monkeypatch.setattr(tempfile, 'tempdir', str(tmp_path))
    monkeypatch.setenv('TMPDIR', str(tmp_path))
    # each notebook ends by exporting the package; under test that would rewrite ftbook/*.py while the other worker imports it
    # (test_export checks the export separately)
    monkeypatch.setattr(nbdev, 'nbdev_export', lambda *args, **kwargs: None)
    try: passed, seconds = run_notebook(nb, skip_flags=skip, force_flags=force, basepath=ROOT)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)
        _release_notebook_memory()
    assert passed, f'{nb.name} failed after {seconds:.0f} s: its traceback is in the captured stderr above'
