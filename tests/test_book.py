"""The book builds from the executed notebooks with warnings as errors, offline, and renders in a browser.

The browser check drives Debian's headless Chromium (installed by `make browser`, part of `make test`)
through the DevTools protocol over a pipe (--remote-debugging-pipe: JSON messages separated by NUL on
file descriptors 3 and 4), so it needs no Python package beyond the standard library. It opens the
index page and then every page of _toc.yml, waits for the load event, and asserts that every image actually
decoded (naturalWidth > 0), that no request failed or left the machine, that no page shows a traceback and
that each says what was run, and saves screenshots.
"""
from __future__ import annotations

import base64
import json
import os
import re
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = "book/report_a_classifier.html"      # a chapter with figures and tables
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1280,900",
                  "--remote-debugging-pipe"]


def jupyter_book() -> str:
    exe = Path(sys.executable).parent / "jupyter-book"
    return str(exe) if exe.exists() else (shutil.which("jupyter-book") or "jupyter-book")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("book")
    t0 = time.monotonic()
    res = subprocess.run([jupyter_book(), "build", "--warningiserror", "--keep-going", "--path-output", str(out),
                          str(ROOT)], cwd=ROOT, capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, PYTHONWARNINGS="ignore"))
    log = res.stdout + res.stderr
    assert res.returncode == 0, f"jupyter-book build -W failed:\n{log[-8000:]}"
    html = out / "_build" / "html"
    assert (html / "index.html").exists(), log[-3000:]
    print(f"book built in {time.monotonic() - t0:.1f} s")
    return html


@pytest.mark.slow
def test_book_builds_every_toc_page_without_warnings(built):
    import yaml
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]
    for f in files:
        page = built / f"{f}.html"
        assert page.exists(), f"{page} was not built"
        text = page.read_text()
        assert "Traceback (most recent call last)" not in text, f"{f} shows a Python traceback"


@pytest.mark.slow
def test_book_loads_nothing_from_the_network(built):
    """No script, stylesheet, font or image comes from another host: the book works offline."""
    remote = re.compile(r"""<(script|link|img|iframe|source)\b[^>]*\b(src|href)=["'](https?:)?//""", re.I)
    offenders = {}
    for page in built.rglob("*.html"):
        hits = [m.group(0) for m in remote.finditer(page.read_text())
                if not re.search(r"rel=[\"'](canonical|alternate)", m.group(0))]
        if hits:
            offenders[str(page.relative_to(built))] = hits[:3]
    assert not offenders, f"pages loading remote resources: {offenders}"


# ---------------------------------------------------------------------------------------------
# a minimal DevTools-protocol client over Chromium's pipe

