"""Browser tests of the page beyond drawing digits: start-up failures, photos, models, the request queue,
a pen beside a palm on a tablet, and layout.

Files are removed or replaced with Playwright routes on one page, so the server stays untouched.
When the worker cannot start, the page falls back to the API (tests/test_fallback.py tests that
path), so these tests read the worker's failure from #fallback-note. Tablet and layout tests delete
WebAssembly, so the page starts no worker, classifies on the server and loads in a fraction of a second.
"""

import io
import json

import pytest
from PIL import Image

import digits
from conftest import GuardedPage, wait_until_ready
from test_e2e import built_name, clear, draw_digit, draw_quick_strokes, result_id, shown_label, shown_probabilities, traced_digit, wait_for_result

pytestmark = [pytest.mark.browser, pytest.mark.mnist]

NO_WEBASSEMBLY = "delete globalThis.WebAssembly;"
FAILURE_DETAILS = "Details: "
MAX_PROBABILITY_DIFFERENCE = 1e-5
# A stroke's width as a share of the canvas side, equal to BRUSH_FRACTION in site/app.js.
BRUSH_FRACTION = 1 / 14
BROKEN_MODEL = '{"format": "digits-model", "format_version": 1}'
# Test image 0 of MNIST is a 7, image 2 a 1.
SEVEN = 0
ONE = 2

# Points as (x, y) fractions of the canvas side: a pen's "1", and a palm resting at the lower right.
PEN_LINE = [(0.5, 0.2), (0.5, 0.35), (0.5, 0.5), (0.5, 0.65), (0.5, 0.8)]
PALM_TRACK = [(0.8, 0.75), (0.84, 0.8), (0.88, 0.85), (0.92, 0.9)]

# Alpha (0..255) of the canvas's backing store at (x, y) fractions of its side.
CANVAS_ALPHA_SCRIPT = """points => {
  const canvas = document.getElementById("canvas");
  const context = canvas.getContext("2d");
  return points.map(([x, y]) =>
    context.getImageData(Math.floor(x * canvas.width), Math.floor(y * canvas.height), 1, 1).data[3]);
}"""

# Pixels of the backing store with at least half alpha in the row at a fraction y of the side.
INK_IN_ROW_SCRIPT = """y => {
  const canvas = document.getElementById("canvas");
  const row = canvas.getContext("2d").getImageData(0, Math.floor(y * canvas.height), canvas.width, 1).data;
  return row.filter((value, index) => index % 4 === 3 && value >= 128).length;
}"""

# Stops resize events before app.js receives them, so that only its media query can report a new
# devicePixelRatio. Chromium 156 fires no resize event for a change of deviceScaleFactor alone anyway.
SWALLOW_RESIZE_SCRIPT = """
window.addEventListener("resize", (event) => event.stopImmediatePropagation(), true);
"""

# Delivers the worker's messages to the page 300 ms late and counts classify requests in flight,
# so that quick drawing overlaps with a running classification.
SLOW_WORKER_SCRIPT = """
window.requestLog = {outstanding: 0, maximum: 0, sent: 0};
const NativeWorker = window.Worker;
window.Worker = class extends NativeWorker {
  addEventListener(type, listener, options) {
    if (type !== "message") {
      return super.addEventListener(type, listener, options);
    }
    const delayed = (event) => setTimeout(() => {
      if (event.data.type === "result" || event.data.type === "error") {
        requestLog.outstanding--;
      }
      listener.call(this, event);
    }, 300);
    return super.addEventListener(type, delayed, options);
  }
  postMessage(message, transfer) {
    if (message && message.type === "classify") {
      requestLog.sent++;
      requestLog.outstanding++;
      requestLog.maximum = Math.max(requestLog.maximum, requestLog.outstanding);
    }
    return super.postMessage(message, transfer);
  }
};
"""


@pytest.fixture(scope="module")
def mnist_test_set(mnist_dir):
    return digits.load_mnist(mnist_dir, "test")


