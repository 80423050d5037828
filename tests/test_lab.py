"""The reader's path in a real browser: JupyterLab (what `make lab` opens) started on loopback, driven in headless Chromium.

A reader opens chapter 1, runs Run > Run All Cells and reads the outputs; then opens the schedule notebook, runs it down to
`schedule_explorer()` (Run > Run All Above Selected Cell, then the widget's cell: the cells below it are `slow` measurements
that take many minutes) and plays with the widget. This test does the same through JupyterLab's menus, checks what the
notebook shows (outputs, no error, the widget, a plot that redraws when a slider moves) and what JupyterLab saves, and keeps
screenshots in `_lab_screenshots/`. The notebooks are copies in a temporary folder, so the repository's stay as committed.
Needs Debian's chromium and chromium-driver (`.ci/run` installs them); without them the test is skipped, not passed.
"""
import os, secrets, shutil, socket, subprocess, time, urllib.request
from pathlib import Path
import pytest
from conftest import ROOT, BIN, headless_chromium, needs_browser

pytestmark = [needs_browser,
              pytest.mark.xdist_group('lab')]  # one worker: one JupyterLab server and one browser for the module

CHAPTER, SCHEDULE = 'book/01_transfer_learning.ipynb', '04_schedule.ipynb'
SHOTS = ROOT/'_lab_screenshots'

def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]

def _answers(server, url, log):
    "Whether the server answers `url` yet; fails with the end of its `log` if it has stopped"
    if server.poll() is not None: raise AssertionError('JupyterLab stopped: ' + log.read_text()[-3000:])
    try:
        with urllib.request.urlopen(url, timeout=10): return True
    except OSError: return False

