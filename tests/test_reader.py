"""The book as a reader runs it: notebooks executed top to bottom in a real Jupyter kernel (nbclient starts the project
environment's ipykernel, as JupyterLab does), separately from nbdev's test runner. Cells flagged `slow` are the reader's choice
(the README says how long they take) and are left out here, as in `make test`; everything else runs in order, widgets included."""
import re
import pytest
from conftest import ROOT

pytestmark = pytest.mark.xdist_group('reader')

READER_PATH = ['book/01_transfer_learning.ipynb', '04_schedule.ipynb']  # the first chapter, and the notebook with the schedule widget

def _reader_cells(nb):
    "The cells a reader runs: all of them but those flagged slow or cuda, and the closing nbdev_export() (it rewrites ftbook/ while tests run)"
    keep = lambda c: c.cell_type != 'code' or not (re.search(r'^#\|\s*(slow|cuda)\s*$', c.source, re.M) or 'nbdev_export()' in c.source)
    return [c for c in nb.cells if keep(c)]

@pytest.mark.parametrize('name', READER_PATH)
def test_notebook_runs_in_a_jupyter_kernel(name, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient
    monkeypatch.setenv('TMPDIR', str(tmp_path))  # the kernel inherits it: models and checkpoints the notebook writes go there
    path = ROOT/'nbs'/name
    nb = nbformat.read(path, as_version=4)
    nb.cells = _reader_cells(nb)
    NotebookClient(nb, timeout=900, kernel_name='python3', resources={'metadata': {'path': str(path.parent)}}).execute()
    errors = [o for c in nb.cells for o in c.get('outputs', []) if o.output_type == 'error']
    assert not errors, errors[0]
    shown = [c for c in nb.cells if c.cell_type == 'code' and any(o.output_type in ('stream', 'display_data', 'execute_result') for o in c.outputs)]
    assert len(shown) >= 5, f'{name}: only {len(shown)} cells showed output'
    if name == '04_schedule.ipynb':  # the widget was shown: its view is in the outputs
        assert any('application/vnd.jupyter.widget-view+json' in o.get('data', {}) for c in nb.cells for o in c.get('outputs', [])), 'schedule_explorer() showed no widget'