@pytest.fixture(scope="module")
def model_index(dist_dir):
    return json.loads((dist_dir / "models" / "index.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def default_entry(model_index):
    return next(entry for entry in model_index["models"] if entry["name"] == model_index["default"])


@pytest.fixture(scope="module")
def default_model(dist_dir, default_entry):
    return digits.load_model(dist_dir / "models" / default_entry["file"])


@pytest.fixture(scope="module")
def pyodide_folder(dist_dir):
    """The Pyodide folder of dist/ as the worker names it, such as "pyodide/0.27.7/"."""
    return built_name(dist_dir, "pyodide/*/pyodide.js").removesuffix("pyodide.js")


def fulfil_not_found(route):
    route.fulfill(status=404, content_type="text/plain", body="not found")


def worker_failure(page):
    """Wait until the page gives up on the worker; return the worker's message from #fallback-note."""
    page.wait_for_function("details => document.querySelector('#fallback-note').textContent.includes(details)",
                           arg=FAILURE_DETAILS, timeout=60_000)
    return page.locator("#fallback-note").inner_text().split(FAILURE_DETAILS, 1)[1]


def model_file_error(text):
    """The message of the ModelFileError that digits.load_model raises for a model file's text."""
    with pytest.raises(digits.ModelFileError) as raised:
        digits.load_model(text)
    return str(raised.value)


def as_sentence(text):
    return text[:1].upper() + text[1:]


def end_sentence(text):
    return text if text.endswith((".", "!", "?")) else f"{text}."


def png_bytes(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def choose_photo(page, name, mime_type, data):
    previous = result_id(page)
    page.set_input_files("#photo", files=[{"name": name, "mimeType": mime_type, "buffer": data}])
    wait_for_result(page, previous)


def choose_model(page, name):
    previous = result_id(page)
    page.select_option("#model-select", name)
    wait_for_result(page, previous)


def open_without_webassembly(new_page, site_url, init_script="", **context_options):
    page = new_page(**context_options)
    page.add_init_script(NO_WEBASSEMBLY + init_script)
    page.goto(site_url)
    wait_until_ready(page)
    return page


def canvas_alpha(page, points):
    return page.evaluate(CANVAS_ALPHA_SCRIPT, [list(point) for point in points])


def ink_in_row(page, y):
    return page.evaluate(INK_IN_ROW_SCRIPT, y)


def undo(page):
    previous = result_id(page)
    page.click("#undo")
    wait_for_result(page, previous)


def wait_for_two_frames(page):
    page.evaluate("() => new Promise(resolve => requestAnimationFrame(() => requestAnimationFrame(resolve)))")


class Tablet:
    """Touch and pen input on #canvas through the DevTools protocol, at (x, y) fractions of the canvas side.

    Chromium dispatches a touch and a pen that are down at the same time as two pointers, as on a tablet.
    """

    def __init__(self, page):
        self.session = page.context.new_cdp_session(page)
        self.box = page.locator("#canvas").bounding_box()

    def position(self, point):
        x, y = point
        return self.box["x"] + x * self.box["width"], self.box["y"] + y * self.box["height"]

    def send_touch(self, kind, points):
        touch_points = [dict(zip("xy", self.position(point))) for point in points]
        self.session.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": touch_points})

    def touch_start(self, point):
        self.send_touch("touchStart", [point])

    def touch_move(self, point):
        self.send_touch("touchMove", [point])

    def touch_end(self):
        self.send_touch("touchEnd", [])

    def send_pen(self, kind, point, buttons):
        x, y = self.position(point)
        self.session.send("Input.dispatchMouseEvent", {
            "type": kind, "x": x, "y": y, "button": "left", "buttons": buttons,
            "clickCount": 1, "pointerType": "pen", "force": 0.5,
        })

    def pen_down(self, point):
        self.send_pen("mousePressed", point, buttons=1)

    def pen_move(self, point):
        self.send_pen("mouseMoved", point, buttons=1)

    def pen_up(self, point):
        self.send_pen("mouseReleased", point, buttons=0)


# Start-up failures: the worker names the file that is missing or broken

@pytest.mark.parametrize("name", ["pyodide.asm.wasm", "pyodide.js"])
def test_missing_runtime_file_is_named(new_page, site_url, pyodide_folder, name):
    page = new_page()
    page.route(f"**/{pyodide_folder}{name}", fulfil_not_found)
    page.goto(site_url)

    failure = worker_failure(page)

    prefix = f"Loading the Python runtime (Pyodide) failed: could not download {pyodide_folder}{name} ("
    if name == "pyodide.js":
        # The rest is Chromium's own wording for a failed importScripts.
        assert failure.startswith(prefix)
    else:
        assert failure == f"{prefix}HTTP status 404)"
    assert page.locator("#status").get_attribute("data-source") == "server"


def test_missing_package_is_named(new_page, site_url, dist_dir):
    package = built_name(dist_dir, "digits.*.zip")
    page = new_page()
    page.route(f"**/{package}", fulfil_not_found)
    page.goto(site_url)

    failure = worker_failure(page)

    assert failure == f"Loading the digits package failed: could not download {site_url}{package} (HTTP status 404)"


def test_missing_numpy_wheel_is_named(new_page, site_url, dist_dir):
    wheel = built_name(dist_dir, "pyodide/*/numpy-*.whl")
    page = new_page()
    page.route(f"**/{wheel}", fulfil_not_found)
    page.goto(site_url)

    failure = worker_failure(page)

    assert failure == f"Loading numpy failed: could not download {wheel} (HTTP status 404)"


def test_invalid_default_model_is_named(new_page, site_url, default_entry):
    broken = '{"format": "something else"}'
    page = new_page()
    page.route(f"**/models/{default_entry['file']}",
               lambda route: route.fulfill(status=200, content_type="application/json", body=broken))
    page.goto(site_url)

    failure = worker_failure(page)

    assert failure == f"Model file {default_entry['file']} is not valid: {model_file_error(broken)}"


# Photos and models, on one page whose models/index.json lists two more models

@pytest.fixture(scope="module")
def page_with_extra_models(browser, site_url, model_index, default_entry, default_model):
    """A loaded page whose model list adds "copy" (the default model's file) and "broken" (an invalid file)."""
    index = dict(model_index, models=model_index["models"] + [
        {"name": "copy", "file": default_entry["file"], "test_accuracy": 0.5, "version": default_model.version},
        {"name": "broken", "file": "broken.json"},
    ])
    guarded = GuardedPage(browser, site_url)
    page = guarded.page
    page.route("**/models/index.json", lambda route: route.fulfill(
        status=200, content_type="application/json", body=json.dumps(index)))
    page.route("**/models/broken.json", lambda route: route.fulfill(
        status=200, content_type="application/json", body=BROKEN_MODEL))
    page.goto(site_url)
    wait_until_ready(page)
    yield page
    problems = guarded.close()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def test_photo_of_digit_is_classified(page_with_extra_models, mnist_test_set, default_model):
    page = page_with_extra_models
    images, labels = mnist_test_set
    photo = png_bytes(images[SEVEN])
    expected = digits.classify(default_model, digits.decode_image(photo))

    choose_photo(page, "seven.png", "image/png", photo)

    assert shown_label(page) == str(expected.label) == str(labels[SEVEN])
    difference = max(abs(shown - computed) for shown, computed in zip(shown_probabilities(page), expected.probabilities))
    assert difference <= MAX_PROBABILITY_DIFFERENCE
    assert page.locator("#timing").inner_text().startswith("Photo “seven.png”: ")
    assert page.locator("#result-source").get_attribute("data-source") == "browser"


def test_photo_replaces_drawing(page_with_extra_models, mnist_test_set):
    page = page_with_extra_models
    images, _ = mnist_test_set
    box = page.locator("#canvas").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.8, steps=8)
    page.mouse.up()

    choose_photo(page, "seven.png", "image/png", png_bytes(images[SEVEN]))

    ink = page.evaluate("""() => {
      const canvas = document.getElementById("canvas");
      const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
      return pixels.some((value, index) => index % 4 === 3 && value > 0);
    }""")
    assert ink is False


def test_photo_that_is_not_an_image(page_with_extra_models):
    page = page_with_extra_models
    with pytest.raises(digits.InputError) as raised:
        digits.decode_image(b"hello")

    choose_photo(page, "notes.txt", "text/plain", b"hello")

    message = page.locator("#message")
    assert message.get_attribute("data-code") == raised.value.code == "invalid_image"
    assert message.inner_text() == as_sentence(str(raised.value))
    assert shown_label(page) == ""


def test_photo_too_large_is_rejected(page_with_extra_models, tmp_path):
    page = page_with_extra_models
    # A sparse file on disk: Chromium reads it itself, where a buffer would cross the Playwright pipe.
    photo = tmp_path / "big.png"
    with open(photo, "wb") as stream:
        stream.truncate(21 * 1024 * 1024)
    previous = result_id(page)

    page.set_input_files("#photo", files=[str(photo)])
    wait_for_result(page, previous)

    message = page.locator("#message")
    assert message.get_attribute("data-code") == "photo_too_large"
    assert message.inner_text() == "The photo “big.png” is 21.0 MB. Files up to 20 MB are accepted."


def test_switching_model_reclassifies(page_with_extra_models, mnist_test_set, default_model):
    page = page_with_extra_models
    options = page.locator("#model-select option")
    assert [option.get_attribute("value") for option in options.all()][-2:] == ["copy", "broken"]
    assert options.nth(options.count() - 2).inner_text() == "copy (50.00 % test accuracy)"
    clear(page)
    _, stroke_list = traced_digit(mnist_test_set, SEVEN)
    label = draw_digit(page, stroke_list)
    probabilities = shown_probabilities(page)

    choose_model(page, "copy")

    assert page.input_value("#model-select") == "copy"
    assert page.locator("#status").get_attribute("data-state") == "ready"
    assert page.locator("#status").inner_text() == f"Ready: model {default_model.name}, version {default_model.version}"
    assert page.locator("#message").inner_text() == ""
    # Same file, so the same result.
    assert shown_label(page) == label
    assert shown_probabilities(page) == probabilities


def test_broken_model_keeps_previous(page_with_extra_models, mnist_test_set):
    page = page_with_extra_models
    before = page.input_value("#model-select")

    choose_model(page, "broken")

    message = page.locator("#message")
    expected = f"Model file broken.json is not valid: {end_sentence(model_file_error(BROKEN_MODEL))}"
    assert message.inner_text() == f"{expected} The previous model is still in use."
    assert message.get_attribute("data-code") == "model_load_failed"
    assert page.input_value("#model-select") == before
    assert page.locator("#status").get_attribute("data-state") == "ready"
    assert page.is_enabled("#model-select")
    label, stroke_list = traced_digit(mnist_test_set, ONE)
    clear(page)
    assert draw_digit(page, stroke_list) == str(label)


def test_model_chosen_during_load_is_loaded_next(ready_page, model_index):
    page = ready_page
    versions = {entry["name"]: entry["version"] for entry in model_index["models"]}
    other = next(name for name in versions if name != model_index["default"])

    # All four changes run before the worker can finish loading the first one.
    page.evaluate("""([other, chosen]) => {
      const select = document.querySelector("#model-select");
      const useServer = document.querySelector("#use-server");
      const change = (element) => element.dispatchEvent(new Event("change", {bubbles: true}));
      select.value = other;
      change(select);
      useServer.checked = true;
      change(useServer);
      select.value = chosen;
      change(select);
      useServer.checked = false;
      change(useServer);
    }""", [other, model_index["default"]])
    page.wait_for_function(
        "text => document.querySelector('#status').dataset.state === 'ready'"
        " && document.querySelector('#status-text').textContent === text",
        arg=f"Ready: model {model_index['default']}, version {versions[model_index['default']]}")

    assert page.input_value("#model-select") == model_index["default"]
    assert page.locator("#status").get_attribute("data-source") == "browser"


# The request queue, with the worker's messages delayed

def test_report_link_follows_model(page_with_extra_models, site_url, default_entry):
    page = page_with_extra_models
    choose_model(page, default_entry["name"])
    link = page.locator("#model-report")

    assert link.is_visible()
    assert link.get_attribute("href") == f"reports/{default_entry['name']}.html"
    response = page.request.get(site_url + link.get_attribute("href"))
    assert response.status == 200
    assert default_entry["version"] in response.text()

    choose_model(page, "copy")

    assert link.is_hidden()
    choose_model(page, default_entry["name"])


@pytest.fixture(scope="module")
def slow_worker_page(browser, site_url):
    """A page whose worker messages reach the page 300 ms late. Not waited for: the first test draws early."""
    guarded = GuardedPage(browser, site_url)
    guarded.page.add_init_script(SLOW_WORKER_SCRIPT)
    guarded.page.goto(site_url)
    yield guarded.page
    problems = guarded.close()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def test_drawing_before_ready_is_classified_once_ready(slow_worker_page, mnist_test_set):
    page = slow_worker_page
    label, stroke_list = traced_digit(mnist_test_set, ONE)
    if page.locator("#status").get_attribute("data-state") != "loading":
        pytest.skip("the page was ready before the test could draw")

    label_shown = draw_digit(page, stroke_list)

    assert page.locator("#status").get_attribute("data-source") == "browser"
    assert label_shown == str(label)
    assert page.locator("#result-source").get_attribute("data-source") == "browser"


def test_one_worker_request_at_a_time(slow_worker_page):
    page = slow_worker_page
    wait_until_ready(page)
    clear(page)
    page.evaluate("() => { requestLog.maximum = 0; requestLog.sent = 0; }")
    draw_quick_strokes(page, 12)
    page.wait_for_function("document.body.dataset.busy === 'false' && requestLog.outstanding === 0")

    log = page.evaluate("requestLog")
    assert log["maximum"] == 1
    assert 1 <= log["sent"] < 12
    assert shown_label(page) != ""


def test_late_worker_result_after_clear_is_dropped(slow_worker_page):
    page = slow_worker_page
    wait_until_ready(page)
    clear(page)
    box = page.locator("#canvas").bounding_box()
    x = box["x"] + box["width"] / 2

    page.mouse.move(x, box["y"] + box["height"] * 0.2)
    page.mouse.down()
    page.mouse.move(x, box["y"] + box["height"] * 0.8)
    page.mouse.up()
    page.wait_for_function("requestLog.outstanding === 1")
    page.click("#clear")
    page.wait_for_function("requestLog.outstanding === 0 && document.body.dataset.busy === 'false'")
    page.wait_for_timeout(100)

    assert shown_label(page) == ""
    assert shown_probabilities(page) == [0] * 10
    assert page.locator("#timing").inner_text() == ""
    assert page.locator("#empty-hint").is_visible()


# A pen beside a palm on a tablet, without a worker

@pytest.fixture
def tablet_page(new_page, site_url):
    """A page with touch input and no worker, and a Tablet that draws on it."""
    page = open_without_webassembly(new_page, site_url, has_touch=True)
    return page, Tablet(page)


def pen_line_probabilities(page, tablet):
    """Draw PEN_LINE alone with the pen on a cleared canvas, and return the probabilities shown for it."""
    clear(page)
    previous = result_id(page)
    tablet.pen_down(PEN_LINE[0])
    for point in PEN_LINE[1:]:
        tablet.pen_move(point)
    tablet.pen_up(PEN_LINE[-1])
    wait_for_result(page, previous)
    probabilities = shown_probabilities(page)
    clear(page)
    return probabilities


def test_pen_replaces_touch_stroke_in_progress(tablet_page):
    page, tablet = tablet_page
    expected = pen_line_probabilities(page, tablet)
    previous = result_id(page)

    tablet.touch_start(PALM_TRACK[0])
    tablet.touch_move(PALM_TRACK[1])
    tablet.pen_down(PEN_LINE[0])
    tablet.touch_move(PALM_TRACK[2])
    for point in PEN_LINE[1:]:
        tablet.pen_move(point)
    tablet.pen_up(PEN_LINE[-1])
    tablet.touch_move(PALM_TRACK[3])
    tablet.touch_end()
    wait_for_result(page, previous)

    assert canvas_alpha(page, PALM_TRACK) == [0] * len(PALM_TRACK)
    assert canvas_alpha(page, PEN_LINE) == [255] * len(PEN_LINE)
    assert shown_probabilities(page) == expected
    # The pen's stroke is the only one, so one undo empties the drawing.
    undo(page)
    assert canvas_alpha(page, PEN_LINE) == [0] * len(PEN_LINE)
    assert page.locator("#empty-hint").is_visible()


def test_touch_during_pen_stroke_is_ignored(tablet_page):
    page, tablet = tablet_page
    expected = pen_line_probabilities(page, tablet)
    previous = result_id(page)

    tablet.pen_down(PEN_LINE[0])
    tablet.pen_move(PEN_LINE[1])
    tablet.touch_start(PALM_TRACK[0])
    tablet.touch_move(PALM_TRACK[1])
    tablet.pen_move(PEN_LINE[2])
    tablet.touch_move(PALM_TRACK[2])
    tablet.touch_end()
    for point in PEN_LINE[3:]:
        tablet.pen_move(point)
    tablet.pen_up(PEN_LINE[-1])
    wait_for_result(page, previous)

    assert canvas_alpha(page, PALM_TRACK) == [0] * len(PALM_TRACK)
    assert canvas_alpha(page, PEN_LINE) == [255] * len(PEN_LINE)
    assert shown_probabilities(page) == expected
    undo(page)
    assert canvas_alpha(page, PEN_LINE) == [0] * len(PEN_LINE)
    assert page.locator("#empty-hint").is_visible()


# Layout, without a worker

def test_backing_store_follows_device_pixel_ratio(new_page, site_url):
    page = open_without_webassembly(new_page, site_url, device_scale_factor=2)

    client_width, width, height = page.evaluate(
        "() => { const canvas = document.getElementById('canvas'); return [canvas.clientWidth, canvas.width, canvas.height]; }")

    assert width == round(client_width * 2)
    assert height == width


def change_device_pixel_ratio(page, session, ratio, reduced_motion):
    """Emulate a move of the window to a screen with devicePixelRatio `ratio`, at the same size in CSS pixels.

    The override lasts while the DevTools `session` stays attached. Headless Chromium 156 applies a new
    deviceScaleFactor to devicePixelRatio and to media queries at once, but fires their change events only
    when something else makes it evaluate media queries again. Setting the emulated prefers-reduced-motion
    to a new value (`reduced_motion`) does.
    """
    viewport = page.viewport_size
    session.send("Emulation.setDeviceMetricsOverride", {
        "width": viewport["width"], "height": viewport["height"], "deviceScaleFactor": ratio, "mobile": False,
    })
    session.send("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-reduced-motion", "value": reduced_motion}]})
    page.wait_for_function("ratio => window.devicePixelRatio === ratio", arg=ratio)
    # The HTML standard's rendering update fires media query change events before requestAnimationFrame callbacks.
    wait_for_two_frames(page)


