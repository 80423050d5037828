"Shared setup for ftbook's tests: offline hubs, the repository root, a runner for the console scripts, headless Chromium."
import os, shutil, subprocess, sys
from pathlib import Path
import pytest

os.environ.setdefault('HF_HUB_OFFLINE', '1')
if os.environ.get('PYTEST_XDIST_WORKER'):  # `make test` runs two workers side by side: one CPU thread each (and in their subprocesses)
    os.environ['OMP_NUM_THREADS'] = '1'
    import torch; torch.set_num_threads(1)
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

@pytest.fixture(scope='session')
def root(): return ROOT

def run_cli(name, *args, timeout=900, cwd=None, env=None):
    "Run console script `name` of this environment in a subprocess (with `env` added to the environment); return the CompletedProcess."
    env = dict(os.environ, HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1', PYTHONWARNINGS='ignore', **(env or {}))
    return subprocess.run([str(BIN/name), *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)

def assert_refused(res, prog:str, msg:str, *not_written):
    "`res` failed as ftbook refuses bad input: exit code 2, one `prog: error:` line containing `msg`, no traceback, none of `not_written` on disk"
    assert res.returncode == 2, (res.returncode, res.stderr[-2000:])
    errors = [l for l in res.stderr.splitlines() if l.startswith(f'{prog}: error:')]
    assert len(errors) == 1 and msg in errors[0], res.stderr[-2000:]
    assert 'Traceback' not in res.stderr
    assert not any(Path(p).exists() for p in not_written), [p for p in not_written if Path(p).exists()]  # nothing half-written

# The browser tests (docs site, JupyterLab) drive Debian's chromium and chromium-driver; without them they are skipped, not passed,
# except where FTBOOK_REQUIRE_BROWSER=1 (CI, which installs them): there a missing browser is a failure
CHROMIUM, CHROMEDRIVER = shutil.which('chromium'), shutil.which('chromedriver')
needs_browser = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason='needs Debian chromium and chromium-driver')
if os.environ.get('FTBOOK_REQUIRE_BROWSER') == '1' and not (CHROMIUM and CHROMEDRIVER):
    raise RuntimeError('FTBOOK_REQUIRE_BROWSER=1 but chromium/chromedriver are missing: apt-get install chromium chromium-driver')

def headless_chromium(profile:Path, window:str='1280,900'):
    "A selenium driver for headless Chromium with its own profile folder `profile`, making no requests of its own"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ('--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking',
              '--disable-component-update', '--no-first-run', '--disable-sync', f'--window-size={window}', f'--user-data-dir={profile}'):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
