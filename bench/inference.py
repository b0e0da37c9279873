"""Benchmark one classification in CPython and in Pyodide inside Chromium, and the page's start-up.

Run from the repository root with the venv's Python:

    .venv/bin/python bench/inference.py [--model site/models/mlp.json] [--repeat N] [--contexts N]

The input is an MNIST test digit traced into strokes and rendered as the page sends a drawing:
140x140 RGBA (tests/strokes.py). Each classification is preprocessing plus the forward pass,
timed as the worker runs it. The page is served from dist/ (built with build.py when missing)
on 127.0.0.1 with a free port; Chromium is env CHROMIUM, else /usr/bin/chromium.
Nothing here asserts a time: it prints the figures next to the goals.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "py"), str(ROOT / "tests"), str(ROOT)]

import numpy  # noqa: E402

import digits  # noqa: E402
import strokes  # noqa: E402
from conftest import launch_chromium  # noqa: E402

BROWSER_CLASSIFY_GOAL_MS = 5.0
PAGE_READY_GOAL_MS = 4000.0
WARM_UP_RUNS = 5
# Test image 0 of MNIST, a 7 drawn in one stroke.
DIGIT_INDEX = 0
READY_TIMEOUT_MS = 120_000

# Records when #status first reports "ready", in ms since navigation started (performance.now()).
RECORD_READY_TIME = """
new MutationObserver((changes, observer) => {
  const status = document.getElementById("status");
  if (status && status.dataset.state === "ready" && window.benchReadyAt === undefined) {
    window.benchReadyAt = performance.now();
    observer.disconnect();
  }
}).observe(document, {subtree: true, attributes: true, attributeFilter: ["data-state"]});
"""

# Runs classifyRGBA `repeat` times on the same pixels; returns the worker's ms and the page's round trips.
TIME_IN_BROWSER = """
async ([width, height, pixels, warmUp, repeat]) => {
  const rgba = Uint8Array.from(pixels);
  for (let run = 0; run < warmUp; run++) {
    await window.digitsWorker.classifyRGBA(width, height, rgba);
  }
  const workerMs = [];
  const roundTripMs = [];
  let label = null;
  for (let run = 0; run < repeat; run++) {
    const started = performance.now();
    const answer = await window.digitsWorker.classifyRGBA(width, height, rgba);
    roundTripMs.push(performance.now() - started);
    workerMs.push(answer.ms);
    label = answer.label;
  }
  return {label, workerMs, roundTripMs};
}
"""


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=ROOT / "site" / "models" / "mlp.json",
                        help="model file for the CPython timing (default: site/models/mlp.json)")
    parser.add_argument("--repeat", type=int, default=100, help="timed classifications per runtime (default: 100)")
    parser.add_argument("--contexts", type=int, default=4,
                        help="fresh browser contexts for the start-up time; the first is the cold one (default: 4)")
    parser.add_argument("--mnist", type=Path, default=os.environ.get("MNIST_DIR"),
                        help="folder with the MNIST IDX files (default: environment variable MNIST_DIR)")
    parser.add_argument("--dist", type=Path, default=os.environ.get("DIST_DIR") or ROOT / "dist",
                        help="built site to serve (default: environment variable DIST_DIR, else dist/)")
    args = parser.parse_args()
    if args.mnist is None:
        parser.error("the MNIST folder is not set: pass --mnist DIR or set MNIST_DIR")
    if args.repeat < 1 or args.contexts < 1:
        parser.error("--repeat and --contexts must be at least 1")
    if not args.model.is_file():
        parser.error(f"model file {args.model} not found: train one with python3 -m train or pass --model FILE")
    return args


def page_input(mnist_dir):
    """Return the RGBA bytes the page would send for a traced MNIST test digit, and the digit's label."""
    images, labels = digits.load_mnist(mnist_dir, "test")
    rgba = strokes.render_as_page_sends(strokes.image_to_strokes(images[DIGIT_INDEX]))
    return rgba.tobytes(), int(labels[DIGIT_INDEX])


def classify_as_worker_does(model, rgba, side):
    """Run what the worker's Python helper runs for one drawing, JSON encoding of the result included."""
    result = digits.classify(model, digits.canvas_to_array(rgba, side, side))
    return json.dumps({"ok": True, **result.to_dict()}), result.label


def time_cpython(model, rgba, side, repeat):
    for _ in range(WARM_UP_RUNS):
        classify_as_worker_does(model, rgba, side)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        _, label = classify_as_worker_does(model, rgba, side)
        times.append((time.perf_counter() - started) * 1000)
    return label, times


def ensure_dist(dist_dir):
    if (dist_dir / "index.html").is_file():
        return
    print(f"{dist_dir} has no index.html; building it with python3 build.py build", flush=True)
    subprocess.run([sys.executable, str(ROOT / "build.py"), "build"], cwd=ROOT, check=True)


