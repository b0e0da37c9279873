"""Shared fixtures: MNIST and dist/ locations, a local server for dist/, and Chromium pages.

Browser tests run the built site from env DIST_DIR (built once with `python3 build.py build`
when it is unset) in headless Chromium (env CHROMIUM, else /usr/bin/chromium). Every page
is confined to the test server: a request to any other origin is aborted, and it fails the
test unless the page was opened with new_page(check_origins=False).
"""

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
# Pyodide start-up downloads and compiles about 17 MB; on a busy 2-core machine that can take
# several seconds, so this is generous. It is a time-out, not a performance check.
READY_TIMEOUT_MS = 60_000


def launch_chromium(playwright):
    """Start headless Chromium from env CHROMIUM, else /usr/bin/chromium."""
    executable = os.environ.get("CHROMIUM") or DEFAULT_CHROMIUM
    if not Path(executable).is_file():
        raise FileNotFoundError(f"Chromium not found at {executable}: install it or set CHROMIUM to its path")
    return playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)


def wait_until_ready(page, timeout_ms=READY_TIMEOUT_MS):
    """Wait until the page's model is loaded (#status[data-state=ready]), and fail with the status text if start-up failed."""
    page.wait_for_function(
        "() => ['ready', 'failed'].includes(document.querySelector('#status')?.dataset.state)",
        timeout=timeout_ms,
    )
    status = page.locator("#status")
    state = status.get_attribute("data-state")
    assert state == "ready", f"the page failed to start: {status.inner_text()!r}"


class OriginGuard:
    """A route handler that lets requests to the site through and aborts and records all others."""

    def __init__(self, site_url):
        self.site_url = site_url
        self.allowed = []
        self.foreign = []

    def handle(self, route):
        url = route.request.url
        if url.startswith(self.site_url):
            self.allowed.append(url)
            route.continue_()
        else:
            self.foreign.append(url)
            route.abort()


@pytest.fixture(scope="session")
def mnist_dir():
    directory = os.environ.get("MNIST_DIR")
    if not directory:
        pytest.fail("environment variable MNIST_DIR is not set: set it to the folder with the four MNIST IDX files "
                    "(t10k-images-idx3-ubyte.gz and the others, gzip-compressed or raw)", pytrace=False)
    if not Path(directory).is_dir():
        pytest.fail(f"MNIST_DIR={directory} is not a folder: set it to the folder with the four MNIST IDX files",
                    pytrace=False)
    return Path(directory)


@pytest.fixture(scope="session")
def dist_dir():
    configured = os.environ.get("DIST_DIR")
    if configured:
        if not Path(configured, "index.html").is_file():
            pytest.fail(f"DIST_DIR={configured} has no index.html: run python3 build.py build or unset DIST_DIR",
                        pytrace=False)
        return Path(configured)
    completed = subprocess.run([sys.executable, "build.py", "build"], cwd=ROOT, capture_output=True, text=True)
    if completed.returncode != 0:
        pytest.fail(f"python3 build.py build failed (exit status {completed.returncode}):\n"
                    f"{completed.stdout}{completed.stderr}", pytrace=False)
    return ROOT / "dist"


@pytest.fixture(scope="session")
def site_url(dist_dir):
    """The built site with the API under /api/, as `python3 build.py serve` runs them."""
    import build

    server = build.make_server(dist_dir, "127.0.0.1", 0, handler_class=build.SiteAndApiRequestHandler)
    thread = threading.Thread(target=server.serve_forever, name="site-server", daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    yield f"http://{host}:{port}/"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


class GuardedPage:
    """A page in its own browser context whose foreign requests and uncaught JavaScript errors are recorded."""

    def __init__(self, browser, site_url, **context_options):
        self.site_url = site_url
        self.context = browser.new_context(**context_options)
        self.guard = OriginGuard(site_url)
        self.context.route("**/*", self.guard.handle)
        self.page = self.context.new_page()
        self.page_errors = []
        self.page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        self.page.origin_guard = self.guard

    def close(self, check_origins=True):
        """Close the context and return the problems seen: foreign requests and uncaught errors."""
        self.context.close()
        problems = []
        if check_origins and self.guard.foreign:
            problems.append(f"requests to other origins than {self.site_url}: {self.guard.foreign}")
        if self.page_errors:
            problems.append(f"uncaught JavaScript errors: {self.page_errors}")
        return problems


@pytest.fixture
def new_page(browser, site_url):
    """Return a function that opens a page in a fresh browser context (options go to new_context).

    At teardown the test fails if a page requested another origin than the site (unless it was
    opened with check_origins=False) or raised an uncaught JavaScript error.
    """
    opened = []

    def open_page(check_origins=True, **context_options):
        guarded = GuardedPage(browser, site_url, **context_options)
        opened.append((guarded, check_origins))
        return guarded.page

    yield open_page

    problems = [problem for guarded, check_origins in opened for problem in guarded.close(check_origins)]
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def page(new_page):
    return new_page()


@pytest.fixture
def ready_page(page, site_url):
    """The site, opened in a fresh context, with its model loaded."""
    page.goto(site_url)
    wait_until_ready(page)
    return page


@pytest.fixture(scope="module")
def shared_ready_page(browser, site_url):
    """One loaded site for all tests of a module, because each start of Pyodide takes seconds.

    Tests that use it must not rely on what earlier tests left on the page. The last test of the
    module fails if the page requested another origin or raised an uncaught JavaScript error.
    """
    guarded = GuardedPage(browser, site_url)
    guarded.page.goto(site_url)
    wait_until_ready(guarded.page)
    yield guarded.page
    problems = guarded.close()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)
