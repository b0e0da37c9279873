"""Browser tests of the page's fallback to the HTTP API (site/api.js) and its "Classify on the server" box.

The site and its API run on the local server of `python3 build.py serve`, which calls the Lambda
handler in this process, so the test can compute the server's exact response to the pixels the
page sent. Most tests delete WebAssembly before the page's scripts run: the page then starts no worker,
loads in a fraction of a second, and can only use the server.
"""

import base64
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

import digits
from conftest import wait_until_ready
from test_e2e import (TRACEBACK_MARKERS, built_name, clear, draw_digit, draw_quick_strokes, result_id, shown_label, shown_probabilities,
                      strokes_on_canvas, traced_digit, wait_for_result)

pytestmark = [pytest.mark.browser, pytest.mark.mnist]

NO_WEBASSEMBLY = "delete globalThis.WebAssembly;"
NO_WEBASSEMBLY_TEXT = "This browser cannot run WebAssembly, which the network needs."
SOURCE_TEXT = {"browser": "in your browser (Pyodide)", "server": "on the server"}
# Test image 0 of MNIST is a 7 drawn in one stroke.
SEVEN = 0

# Delays every response of /classify by 300 ms and counts the requests in flight, so that quick
# drawing overlaps with a running request.
SLOW_SERVER_SCRIPT = """
window.requestLog = {outstanding: 0, maximum: 0, sent: 0};
const nativeFetch = window.fetch;
window.fetch = async (input, init) => {
  if (!String(input).endsWith("/classify")) {
    return nativeFetch(input, init);
  }
  requestLog.sent++;
  requestLog.outstanding++;
  requestLog.maximum = Math.max(requestLog.maximum, requestLog.outstanding);
  try {
    const response = await nativeFetch(input, init);
    await new Promise((resolve) => setTimeout(resolve, 300));
    return response;
  } finally {
    requestLog.outstanding--;
  }
};
"""


@pytest.fixture(scope="module")
def mnist_test_set(mnist_dir):
    return digits.load_mnist(mnist_dir, "test")


@pytest.fixture(scope="module")
def default_model(dist_dir):
    index = json.loads((dist_dir / "models" / "index.json").read_text(encoding="utf-8"))
    entry = next(model for model in index["models"] if model["name"] == index["default"])
    return digits.load_model(dist_dir / "models" / entry["file"])


class ApiRecorder:
    """Records the page's requests to the API: (path after the site URL, JSON body or None)."""

    def __init__(self, page, site_url):
        self.site_url = site_url
        self.requests = []
        page.on("request", self.record)

    def record(self, request):
        if request.url.startswith(self.site_url) and request.url.endswith(("/classify", "/health")):
            body = json.loads(request.post_data) if request.post_data else None
            self.requests.append((request.url[len(self.site_url):], body))

    def paths(self):
        return [path for path, _ in self.requests]

    def last_body(self):
        return self.requests[-1][1]


def open_without_webassembly(new_page, site_url, **context_options):
    page = new_page(**context_options)
    page.add_init_script(NO_WEBASSEMBLY)
    recorder = ApiRecorder(page, site_url)
    page.goto(site_url)
    wait_until_ready(page)
    return page, recorder


def server_answer(model, body):
    """Classify the canvas of a recorded request body as the API does."""
    canvas = body["canvas"]
    rgba = base64.b64decode(canvas["rgba"])
    return digits.classify(model, digits.canvas_to_array(rgba, canvas["width"], canvas["height"]))


def seen_pixels(page):
    """The red channel of the 28x28 #seen canvas, where the page draws ink dark on light."""
    return page.evaluate("""() => Array.from(
        document.getElementById('seen').getContext('2d').getImageData(0, 0, 28, 28).data.filter((_, i) => i % 4 === 0))""")


def shown_source(page):
    element = page.locator("#result-source")
    return element.get_attribute("data-source"), element.inner_text()


def trace_without_waiting(page, placed_strokes):
    for stroke in placed_strokes:
        page.mouse.move(*stroke[0])
        page.mouse.down()
        for point in stroke[1:]:
            page.mouse.move(*point)
        page.mouse.up()


def as_sentence(text):
    return text[:1].upper() + text[1:]