def start_server(dist_dir):
    import build

    server = build.make_server(dist_dir, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, name="bench-server", daemon=True).start()
    host, port = server.server_address[:2]
    return server, f"http://{host}:{port}/"


def open_ready_page(browser, url):
    """Open url in a fresh context; return the context, the page and ms from navigation to model ready."""
    context = browser.new_context()

    def only_site(route):
        if route.request.url.startswith(url):
            route.continue_()
        else:
            route.abort()

    context.route("**/*", only_site)
    page = context.new_page()
    page.add_init_script(RECORD_READY_TIME)
    page.goto(url)
    page.wait_for_function("() => window.benchReadyAt !== undefined || "
                           "document.getElementById('status')?.dataset.state === 'failed'",
                           timeout=READY_TIMEOUT_MS)
    ready_at = page.evaluate("() => window.benchReadyAt")
    if ready_at is None:
        status = page.locator("#status").inner_text()
        context.close()
        raise RuntimeError(f"the page failed to start: {status!r}")
    return context, page, ready_at


def measure_browser(dist_dir, rgba, side, repeat, contexts):
    from playwright.sync_api import sync_playwright

    server, url = start_server(dist_dir)
    try:
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            ready_times = []
            timing = None
            for number in range(contexts):
                context, page, ready_at = open_ready_page(browser, url)
                ready_times.append(ready_at)
                if number == 0:
                    timing = page.evaluate(TIME_IN_BROWSER, [side, side, list(rgba), WARM_UP_RUNS, repeat])
                    timing["model"] = page.locator("#status-text").inner_text()
                context.close()
            timing["chromium"] = browser.version
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
    timing["ready_ms"] = ready_times
    return timing


def format_ms(value):
    return f"{value:8.2f} ms" if value < 100 else f"{value:8.0f} ms"


def verdict(value, goal):
    return f"goal <= {goal:g} ms: {'met' if value <= goal else 'MISSED'}"


def print_report(args, model, cpython_times, browser, machine):
    cpython_median = statistics.median(cpython_times)
    worker_median = statistics.median(browser["workerMs"])
    round_trip_median = statistics.median(browser["roundTripMs"])
    cold_ready = browser["ready_ms"][0]
    warm_ready = browser["ready_ms"][1:]

    rows = [
        ("CPython: canvas_to_array + classify + JSON result", format_ms(cpython_median), ""),
        ("Pyodide worker, its `ms` field (same Python call)", format_ms(worker_median),
         verdict(worker_median, BROWSER_CLASSIFY_GOAL_MS)),
        ("Pyodide round trip, performance.now() in the page", format_ms(round_trip_median), ""),
        ("Ratio browser (worker ms) / CPython", f"{worker_median / cpython_median:8.1f} x", ""),
        ("Navigation to model ready, first (cold) context", format_ms(cold_ready),
         verdict(cold_ready, PAGE_READY_GOAL_MS)),
    ]
    if warm_ready:
        warm_median = statistics.median(warm_ready)
        rows.append((f"Navigation to model ready, median of next {len(warm_ready)}", format_ms(warm_median),
                     verdict(warm_median, PAGE_READY_GOAL_MS)))

    print()
    print(f"Machine: {machine}")
    print(f"Chromium {browser['chromium']}; page model: {browser['model']}")
    print(f"CPython model: {args.model}, version {model.version}")
    print(f"Input: MNIST test image {DIGIT_INDEX} traced and rendered at {strokes.PAGE_INPUT_SIDE}x"
          f"{strokes.PAGE_INPUT_SIDE} RGBA; medians of {args.repeat} runs after {WARM_UP_RUNS} warm-up runs")
    print()
    width = max(len(name) for name, _, _ in rows)
    for name, figure, goal in rows:
        print(f"{name:<{width}}  {figure}  {goal}".rstrip())
    print()
    print("Start-up times of each context (ms): " + ", ".join(f"{value:.0f}" for value in browser["ready_ms"]))


def describe_machine():
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return (f"{platform.machine()}, {os.cpu_count()} CPUs, load average {load}; "
            f"Python {platform.python_version()}, numpy {numpy.__version__}")


def main():
    args = parse_args()
    machine = describe_machine()
    rgba, label = page_input(args.mnist)
    side = strokes.PAGE_INPUT_SIDE
    model = digits.load_model(args.model)

    cpython_label, cpython_times = time_cpython(model, rgba, side, args.repeat)
    ensure_dist(args.dist)
    browser = measure_browser(args.dist, rgba, side, args.repeat, args.contexts)

    print_report(args, model, cpython_times, browser, machine)
    if not cpython_label == browser["label"] == label:
        print(f"NOTE: labels differ: MNIST {label}, CPython {cpython_label}, Pyodide {browser['label']}; "
              "the page may load another model than --model")
    return 0


if __name__ == "__main__":
    sys.exit(main())
