"""Benchmark one classification in CPython and in Pyodide inside Chromium, and the page's start-up.

Run from the repository root with the venv's Python:

    .venv/bin/python bench/inference.py [--models mlp cnn] [--repeat N] [--contexts N]

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

# One classification in the browser: the MLP within 5 ms, the CNN within one frame at 60 Hz.
BROWSER_CLASSIFY_GOAL_MS = {"mlp": 5.0, "cnn": 16.0}
PAGE_READY_GOAL_MS = 4000.0
WARM_UP_RUNS = 5
# Test image 0 of MNIST, a 7 drawn in one stroke.
DIGIT_INDEX = 0
READY_TIMEOUT_MS = 120_000
MODELS_DIR = ROOT / "site" / "models"

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
    parser.add_argument("--models", nargs="+", default=None,
                        help="names of the shipped models to time, as in site/models/NAME.json (default: all of them)")
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
    available = sorted(path.stem for path in MODELS_DIR.glob("*.json"))
    args.models = args.models or available
    missing = [name for name in args.models if name not in available]
    if missing:
        parser.error(f"no model file site/models/{missing[0]}.json; available: {', '.join(available)}")
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


def switch_model(page, name):
    """Choose a model in the page and wait until the worker reports it loaded."""
    page.select_option("#model-select", name)
    page.wait_for_function(
        "name => document.getElementById('status')?.dataset.state === 'ready' && "
        "document.getElementById('status-text').innerText.includes('model ' + name + ',')",
        arg=name, timeout=READY_TIMEOUT_MS)
    return page.locator("#status-text").inner_text()


def measure_browser(dist_dir, rgba, side, repeat, contexts, model_names):
    """Return per-model browser timings and the navigation-to-ready times of fresh contexts."""
    from playwright.sync_api import sync_playwright

    server, url = start_server(dist_dir)
    timings = {}
    try:
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            ready_times = []
            for number in range(contexts):
                context, page, ready_at = open_ready_page(browser, url)
                ready_times.append(ready_at)
                if number == 0:
                    for name in model_names:
                        status = switch_model(page, name)
                        timings[name] = page.evaluate(TIME_IN_BROWSER, [side, side, list(rgba), WARM_UP_RUNS, repeat])
                        timings[name]["status"] = status
                    default_model = page.evaluate("() => fetch('models/index.json').then(r => r.json()).then(i => i.default)")
                context.close()
            chromium = browser.version
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
    return {"models": timings, "ready_ms": ready_times, "chromium": chromium, "default_model": default_model}


def format_ms(value):
    return f"{value:8.2f} ms" if value < 100 else f"{value:8.0f} ms"


def verdict(value, goal):
    return f"goal <= {goal:g} ms: {'met' if value <= goal else 'MISSED'}"


def model_rows(name, cpython_times, timing):
    cpython_median = statistics.median(cpython_times)
    worker_median = statistics.median(timing["workerMs"])
    round_trip_median = statistics.median(timing["roundTripMs"])
    goal = BROWSER_CLASSIFY_GOAL_MS.get(name)
    return [
        (f"{name}: CPython, canvas_to_array + classify + JSON result", format_ms(cpython_median), ""),
        (f"{name}: Pyodide worker, its `ms` field (same Python call)", format_ms(worker_median),
         verdict(worker_median, goal) if goal else ""),
        (f"{name}: Pyodide round trip, performance.now() in the page", format_ms(round_trip_median), ""),
        (f"{name}: ratio Pyodide worker / CPython", f"{worker_median / cpython_median:8.1f} x", ""),
    ]


def print_report(args, models, cpython_times, browser, machine):
    cold_ready = browser["ready_ms"][0]
    warm_ready = browser["ready_ms"][1:]

    rows = []
    for name in args.models:
        rows += model_rows(name, cpython_times[name], browser["models"][name])
    rows.append((f"Navigation to model ready ({browser['default_model']}), first (cold) context", format_ms(cold_ready),
                 verdict(cold_ready, PAGE_READY_GOAL_MS)))
    if warm_ready:
        warm_median = statistics.median(warm_ready)
        rows.append((f"Navigation to model ready ({browser['default_model']}), median of next {len(warm_ready)}",
                     format_ms(warm_median),
                     verdict(warm_median, PAGE_READY_GOAL_MS)))

    print()
    print(f"Machine: {machine}")
    print(f"Chromium {browser['chromium']}")
    for name in args.models:
        print(f"{name}: site/models/{name}.json version {models[name].version}; page: {browser['models'][name]['status']}")
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
    models = {name: digits.load_model(MODELS_DIR / f"{name}.json") for name in args.models}

    cpython_times = {}
    cpython_labels = {}
    for name, model in models.items():
        cpython_labels[name], cpython_times[name] = time_cpython(model, rgba, side, args.repeat)
    ensure_dist(args.dist)
    browser = measure_browser(args.dist, rgba, side, args.repeat, args.contexts, args.models)

    print_report(args, models, cpython_times, browser, machine)
    for name in args.models:
        if not cpython_labels[name] == browser["models"][name]["label"] == label:
            print(f"NOTE: {name}: labels differ: MNIST {label}, CPython {cpython_labels[name]}, "
                  f"Pyodide {browser['models'][name]['label']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
