"""Render README.md from nbs/index.ipynb without Quarto (which `nbdev-readme` needs and this machine cannot install).

Markdown cells are copied, with links to notebooks made relative to the repository root; code cells become ```python
blocks without their `#|` directives; cells flagged `#| hide` are left out, and cells flagged `#| echo: false` show
their saved outputs only: Markdown as it is, plots as PNG files in nbs/images/ linked from the README.
Run `make readme` after editing (and running) nbs/index.ipynb; tests/test_export.py checks it is up to date.
"""
import base64, json, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = Path('nbs')/'images'

def _root_links(md:str) -> str:
    "Relative links to notebooks point into nbs/ from the repository root"
    return re.sub(r'\]\((?!https?:|/|#)([^)\s]+\.ipynb(?:#[^)]*)?)\)', r'](nbs/\1)', md)

def render(nb_path) -> tuple:
    "README text and `{relative path: PNG bytes}` of its images"
    parts, images = [], {}
    for cell in json.loads(Path(nb_path).read_text(encoding='utf-8'))['cells']:
        src = ''.join(cell['source'])
        lines = src.splitlines()
        directives = [l.strip() for l in lines if l.strip().startswith('#|')]
        if cell['cell_type'] == 'markdown': parts.append(_root_links(src)); continue
        if any(d.replace(' ', '') == '#|hide' for d in directives): continue
        if any(d.replace(' ', '') == '#|echo:false' for d in directives):
            for out in cell.get('outputs', []):
                data = out.get('data', {})
                if 'image/png' in data:
                    path = IMAGES/f'readme_{len(images) + 1}.png'
                    images[path.as_posix()] = base64.b64decode(data['image/png'])
                    parts.append(f'![plot]({path.as_posix()})')
                elif 'text/markdown' in data: parts.append(''.join(data['text/markdown']))
            continue
        parts.append('```python\n' + '\n'.join(l for l in lines if not l.startswith('#|')) + '\n```')
    return '\n\n'.join(parts) + '\n', images

if __name__ == '__main__':
    text, images = render(ROOT/'nbs'/'index.ipynb')
    if '--check' in sys.argv:
        same = (ROOT/'README.md').read_text(encoding='utf-8') == text and \
               all((ROOT/p).exists() and (ROOT/p).read_bytes() == b for p, b in images.items())
        sys.exit(0 if same else 1)
    for p, b in images.items():
        (ROOT/p).parent.mkdir(parents=True, exist_ok=True)
        (ROOT/p).write_bytes(b)
    (ROOT/'README.md').write_text(text, encoding='utf-8')
