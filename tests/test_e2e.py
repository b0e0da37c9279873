"""End-to-end tests of the built site in Chromium: drawing with mouse, touch, pen and keyboard.

Digits are MNIST test images traced into strokes (tests/strokes.py) and drawn on the canvas
the way a person would, one stroke at a time. Most tests share one loaded page and start by
clearing it.
"""

import digits
import pytest

import strokes
from conftest import wait_until_ready

pytestmark = [pytest.mark.browser, pytest.mark.mnist]

DIGITS_PER_CLASS = 2
MIN_CORRECT = 19
# Intermediate pointer positions Playwright sends per polyline segment, like a real mouse's.
MOVE_STEPS = 2
TRACEBACK_MARKERS = ("Traceback", 'File "')


@pytest.fixture(scope="module")
def mnist_test_set(mnist_dir):
    return digits.load_mnist(mnist_dir, "test")


@pytest.fixture(scope="module")
def spread_of_digits(mnist_test_set):
    """The first DIGITS_PER_CLASS test images of each class: (index, label, strokes in the 28x28 frame)."""
    images, labels = mnist_test_set
    chosen = []
    for digit in range(10):
        for index in [int(i) for i in (labels == digit).nonzero()[0][:DIGITS_PER_CLASS]]:
            chosen.append((index, digit, strokes.image_to_strokes(images[index])))
    return chosen


def traced_digit(mnist_test_set, index):
    images, labels = mnist_test_set
    return int(labels[index]), strokes.image_to_strokes(images[index])


# Page helpers

def canvas_box(page):
    return page.locator("#canvas").bounding_box()


def strokes_on_canvas(page, stroke_list):
    """Place 28x28-frame strokes on the canvas as a person would; return them in page coordinates."""
    box = canvas_box(page)
    side = box["width"]
    placed = strokes.fit_to_canvas(stroke_list, side, strokes.DRAWING_MARGIN_FRACTION * side)
    return strokes.shift(placed, box["x"], box["y"])


def result_id(page):
    return int(page.evaluate("() => Number(document.body.dataset.resultId)"))


def wait_for_result(page, previous_id):
    """Wait until a new result is shown and no classification of the page is in flight.

    Read previous_id before the input that changes the drawing. The page marks itself busy while
    it handles that input, so an earlier result cannot satisfy the wait.
    """
    page.wait_for_function(
        "previous => document.body.dataset.busy === 'false' && Number(document.body.dataset.resultId) > previous",
        arg=previous_id,
    )


def shown_label(page):
    return page.locator("#result-label").inner_text()


def shown_probabilities(page):
    return page.eval_on_selector_all("#probabilities li", "items => items.map(item => Number(item.dataset.probability))")


def draw_with_mouse(page, placed_strokes):
    """Draw strokes given in page coordinates with the mouse and return the label shown afterwards."""
    previous = result_id(page)
    for stroke in placed_strokes:
        page.mouse.move(*stroke[0])
        page.mouse.down()
        for point in stroke[1:]:
            page.mouse.move(*point, steps=MOVE_STEPS)
        page.mouse.up()
    wait_for_result(page, previous)
    return shown_label(page)


def draw_quick_strokes(page, count):
    """Draw count short vertical strokes, one after the other, faster than a classification takes."""
    box = page.locator("#canvas").bounding_box()
    side = box["width"]
    for index in range(count):
        x = box["x"] + side * (0.2 + 0.05 * index)
        page.mouse.move(x, box["y"] + side * 0.3)
        page.mouse.down()
        page.mouse.move(x, box["y"] + side * 0.7)
        page.mouse.up()


def draw_digit(page, stroke_list):
    """Draw strokes of the 28x28 frame with the mouse, placed to fill the canvas; return the label shown."""
    return draw_with_mouse(page, strokes_on_canvas(page, stroke_list))


def clear(page):
    previous = result_id(page)
    page.click("#clear")
    wait_for_result(page, previous)


def built_name(dist_dir, pattern):
    """The path in dist/ of the one file that `pattern` matches, such as "app.*.js" for app.3f9a1c2b.js."""
    matches = sorted(path.relative_to(dist_dir).as_posix() for path in dist_dir.glob(pattern))
    assert len(matches) == 1, f"{pattern} matches {matches} in {dist_dir}"
    return matches[0]