def test_pixel_ratio_change_rescales_drawing(new_page, site_url):
    page = open_without_webassembly(new_page, site_url, init_script=SWALLOW_RESIZE_SCRIPT)
    side = page.evaluate("() => document.getElementById('canvas').clientWidth")
    box = page.locator("#canvas").bounding_box()
    previous = result_id(page)
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.8, steps=6)
    page.mouse.up()
    wait_for_result(page, previous)
    assert ink_in_row(page, 0.5) == pytest.approx(side * BRUSH_FRACTION, abs=1)

    # The second change fails unless the page watches for a new ratio again after the first change.
    session = page.context.new_cdp_session(page)
    for ratio, reduced_motion in ((2, "reduce"), (3, "no-preference")):
        change_device_pixel_ratio(page, session, ratio, reduced_motion)

        client_width, width, height = page.evaluate(
            "() => { const canvas = document.getElementById('canvas'); return [canvas.clientWidth, canvas.width, canvas.height]; }")
        assert client_width == side
        assert width == round(side * ratio)
        assert height == width
        assert canvas_alpha(page, [(0.5, 0.3), (0.5, 0.5), (0.5, 0.7)]) == [255, 255, 255]
        assert canvas_alpha(page, [(0.3, 0.5), (0.7, 0.5)]) == [0, 0]
        assert ink_in_row(page, 0.5) == pytest.approx(side * BRUSH_FRACTION * ratio, abs=1)

    # A stroke drawn at the new ratio lands under the pointer.
    previous = result_id(page)
    page.mouse.move(box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.3)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.8, box["y"] + box["height"] * 0.3, steps=6)
    page.mouse.up()
    wait_for_result(page, previous)
    assert canvas_alpha(page, [(0.25, 0.3), (0.75, 0.3), (0.25, 0.4)]) == [255, 255, 0]


def test_layout_fits_360_px(new_page, site_url, mnist_test_set):
    page = open_without_webassembly(new_page, site_url, viewport={"width": 360, "height": 640})
    _, stroke_list = traced_digit(mnist_test_set, SEVEN)

    draw_digit(page, stroke_list)

    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    canvas = page.locator("#canvas").bounding_box()
    assert canvas["width"] == pytest.approx(canvas["height"], abs=1)
    assert canvas["width"] >= 300
    for selector in ("#undo", "#clear", ".file-button", "#model-select", "#use-server", "#result-label",
                     "#probabilities", "#timing", "#result-source", "#fallback-note"):
        box = page.locator(selector).bounding_box()
        assert box is not None and box["width"] > 0, selector
        assert box["x"] >= 0, selector
        assert box["x"] + box["width"] <= 360, selector
    # The result follows the pad, so it shows after drawing without scrolling sideways.
    assert page.locator(".result-panel").bounding_box()["y"] > canvas["y"] + canvas["height"]