def png_bytes(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


# Without WebAssembly

def test_no_webassembly_classifies_on_server(new_page, site_url, mnist_test_set, default_model):
    page, recorder = open_without_webassembly(new_page, site_url)
    label, stroke_list = traced_digit(mnist_test_set, SEVEN)

    label_shown = draw_digit(page, stroke_list)

    body = recorder.last_body()
    expected = server_answer(default_model, body)
    assert recorder.paths().count("api/classify") == 1
    assert (body["canvas"]["width"], body["canvas"]["height"]) == (140, 140)
    assert body["model"] == default_model.name
    assert label_shown == str(expected.label) == str(label)
    assert shown_probabilities(page) == [float(p) for p in expected.probabilities]
    assert seen_pixels(page) == [255 - int(v) for v in np.round(expected.image.ravel() * 255)]
    assert shown_source(page) == ("server", SOURCE_TEXT["server"])
    assert re.fullmatch(rf"\d+ ms \(\d+ ms computing\) with model {default_model.name}, version {default_model.version}",
                        page.locator("#timing").inner_text())


def test_no_webassembly_starts_no_worker(new_page, site_url, dist_dir, default_model):
    page, recorder = open_without_webassembly(new_page, site_url)

    status = page.locator("#status")
    toggle = page.locator("#use-server")
    assert status.get_attribute("data-state") == "ready"
    assert status.get_attribute("data-source") == "server"
    assert status.inner_text() == f"Ready on the server: model {default_model.name}, version {default_model.version}"
    assert page.locator("#fallback-note").inner_text().endswith(f"Details: {NO_WEBASSEMBLY_TEXT} "
                                                                "Use a current Firefox, Chrome, Edge or Safari "
                                                                "with WebAssembly enabled.")
    assert toggle.is_checked()
    assert toggle.is_disabled()
    assert recorder.paths() == ["api/health"]
    worker = built_name(dist_dir, "worker.*.js")
    assert not [url for url in page.origin_guard.allowed if "/pyodide/" in url or url == f"{site_url}{worker}"]


def test_server_photo_is_classified(new_page, site_url, mnist_test_set, default_model):
    page, recorder = open_without_webassembly(new_page, site_url)
    images, labels = mnist_test_set
    photo = png_bytes(images[SEVEN])
    expected = digits.classify(default_model, digits.decode_image(photo))
    previous = result_id(page)

    page.set_input_files("#photo", files=[{"name": "seven.png", "mimeType": "image/png", "buffer": photo}])
    wait_for_result(page, previous)

    assert base64.b64decode(recorder.last_body()["image"]) == photo
    assert shown_label(page) == str(expected.label)
    assert shown_probabilities(page) == [float(p) for p in expected.probabilities]
    assert page.locator("#timing").inner_text().startswith("Photo “seven.png”: ")
    assert shown_source(page)[0] == "server"


def test_large_server_photo_is_shrunk(new_page, site_url):
    page, recorder = open_without_webassembly(new_page, site_url)
    # Grey noise keeps the PNG large; a dark bar is a "1".
    rng = np.random.default_rng(0)
    photo_pixels = rng.integers(235, 256, size=(900, 700, 3), dtype=np.uint8)
    photo_pixels[150:750, 330:380] = 0
    photo = png_bytes(photo_pixels)
    assert len(photo) > 500_000
    previous = result_id(page)

    page.set_input_files("#photo", files=[{"name": "bar.png", "mimeType": "image/png", "buffer": photo}])
    wait_for_result(page, previous)

    canvas = recorder.last_body()["canvas"]
    assert (canvas["width"], canvas["height"]) == (299, 384)
    assert len(base64.b64decode(canvas["rgba"])) == 299 * 384 * 4
    assert shown_label(page) == "1"
    assert shown_source(page)[0] == "server"


# Choosing the server while the browser can classify

def test_server_toggle_switches_source(shared_ready_page, site_url, mnist_test_set, default_model):
    page = shared_ready_page
    recorder = ApiRecorder(page, site_url)
    clear(page)
    _, stroke_list = traced_digit(mnist_test_set, SEVEN)
    browser_label = draw_digit(page, stroke_list)
    browser_probabilities = shown_probabilities(page)
    assert shown_source(page) == ("browser", SOURCE_TEXT["browser"])
    assert recorder.paths() == []

    previous = result_id(page)
    page.check("#use-server")
    wait_for_result(page, previous)

    status = page.locator("#status")
    assert recorder.paths().count("api/classify") == 1
    assert shown_source(page) == ("server", SOURCE_TEXT["server"])
    assert status.get_attribute("data-source") == "server"
    assert status.inner_text() == f"Ready on the server: model {default_model.name}, version {default_model.version}"
    assert shown_label(page) == browser_label
    np.testing.assert_allclose(shown_probabilities(page), browser_probabilities, atol=1e-5)
    assert page.locator("#fallback-note").is_hidden()

    classify_requests = recorder.paths().count("api/classify")
    previous = result_id(page)
    page.uncheck("#use-server")
    wait_for_result(page, previous)

    assert shown_source(page) == ("browser", SOURCE_TEXT["browser"])
    assert status.get_attribute("data-source") == "browser"
    assert recorder.paths().count("api/classify") == classify_requests


def test_slow_start_uses_server_until_ready(new_page, site_url, mnist_test_set):
    page = new_page()
    # A fake clock for the page only: the worker keeps real time and starts as usual.
    page.clock.install()
    page.goto(site_url)
    timeout_ms = page.evaluate("WORKER_READY_TIMEOUT_MS")
    assert page.locator("#status").get_attribute("data-state") == "loading"

    page.clock.run_for(timeout_ms + 1)
    page.wait_for_function("document.querySelector('#status').dataset.state === 'ready'")
    note = page.locator("#fallback-note")
    assert page.locator("#status").get_attribute("data-source") == "server"
    assert note.inner_text().startswith("The network is taking long to load in your browser (")
    _, stroke_list = traced_digit(mnist_test_set, SEVEN)
    draw_digit(page, stroke_list)
    assert shown_source(page)[0] == "server"

    # Once ready, the worker classifies the drawing again.
    page.wait_for_function("document.querySelector('#status').dataset.source === 'browser'", timeout=60_000)
    page.wait_for_function("document.querySelector('#result-source').dataset.source === 'browser'")

    assert page.locator("#status").get_attribute("data-state") == "ready"
    assert note.is_hidden()
    assert not page.locator("#use-server").is_checked()


def test_slow_start_without_server_keeps_loading(new_page, site_url):
    page = new_page()
    page.clock.install()
    page.route("**/api/**", lambda route: route.abort())
    page.goto(site_url)
    timeout_ms = page.evaluate("WORKER_READY_TIMEOUT_MS")

    page.clock.run_for(timeout_ms + 1)
    page.wait_for_function("document.querySelector('#status-text').textContent !== 'Connecting to the server…'")

    status = page.locator("#status")
    if status.get_attribute("data-state") == "ready":
        pytest.skip("the worker was ready before the server check failed")
    assert status.get_attribute("data-state") == "loading"
    assert status.get_attribute("data-source") == "browser"
    assert page.locator("#fallback-note").is_hidden()
    assert page.locator("#use-server").is_enabled()


# Server errors

def test_api_error_message_is_shown(new_page, site_url, mnist_test_set):
    page, _ = open_without_webassembly(new_page, site_url)
    error = {"code": "invalid_canvas", "message": 'canvas must be {"width": W, "height": H, "rgba": "<base64>"}'}
    page.route("**/api/classify", lambda route: route.fulfill(
        status=400, content_type="application/json", body=json.dumps({"error": error})))
    _, stroke_list = traced_digit(mnist_test_set, SEVEN)

    draw_digit(page, stroke_list)

    message = page.locator("#message")
    assert message.inner_text() == as_sentence(error["message"])
    assert message.get_attribute("data-code") == "invalid_canvas"
    assert shown_label(page) == ""
    assert shown_source(page) == (None, "")
    assert page.locator("#status").get_attribute("data-state") == "ready"
    body_text = page.locator("body").inner_text()
    assert [marker for marker in TRACEBACK_MARKERS if marker in body_text] == []


def test_server_fault_then_recovery(new_page, site_url, mnist_test_set):
    page, _ = open_without_webassembly(new_page, site_url)
    page.route("**/api/classify", lambda route: route.fulfill(
        status=502, content_type="text/html", body="<html><body>Bad gateway</body></html>"))
    _, stroke_list = traced_digit(mnist_test_set, SEVEN)

    draw_digit(page, stroke_list)

    status = page.locator("#status")
    message = page.locator("#message")
    assert message.inner_text() == ("Classifying on the server failed: the server responded with HTTP status 502 "
                                    "Bad Gateway")
    assert message.get_attribute("data-code") == "server_failed"
    assert status.get_attribute("data-state") == "failed"
    assert status.inner_text() == ("Recognition is unavailable. The network could not start in your browser, and "
                                   "the server responded with HTTP status 502 Bad Gateway.")

    page.unroute("**/api/classify")
    clear(page)
    assert draw_digit(page, stroke_list) != ""
    assert status.get_attribute("data-state") == "ready"
    assert message.inner_text() == ""


def test_unreachable_server_is_reported(new_page, site_url):
    page = new_page()
    page.add_init_script(NO_WEBASSEMBLY)
    page.route("**/api/**", lambda route: route.abort())
    page.goto(site_url)
    page.wait_for_function("document.querySelector('#status').dataset.state === 'failed'")

    text = page.locator("#status").inner_text()
    assert text.startswith("Recognition is unavailable. The network could not start in your browser, and the "
                           f"server could not be reached at {site_url}api/health (")
    assert NO_WEBASSEMBLY_TEXT in page.locator("#fallback-note").inner_text()


def test_server_timeout_is_reported(new_page, site_url, mnist_test_set):
    page = new_page()
    page.add_init_script(NO_WEBASSEMBLY)
    page.clock.install()
    held_routes = []
    # The API never responds: the route is held until the context closes.
    page.route("**/api/classify", lambda route: held_routes.append(route))
    page.goto(site_url)
    wait_until_ready(page)
    _, stroke_list = traced_digit(mnist_test_set, SEVEN)
    previous = result_id(page)

    trace_without_waiting(page, strokes_on_canvas(page, stroke_list))
    page.wait_for_function("document.body.dataset.busy === 'true'")
    page.clock.run_for(60_000)
    wait_for_result(page, previous)

    message = page.locator("#message")
    assert re.fullmatch(rf"Classifying on the server failed: the server did not answer within \d+ s "
                        rf"\({re.escape(site_url)}api/classify\)", message.inner_text())
    assert message.get_attribute("data-code") == "server_timeout"
    assert page.locator("#status").get_attribute("data-state") == "failed"


# Configuration

@pytest.mark.parametrize(("config", "api_path"), [
    ({"api_url": "custom-api/"}, "custom-api/"),
    ({}, "api/"),
    (None, "api/"),
])
def test_api_address_from_config(new_page, site_url, mnist_test_set, config, api_path):
    page = new_page()
    page.add_init_script(NO_WEBASSEMBLY)
    if config is None:
        page.route("**/config.json", lambda route: route.fulfill(status=404, body="not found"))
    else:
        page.route("**/config.json", lambda route: route.fulfill(status=200, content_type="application/json",
                                                                 body=json.dumps(config)))
    # The custom address leads to the real API.
    page.route("**/custom-api/*", lambda route: route.continue_(url=route.request.url.replace("/custom-api/", "/api/")))
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(site_url)
    wait_until_ready(page)
    _, stroke_list = traced_digit(mnist_test_set, SEVEN)

    draw_digit(page, stroke_list)

    assert f"{site_url}{api_path}health" in requested
    assert f"{site_url}{api_path}classify" in requested
    assert shown_source(page)[0] == "server"


# One request at a time

def test_server_requests_one_at_a_time(new_page, site_url):
    page = new_page()
    page.add_init_script(NO_WEBASSEMBLY)
    page.add_init_script(SLOW_SERVER_SCRIPT)
    page.goto(site_url)
    wait_until_ready(page)
    draw_quick_strokes(page, 12)
    page.wait_for_function("document.body.dataset.busy === 'false' && requestLog.outstanding === 0")

    log = page.evaluate("requestLog")
    assert log["maximum"] == 1
    assert 1 <= log["sent"] < 12
    assert shown_label(page) != ""
    assert shown_source(page)[0] == "server"


def test_late_server_result_after_clear_is_dropped(new_page, site_url):
    page = new_page()
    page.add_init_script(NO_WEBASSEMBLY)
    page.add_init_script(SLOW_SERVER_SCRIPT)
    page.goto(site_url)
    wait_until_ready(page)
    box = page.locator("#canvas").bounding_box()
    x = box["x"] + box["width"] / 2
    vertical_line = [[(x, box["y"] + box["height"] * 0.2), (x, box["y"] + box["height"] * 0.8)]]

    trace_without_waiting(page, vertical_line)
    page.wait_for_function("requestLog.outstanding === 1")
    page.click("#clear")
    page.wait_for_function("requestLog.outstanding === 0 && document.body.dataset.busy === 'false'")
    page.wait_for_timeout(100)

    assert shown_label(page) == ""
    assert shown_probabilities(page) == [0] * 10
    assert shown_source(page) == (None, "")
    assert page.locator("#empty-hint").is_visible()