@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    "A JupyterLab server on loopback serving copies of the two notebooks; yields (base url, token, its root folder)"
    root = tmp_path_factory.mktemp('book')
    for name in (CHAPTER, SCHEDULE): shutil.copy(ROOT/'nbs'/name, root/Path(name).name)
    home = tmp_path_factory.mktemp('jupyter')  # the server's own settings, workspaces and runtime files: nothing of the user's
    settings = home/'settings'/'@jupyterlab'/'apputils-extension'
    settings.mkdir(parents=True)
    (settings/'notification.jupyterlab-settings').write_text('{"fetchNews": "false", "checkForUpdates": false}')  # offline
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(home/'config'), JUPYTER_RUNTIME_DIR=str(home/'runtime'),
               JUPYTERLAB_SETTINGS_DIR=str(home/'settings'), JUPYTERLAB_WORKSPACES_DIR=str(home/'workspaces'),
               TMPDIR=str(home), PYTHONWARNINGS='ignore')
    port, token = _free_port(), secrets.token_hex(16)
    log = open(home/'server.log', 'w')
    server = subprocess.Popen([str(BIN/'jupyter'), 'lab', '--no-browser', '--ip=127.0.0.1', f'--port={port}', '--port-retries=0',
                               f'--ServerApp.root_dir={root}', f'--IdentityProvider.token={token}',
                               *(['--allow-root'] if os.geteuid() == 0 else [])],  # CI's containers run as root
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f'http://127.0.0.1:{port}'
    try:
        _until('JupyterLab to answer', lambda: _answers(server, f'{base}/api/status?token={token}', home/'server.log'), 60)
        yield base, token, root
    finally:
        server.terminate()
        try: server.wait(30)
        except subprocess.TimeoutExpired: server.kill()
        log.close()

@pytest.fixture(scope='module')
def browser(tmp_path_factory):
    driver = headless_chromium(tmp_path_factory.mktemp('chrome'), window='1400,1000')
    SHOTS.mkdir(exist_ok=True)
    yield driver
    driver.quit()

def _until(what, check, seconds, every=0.5):
    "Poll `check()` until it returns something truthy; fail naming `what` after `seconds`"
    from selenium.common.exceptions import StaleElementReferenceException
    end = time.time() + seconds
    while time.time() < end:
        try: got = check()
        except StaleElementReferenceException: got = None  # JupyterLab re-rendered what was being read: look again
        if got: return got
        time.sleep(every)
    raise AssertionError(f'timed out after {seconds} s waiting for {what}')

def _css(root, css):
    "The elements under `root` (the browser or an element) that match `css`"
    from selenium.webdriver.common.by import By
    return root.find_elements(By.CSS_SELECTOR, css)

def _open(browser, lab, name):
    "Open notebook `name` in JupyterLab; return its number of code cells once they are all laid out and its kernel is idle"
    import nbformat
    base, token, root = lab
    n_code = sum(c.cell_type == 'code' for c in nbformat.read(root/name, as_version=4).cells)
    browser.get(f'{base}/lab/tree/{name}?token={token}')
    _until(f'the {n_code} code cells of {name} to show', lambda: len(_prompts(browser)) == n_code, 120)
    _until(f'the kernel of {name} to start', lambda: _kernel_state(browser) == 'idle', 120)
    return n_code

def _kernel_state(browser):
    "What the open notebook's toolbar says of its kernel: 'idle', 'busy', ... (None before a kernel is attached)"
    ind = _css(browser, '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator')
    return ind[0].get_attribute('data-status') if ind else None

def _menu(browser, menu, command):
    "Click `menu` in JupyterLab's menu bar, then the item that runs `command` (JupyterLab's command id)"
    item = [m for m in _css(browser, '#jp-menu-panel .lm-MenuBar-item') if m.text.strip() == menu]
    assert item, f'no {menu} menu'
    item[0].click()
    entry = lambda: _css(browser, f'.lm-Menu li.lm-Menu-item[data-command="{command}"]')
    try: _until(f'{command} in the {menu} menu', entry, 10)
    except AssertionError as e:
        offered = [i.get_attribute('data-command') for i in _css(browser, '.lm-Menu li.lm-Menu-item')]
        raise AssertionError(f'{e}; the menu offers {offered}') from None
    entry()[0].click()

def _prompts(browser):
    "The input prompts of the open notebook's code cells: '[3]:' once run, '[*]:' while queued or running, '[ ]:' before"
    return [p.text.strip() for p in _css(browser, '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt')]

def _wait_until_run(browser, n_cells, seconds):
    "Wait until the first `n_cells` code cells show an execution count and none is queued or running"
    def done():
        p = _prompts(browser)
        return len(p) >= n_cells and all(x[1:-2].strip().isdigit() for x in p[:n_cells]) and '[*]:' not in p
    _until(f'{n_cells} cells to run', done, seconds, every=2)

def _save_and_read(browser, lab, name):
    "File > Save Notebook, then the notebook as JupyterLab wrote it to disk"
    import nbformat
    path = lab[2]/name
    before = path.stat().st_mtime_ns
    _menu(browser, 'File', 'docmanager:save')
    _until(f'{name} to be saved', lambda: path.stat().st_mtime_ns != before, 30)
    return nbformat.read(path, as_version=4)

def _errors(nb):
    return [o for c in nb.cells if c.cell_type == 'code' for o in c.outputs if o.output_type == 'error']

def test_chapter_runs_all_cells_in_jupyterlab(lab, browser):
    name = Path(CHAPTER).name
    n_code = _open(browser, lab, name)
    _menu(browser, 'Run', 'runmenu:run-all')
    _wait_until_run(browser, n_code, 600)
    browser.save_screenshot(str(SHOTS/'chapter1_run_all.png'))   # the end of the chapter: its last plot
    shown = _css(browser, '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output')
    assert _css(browser, '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output img'), 'the chapter drew no plot'
    table = [t for t in _css(browser, '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output table') if 'accuracy' in t.text]
    assert table, 'the chapter showed no results table'
    browser.execute_script('arguments[0].scrollIntoView({block: "center"})', table[0])
    browser.save_screenshot(str(SHOTS/'chapter1_results.png'))      # pretrained, fine-tuned and from scratch, side by side
    nb = _save_and_read(browser, lab, name)
    assert not _errors(nb), _errors(nb)[0]
    assert all(c.execution_count for c in nb.cells if c.cell_type == 'code'), 'a cell did not run'
    assert len(shown) >= 5 and sum(bool(c.outputs) for c in nb.cells if c.cell_type == 'code') >= 5

def _click(browser, element, what, seconds=20):
    "Scroll `element` to the middle of the window and click it, as a reader would; retry while something JupyterLab is still laying out covers it"
    from selenium.common.exceptions import ElementClickInterceptedException
    def attempt():
        browser.execute_script('arguments[0].scrollIntoView({block: "center"})', element)
        try: element.click()
        except ElementClickInterceptedException: return False  # e.g. an output prompt's overlay from the cell above, mid-layout
        return True
    _until(f'{what} to take a click', attempt, seconds)

def _code_cells(browser):
    return _css(browser, '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell')

def _slider(widget, label):
    "The slider labelled `label` in an ipywidgets `interact` view: (its handle, its readout)"
    box = [s for s in _css(widget, '.widget-slider') if _css(s, '.widget-label')[0].text.strip() == label]
    assert box, f'no slider labelled {label}'
    return _css(box[0], '.noUi-handle')[0], _css(box[0], '.widget-readout')[0]

def _plot(widget):
    "The image the widget's output shows now (its data URL), or None"
    img = _css(widget, '.jp-OutputArea-output img')
    return img[0].get_attribute('src') if img else None

def test_schedule_explorer_redraws_when_a_slider_moves(lab, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    _open(browser, lab, SCHEDULE)
    sources = [_css(c, '.jp-InputArea-editor')[0].text for c in _code_cells(browser)]
    at = [i for i, src in enumerate(sources) if 'schedule_explorer()' in src.splitlines()]  # the cell that shows the widget
    assert len(at) == 1, at
    cell = _code_cells(browser)[at[0]]
    _click(browser, _css(cell, '.jp-InputPrompt')[0], "the widget cell's prompt")  # select the widget's cell, as a reader clicks it
    _menu(browser, 'Run', 'notebook:run-all-above')          # the cells below it are slow measurements
    _wait_until_run(browser, at[0], 600)
    _menu(browser, 'Run', 'notebook:run-cell')               # Run Selected Cell: the widget's
    _wait_until_run(browser, at[0] + 1, 120)
    widget = _until('the widget to show', lambda: _css(cell, '.jp-OutputArea-output .widget-interact'), 60)[0]
    first = _until('the first plot', lambda: _plot(widget), 60)
    browser.execute_script('arguments[0].scrollIntoView()', cell)
    browser.save_screenshot(str(SHOTS/'schedule_explorer_before.png'))
    handle, readout = _slider(widget, 'n_groups')
    assert readout.text.strip() == '8', readout.text
    ActionChains(browser).drag_and_drop_by_offset(handle, 60, 0).perform()
    _until('the n_groups readout to change', lambda: readout.text.strip() != '8', 10)
    _until('the plot to redraw', lambda: _plot(widget) not in (None, first), 60)
    browser.save_screenshot(str(SHOTS/'schedule_explorer_after.png'))
    nb = _save_and_read(browser, lab, SCHEDULE)
    assert not _errors(nb), _errors(nb)[0]
    code = [c for c in nb.cells if c.cell_type == 'code']
    assert all(c.execution_count for c in code[:at[0] + 1]), 'a cell above the widget did not run'
    assert not any(c.execution_count for c in code[at[0] + 1:]), 'a cell below the widget ran'
    assert any('application/vnd.jupyter.widget-view+json' in o.get('data', {}) for o in code[at[0]].outputs)
