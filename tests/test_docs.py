"""The docs site: built offline by `tools/build_docs.py` (what `make docs` runs), opened in headless Chromium.

Follows every sidebar link, checks that no link or image is broken, that an API page shows parameter docs and that a
chapter shows a plot, and saves screenshots to `_docs_screenshots/`. Needs Debian's chromium and chromium-driver
(`.ci/run` installs them); without them the test is skipped, not passed.
"""
import http.server, re, socketserver, subprocess, sys, threading, urllib.parse, urllib.request
from pathlib import Path
import pytest
from conftest import ROOT, headless_chromium, needs_browser

pytestmark = [needs_browser,
              pytest.mark.xdist_group('docs')]  # one worker: the site is built once

@pytest.fixture(scope='module')
def site(tmp_path_factory):
    res = subprocess.run([sys.executable, str(ROOT/'tools'/'build_docs.py')], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    root = ROOT/'_docs'
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(root), **k)
    server = socketserver.ThreadingTCPServer(('127.0.0.1', 0), handler)  # the browser fetches pages and assets in parallel
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f'http://127.0.0.1:{server.server_address[1]}/'
    server.shutdown()

@pytest.fixture(scope='module')
def browser(tmp_path_factory):
    driver = headless_chromium(tmp_path_factory.mktemp('chrome'), window='1280,900')
    yield driver
    driver.quit()

def _wait_for(browser, css, seconds=15):
    "The elements matching `css` once the page has rendered them (empty after `seconds`): `get` can return before a slow page is laid out"
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    from selenium.common.exceptions import TimeoutException
    try: return WebDriverWait(browser, seconds).until(lambda b: b.find_elements(By.CSS_SELECTOR, css))
    except TimeoutException: return []

def _status(url):
    try: return urllib.request.urlopen(url, timeout=10).status
    except Exception as e: return getattr(e, 'code', str(e))

def test_every_sidebar_page_opens_without_broken_links_or_images(site, browser):
    from selenium.webdriver.common.by import By
    shots = ROOT/'_docs_screenshots'
    shots.mkdir(exist_ok=True)
    browser.get(site + 'index.html')
    nav = [a.get_attribute('href') for a in _wait_for(browser, 'nav.md-nav--primary a.md-nav__link[href]')]
    pages = sorted({h.split('#')[0] for h in nav if h and h.startswith(site)})
    expected = [n.replace('.ipynb', '.html') for n in re.findall(r'(\S+\.ipynb)', (ROOT/'nbs'/'sidebar.yml').read_text())]
    assert len(expected) >= 20, expected  # the home page, nine chapters and the library's notebooks
    assert {site + ('index.html' if p == 'index.html' else p) for p in expected} <= set(pages) | {site}, (expected, pages)
    broken = []
    for page in pages:
        browser.get(page)
        assert _wait_for(browser, 'article h1'), f'{page} has no title'
        for a in browser.find_elements(By.CSS_SELECTOR, 'article a[href]'):
            href = a.get_attribute('href')
            if href.startswith(site) and _status(href.split('#')[0]) != 200: broken.append((page, href))
        for img in browser.find_elements(By.CSS_SELECTOR, 'article img'):
            loaded = browser.execute_script('return arguments[0].complete && arguments[0].naturalWidth > 0', img)
            if not loaded: broken.append((page, img.get_attribute('src')))
        browser.save_screenshot(str(shots/(Path(urllib.parse.urlparse(page).path).stem + '.png')))
    assert not broken, broken

def test_api_page_shows_parameter_docs(site, browser):
    from selenium.webdriver.common.by import By
    browser.get(site + '09_cli.html')
    text = _wait_for(browser, 'article')[0].text
    assert 'def finetune(' in text
    assert '# peak learning rate of the top group' in text   # a docment of `finetune`'s `lr`
    assert 'import' not in browser.find_element(By.CSS_SELECTOR, 'article h2').text

def test_chapter_shows_a_plot_and_a_table(site, browser):
    from selenium.webdriver.common.by import By
    browser.get(site + '10_ablation.html')
    assert _wait_for(browser, 'article h1')
    imgs = [i for i in browser.find_elements(By.CSS_SELECTOR, 'article img')
            if browser.execute_script('return arguments[0].naturalWidth', i) > 400]
    assert imgs, 'no plot on the ablation page'
    assert any('full + discr' in t.text for t in browser.find_elements(By.CSS_SELECTOR, 'article table'))

def test_search_finds_a_function(site, browser):
    "The search index is built offline and knows the API"
    index = (ROOT/'_docs'/'search'/'search_index.json').read_text()
    assert 'GradualUnfreezing' in index and 'discriminative_lrs' in index

def test_math_is_rendered_offline(site, browser):
    "Chapter 2's formulas are typeset by KaTeX, served with the site (no network at view time), not shown as raw TeX"
    from selenium.webdriver.common.by import By
    browser.get(site + 'book/02_inside_the_model.html')
    assert len(_wait_for(browser, 'article .arithmatex .katex')) >= 3, 'no formula typeset on chapter 2'
    raw = browser.execute_script("return [...document.querySelectorAll('article .arithmatex')].filter(e => !e.querySelector('.katex')).length")
    assert raw == 0, f'{raw} formulas left as raw TeX'
    assert '$p_c' not in browser.find_element(By.CSS_SELECTOR, 'article').text
    assert all(s.startswith(site) for s in browser.execute_script("return [...document.scripts].map(s => s.src).filter(Boolean)")), 'a script from the network'