class Chromium:
    def __init__(self, exe: str, profile: Path):
        # fd 3 is Chromium's command input and fd 4 its output; the shell wires our pipes onto them.
        self.proc = subprocess.Popen(
            ["sh", "-c", 'exec "$0" "$@" 3<&0 4>&1 0</dev/null 1>/dev/null', exe, *CHROMIUM_FLAGS,
             f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.buf, self.next_id, self.events = b"", 0, []

    def close(self):
        try:
            self.send("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                raise TimeoutError("no answer from Chromium")
            chunk = os.read(self.proc.stdout.fileno(), 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.proc.stdin.write(json.dumps(msg).encode() + b"\0")
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        while True:
            m = self._read(deadline)
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def wait_event(self, method: str, session: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for i, m in enumerate(self.events):
                if m.get("method") == method and m.get("sessionId") == session:
                    return self.events.pop(i)
            self.events.append(self._read(deadline))

    def evaluate(self, expr: str, session: str):
        r = self.send("Runtime.evaluate", {"expression": expr, "returnByValue": True, "awaitPromise": True},
                      session)
        return r.get("result", {}).get("value")


def open_page(browser: Chromium, url: str, shots: Path, name: str) -> dict:
    target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    s = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Page", "Network", "Runtime"):
        browser.send(f"{domain}.enable", session=s)
    browser.send("Page.navigate", {"url": url}, s)
    browser.wait_event("Page.loadEventFired", s)
    # index.html redirects to the first page with a meta refresh: wait until the final page is complete
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            state = browser.evaluate("document.readyState + '|' + !!document.querySelector("
                                     "'meta[http-equiv=refresh]')", s)
        except RuntimeError:     # the redirect destroyed the page's context mid-call: ask the new page
            state = None
        if state == "complete|false":
            break
        time.sleep(0.2)
    # every image, lazy ones included: scroll each into view and wait for it to decode
    images = browser.evaluate("""(async () => {
        const imgs = Array.from(document.images);
        for (const im of imgs) { im.loading = 'eager'; im.scrollIntoView(); try { await im.decode(); } catch (e) {} }
        window.scrollTo(0, 0);
        return imgs.map(im => ({src: (im.currentSrc || im.src).slice(0, 80), w: im.naturalWidth,
                                h: im.naturalHeight, alt: im.alt}));
    })()""", s)
    info = browser.evaluate("""({title: document.title, href: location.href,
        text: (document.querySelector('main') || document.body).innerText,
        h1: (document.querySelector('h1') || {}).textContent || '',
        sheets: document.styleSheets.length,
        themed: getComputedStyle(document.body).fontFamily,
        remote: performance.getEntriesByType('resource').map(e => e.name).filter(n => /^https?:/.test(n))})""", s)
    failed = [m for m in browser.events if m.get("method") == "Network.loadingFailed" and m.get("sessionId") == s]
    png = browser.send("Page.captureScreenshot", {"format": "png"}, s)["data"]
    (shots / f"{name}.png").write_bytes(base64.b64decode(png))
    if images:
        browser.evaluate("document.images[Math.min(1, document.images.length - 1)].scrollIntoView()", s)
        time.sleep(0.3)
        png = browser.send("Page.captureScreenshot", {"format": "png"}, s)["data"]
        (shots / f"{name}-figure.png").write_bytes(base64.b64decode(png))
    browser.send("Target.closeTarget", {"targetId": target})
    return dict(info, images=images, failed=[f["params"].get("errorText") for f in failed])


def toc_pages() -> list[str]:
    """Every page _toc.yml lists (root and chapter files), without extension."""
    text = (ROOT / "_toc.yml").read_text()
    return re.findall(r"^\s*(?:root|-\s*file):\s*(\S+)", text, flags=re.M)


@pytest.fixture(scope="module")
def chromium():
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("Chromium is not installed (`make browser` installs Debian's package)")
    return exe


@pytest.mark.slow
def test_pages_render_with_their_figures_in_a_browser(built, chromium, tmp_path):
    shots = Path(os.environ.get("CIFAR_NB_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    browser = Chromium(chromium, tmp_path / "profile")
    try:
        browser.send("Target.setDiscoverTargets", {"discover": True})
        index = open_page(browser, (built / "index.html").as_uri(), shots, "index")
        chapter = open_page(browser, (built / CHAPTER).as_uri(), shots, "chapter")
        pages = {name: open_page(browser, (built / f"{name}.html").as_uri(), shots, Path(name).name)
                 for name in toc_pages() if f"{name}.html" != CHAPTER}
    finally:
        browser.close()

    # every page of the book: its images decoded, no traceback, and it says up front what was run
    for name, page in pages.items():
        broken = [im for im in page["images"] if im["w"] == 0]
        assert not broken, f"{name}: images that did not load: {broken}"
        assert "Traceback (most recent call last)" not in page["text"], f"{name} shows a Python traceback"
        assert re.search(r"What (was|has been) run", page["text"]), f"{name} does not say what was run"
        assert not page["failed"] and not page["remote"], f"{name}: {page['failed'] or page['remote']}"
    assert "What was run" in chapter["text"] and chapter["text"].index("What was run") < \
        chapter["text"].index("Run card"), "the chapter's status line should open its run card"

    assert index["href"].endswith("book/intro.html"), index["href"]     # the redirect was followed
    assert "small-budget" in index["h1"].lower(), index["h1"]
    for page in (index, chapter):
        assert page["sheets"] >= 3, f"{page['href']}: theme stylesheets did not load"
        assert not page["remote"], f"{page['href']} fetched from the network: {page['remote']}"
        assert not page["failed"], f"{page['href']}: failed requests {page['failed']}"
        broken = [im for im in page["images"] if im["w"] == 0]
        assert not broken, f"{page['href']}: images that did not load: {broken}"
    figures = [im for im in chapter["images"] if im["w"] >= 200]
    assert len(figures) >= 3, f"the chapter shows too few rendered figures: {chapter['images']}"
    for name in ("index.png", "chapter.png", "chapter-figure.png"):
        data = (shots / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, f"screenshot {name} looks empty"