def traceback_markers_in_text(page):
    text = page.locator("body").inner_text()
    return [marker for marker in TRACEBACK_MARKERS if marker in text]


def record_pointer_types(page):
    """Start recording the pointerType of each pointerdown on the canvas, forgetting earlier ones."""
    page.evaluate("""() => {
      window.testPointerTypes = [];
      if (!window.testPointerTypesListening) {
        document.getElementById("canvas").addEventListener(
          "pointerdown", (event) => window.testPointerTypes.push(event.pointerType));
        window.testPointerTypesListening = true;
      }
    }""")


def recorded_pointer_types(page):
    return page.evaluate("() => window.testPointerTypes")


def interpolate(stroke, steps):
    """Yield the points of a polyline with steps points per segment, as a moving finger reports them."""
    yield stroke[0]
    for (x0, y0), (x1, y1) in zip(stroke, stroke[1:]):
        for step in range(1, steps + 1):
            t = step / steps
            yield (x0 + (x1 - x0) * t, y0 + (y1 - y0) * t)


@pytest.fixture
def blank_page(shared_ready_page):
    """The shared page with an empty drawing."""
    clear(shared_ready_page)
    return shared_ready_page


# Tests

def test_mouse_drawn_digits_are_recognised(blank_page, spread_of_digits):
    misses = []
    for index, label, stroke_list in spread_of_digits:
        label_shown = draw_digit(blank_page, stroke_list)
        if label_shown != str(label):
            misses.append(f"test image {index}: label {label}, page shows {label_shown!r} ({len(stroke_list)} strokes)")
        clear(blank_page)

    correct = len(spread_of_digits) - len(misses)
    print(f"{correct} of {len(spread_of_digits)} mouse-drawn digits recognised", *misses, sep="\n")
    assert correct >= MIN_CORRECT, misses


def test_clear_empties_result(blank_page, mnist_test_set):
    _, stroke_list = traced_digit(mnist_test_set, 0)
    assert draw_digit(blank_page, stroke_list) != ""

    clear(blank_page)

    assert shown_label(blank_page) == ""
    assert shown_probabilities(blank_page) == [0] * 10
    assert blank_page.locator("#timing").inner_text() == ""
    assert blank_page.locator("#empty-hint").is_visible()


def test_undo_removes_last_stroke(blank_page, mnist_test_set):
    # Test image 4 is a 4 that traces into two strokes.
    _, stroke_list = traced_digit(mnist_test_set, 4)
    assert len(stroke_list) == 2
    page = blank_page
    placed = strokes_on_canvas(page, stroke_list)

    draw_with_mouse(page, placed[:1])
    one_stroke = (shown_label(page), shown_probabilities(page))
    clear(page)
    draw_with_mouse(page, placed)
    two_strokes = (shown_label(page), shown_probabilities(page))
    previous = result_id(page)
    page.click("#undo")
    wait_for_result(page, previous)
    after_undo = (shown_label(page), shown_probabilities(page))

    assert two_strokes[1] != one_stroke[1]
    assert after_undo[0] == one_stroke[0]
    assert after_undo[1] == one_stroke[1]


def test_touch_drawn_digit_is_recognised(new_page, site_url, mnist_test_set):
    label, stroke_list = traced_digit(mnist_test_set, 1)
    page = new_page(has_touch=True)
    page.goto(site_url)
    wait_until_ready(page)
    session = page.context.new_cdp_session(page)
    record_pointer_types(page)

    previous = result_id(page)
    placed = strokes_on_canvas(page, stroke_list)
    for stroke in placed:
        points = list(interpolate(stroke, MOVE_STEPS))
        x, y = points[0]
        session.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
        for x, y in points[1:]:
            session.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
        session.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    wait_for_result(page, previous)
    session.detach()

    assert recorded_pointer_types(page) == ["touch"] * len(placed)
    assert shown_label(page) == str(label)


