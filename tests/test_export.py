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

def test_export_cells_are_readable():
    "A notebook reads one piece at a time: no export cell much over 60 lines (the house rule; a long function or class is split with @patch)"
    import json
    long = []
    for nb in sorted((ROOT/'nbs').glob('*.ipynb')):
        for cell in json.loads(nb.read_text())['cells']:
            src = ''.join(cell['source'])
            if cell['cell_type'] == 'code' and src.startswith('#| export') and src.count('\n') + 1 > 72:
                long.append(f"{nb.name} {cell.get('id')} ({src.count(chr(10)) + 1} lines)")
    assert not long, f'export cells to split: {long}'

def test_the_commands_do_not_branch_on_tasks():
    "finetune and the commands look task families up in the task table; no task's name appears in their code"
    import ast, re
    from ftbook import cli
    tree = ast.parse(Path(cli.__file__).read_text())
    names = ('finetune', 'ftbook_finetune', 'ftbook_predict', '_task_data', '_make_learner', '_final_scores', '_export_task', '_summary',
             '_command_settings', '_family_columns', '_train', '_report', '_callbacks')
    found = {n.name: ast.get_source_segment(Path(cli.__file__).read_text(), n) for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name in names}
    assert set(found) == set(names), set(names) - set(found)
    for name, code in found.items():
        body = code.split('"', 2)[-1] if code.count('"') >= 2 else code  # past the docstring
        hits = re.findall(r"'(classify|multilabel|regression|tag|seq2seq|sft|qa)'", body)
        assert not hits, (name, hits)
