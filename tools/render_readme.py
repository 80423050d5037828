"""Render README.md from nbs/index.ipynb without Quarto (which `nbdev-readme` needs and this machine cannot install).

Markdown cells are copied as they are; code cells become ```python blocks without their `#|` directives; cells
flagged `#| hide` are left out. Run `make readme` after editing nbs/index.ipynb; tests/test_export.py checks it.
"""
import json, sys
from pathlib import Path

def render(nb_path) -> str:
    parts = []
    for cell in json.loads(Path(nb_path).read_text(encoding='utf-8'))['cells']:
        src = ''.join(cell['source'])
        lines = src.splitlines()
        if cell['cell_type'] == 'markdown': parts.append(src)
        elif not any(l.strip() in ('#| hide', '#|hide') for l in lines):
            parts.append('```python\n' + '\n'.join(l for l in lines if not l.startswith('#|')) + '\n```')
    return '\n\n'.join(parts) + '\n'

if __name__ == '__main__':
    root = Path(__file__).resolve().parents[1]
    out = render(root/'nbs'/'index.ipynb')
    if '--check' in sys.argv: sys.exit(0 if (root/'README.md').read_text(encoding='utf-8') == out else 1)
    (root/'README.md').write_text(out, encoding='utf-8')