def test_pen_drawn_digit_is_recognised(blank_page, mnist_test_set):
    label, stroke_list = traced_digit(mnist_test_set, 2)
    page = blank_page
    session = page.context.new_cdp_session(page)

    def pen_event(kind, x, y, buttons):
        session.send("Input.dispatchMouseEvent", {
            "type": kind, "x": x, "y": y, "button": "left", "buttons": buttons,
            "clickCount": 1, "pointerType": "pen", "force": 0.5,
        })

    record_pointer_types(page)
    previous = result_id(page)
    placed = strokes_on_canvas(page, stroke_list)
    for stroke in placed:
        points = list(interpolate(stroke, MOVE_STEPS))
        pen_event("mousePressed", *points[0], buttons=1)
        for x, y in points[1:]:
            pen_event("mouseMoved", x, y, buttons=1)
        pen_event("mouseReleased", *points[-1], buttons=0)
    wait_for_result(page, previous)
    session.detach()

    assert recorded_pointer_types(page) == ["pen"] * len(placed)
    assert shown_label(page) == str(label)


def test_empty_canvas_after_clear_shows_hint(blank_page, mnist_test_set):
    _, stroke_list = traced_digit(mnist_test_set, 0)
    draw_digit(blank_page, stroke_list)

    clear(blank_page)

    assert shown_label(blank_page) == ""
    hint = blank_page.locator("#empty-hint")
    assert hint.is_visible()
    assert hint.inner_text().strip() != ""
    assert traceback_markers_in_text(blank_page) == []


def test_single_dot_shows_message_without_label(blank_page):
    page = blank_page
    box = canvas_box(page)
    previous = result_id(page)

    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    wait_for_result(page, previous)

    assert shown_label(page) == ""
    message = page.locator("#message")
    assert message.get_attribute("data-code") == "drawing_too_small"
    assert "draw it larger" in message.inner_text()
    assert shown_probabilities(page) == [0] * 10
    assert traceback_markers_in_text(page) == []


def test_page_loads_nothing_from_other_origins(blank_page, site_url, dist_dir, mnist_test_set):
    _, stroke_list = traced_digit(mnist_test_set, 0)
    draw_digit(blank_page, stroke_list)
    guard = blank_page.origin_guard

    assert guard.foreign == []
    loaded = {url[len(site_url):] for url in guard.allowed}
    # The worker's own downloads count too: the guard must see them to be worth anything.
    expected = ["", "models/index.json", *(built_name(dist_dir, pattern) for pattern in (
        "app.*.js", "worker.*.js", "pyodide/*/pyodide.asm.wasm", "digits.*.zip"))]
    for path in expected:
        assert path in loaded, f"{site_url}{path} was not requested through the guard; requested: {sorted(loaded)}"


def test_origin_guard_aborts_other_origin(new_page, site_url):
    page = new_page(check_origins=False)
    page.goto(site_url)
    # Port 9 on 127.0.0.1 is a different origin; the guard aborts the request before it leaves the browser.
    outcome = page.evaluate("() => fetch('http://127.0.0.1:9/probe').then(() => 'loaded', () => 'failed')")

    assert outcome == "failed"
    assert page.origin_guard.foreign == ["http://127.0.0.1:9/probe"]


def test_keyboard_drawn_line_is_recognised(blank_page):
    page = blank_page
    page.focus("#canvas")
    previous = result_id(page)

    # The pen starts in the middle; lift it 8/28 of the side, then draw down 16/28: a "1".
    page.keyboard.press("Shift+ArrowUp")
    page.keyboard.press("Shift+ArrowUp")
    page.keyboard.press("Space")
    for _ in range(4):
        page.keyboard.press("Shift+ArrowDown")
    page.keyboard.press("Space")
    wait_for_result(page, previous)

    assert shown_label(page) == "1"
    assert page.locator("#pad").get_attribute("data-pen") == "up"


def test_held_space_toggles_pen_once(blank_page):
    page = blank_page
    page.focus("#canvas")

    page.evaluate("""() => {
      const canvas = document.querySelector("#canvas");
      for (const repeat of [false, true, true]) {
        canvas.dispatchEvent(new KeyboardEvent("keydown", {key: " ", code: "Space", repeat, bubbles: true, cancelable: true}));
      }
    }""")

    assert page.locator("#pad").get_attribute("data-pen") == "down"
    previous = result_id(page)
    page.keyboard.press("Space")
    wait_for_result(page, previous)
    assert page.locator("#pad").get_attribute("data-pen") == "up"
    # One stroke, so one undo empties the drawing.
    page.click("#undo")
    page.wait_for_function("document.querySelector('#empty-hint').checkVisibility()")
