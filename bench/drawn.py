"""Print the accuracy of every shipped model on the drawn test set.

Run from the repository root with the venv's Python:

    .venv/bin/python bench/drawn.py [--data DIR] [--per-class 20] [--models site/models] [--misses]
                                    [--trace-check N]

The drawn test set (tests/strokes.py, drawn_test_set) is the first --per-class MNIST test images
of each digit traced into pen strokes and drawn as the page sends them, 140x140 RGBA, in six
variants: normal, thick and thin brush, small, off-centre and slanted. Every drawing is
classified with digits.classify, as the page's worker does, in CPython. The goal is at least
98% overall for the CNN; the script prints whether it is met and exits 0 either way.

--trace-check N also traces the first N MNIST test images, whatever their class, and prints the
share whose drawing as the page sends it (strokes.render_as_page_sends) keeps its label under each
model: a check that a change to the tracer helps digits in general, not only the drawn set's 200.
"""

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "py"), str(ROOT / "tests")]

import digits  # noqa: E402
import strokes  # noqa: E402

GOAL_MODEL = "cnn"
GOAL_ACCURACY = 0.98


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.environ.get("MNIST_DIR"),
                        help="folder with the MNIST test IDX files (.gz or raw); default: $MNIST_DIR")
    parser.add_argument("--per-class", type=int, default=20, help="MNIST test digits per class to draw (default: 20)")
    parser.add_argument("--models", type=Path, default=ROOT / "site" / "models",
                        help="folder whose *.json model files are measured (default: site/models)")
    parser.add_argument("--misses", action="store_true", help="also list every drawing a model labels wrongly")
    parser.add_argument("--trace-check", type=int, default=0, metavar="N",
                        help="also trace the first N MNIST test images and print the share that keeps its label (default: 0, off)")
    args = parser.parse_args()
    if args.data is None:
        parser.error("pass --data DIR or set MNIST_DIR to the folder with the MNIST IDX files")
    if args.per_class < 1:
        parser.error(f"--per-class must be at least 1, got {args.per_class}")
    if args.trace_check < 0:
        parser.error(f"--trace-check must be 0 (off) or a count of images, got {args.trace_check}")
    return args


def score(model, drawn):
    """Return ({variant: correct count}, [(drawing, predicted label)] of the wrongly labelled drawings)."""
    correct = {variant: 0 for variant in strokes.DRAWN_VARIANTS}
    misses = []
    for drawing in drawn:
        predicted = digits.classify(model, drawing.rgba).label
        if predicted == drawing.label:
            correct[drawing.variant] += 1
        else:
            misses.append((drawing, predicted))
    return correct, misses


def cell(correct, total):
    return f"{100 * correct / total:6.2f}% ({correct}/{total})"


def print_table(results, per_variant):
    """Print one row per variant and one column per model file, then the overall accuracy."""
    names = list(results)
    total = per_variant * len(strokes.DRAWN_VARIANTS)
    width = max(len(cell(total, total)), *(len(name) for name in names))
    print(f"{'variant':<12}" + "".join(f"  {name:>{width}}" for name in names))
    for variant in strokes.DRAWN_VARIANTS:
        print(f"{variant:<12}" + "".join(f"  {cell(results[name][variant], per_variant):>{width}}" for name in names))
    print(f"{'overall':<12}" + "".join(f"  {cell(sum(results[name].values()), total):>{width}}" for name in names))


def print_goal(results, total):
    if GOAL_MODEL not in results:
        print(f"goal: {GOAL_MODEL} >= {100 * GOAL_ACCURACY:.0f}% overall: not measured, no {GOAL_MODEL}.json model file")
        return
    accuracy = sum(results[GOAL_MODEL].values()) / total
    verdict = "met" if accuracy >= GOAL_ACCURACY else "NOT met"
    print(f"goal: {GOAL_MODEL} >= {100 * GOAL_ACCURACY:.0f}% overall: {100 * accuracy:.2f}%, {verdict}")


def trace_check(models, images, labels, count):
    """Print, per model, how many of the first count test images keep their label once traced and drawn as the page sends them."""
    count = min(count, len(images))
    started = time.perf_counter()
    drawings = [strokes.render_as_page_sends(strokes.image_to_strokes(image)) for image in images[:count]]
    print(f"trace check: the first {count} MNIST test images traced and drawn as the page sends them, "
          f"in {time.perf_counter() - started:.1f} s")
    for name, model in models.items():
        labels_kept = sum(digits.classify(model, rgba).label == label for rgba, label in zip(drawings, labels[:count]))
        print(f"  {name}: {cell(int(labels_kept), count)} keep their label")


def main():
    args = parse_arguments()
    model_files = sorted(args.models.glob("*.json"))
    model_files = [path for path in model_files if path.name != "index.json"]
    if not model_files:
        print(f"error: no model files (*.json) in {args.models}", file=sys.stderr)
        return 2
    try:
        images, labels = digits.load_mnist(args.data, "test")
        models = {path.stem: digits.load_model(path) for path in model_files}
    except (digits.IdxFormatError, digits.ModelFileError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    started = time.perf_counter()
    try:
        drawn = strokes.drawn_test_set(images, labels, args.per_class)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    per_variant = 10 * args.per_class
    print(f"drawn test set: the first {args.per_class} MNIST test images of each digit ({per_variant} digits) x "
          f"{len(strokes.DRAWN_VARIANTS)} variants = {len(drawn)} drawings of {strokes.PAGE_INPUT_SIDE}x"
          f"{strokes.PAGE_INPUT_SIDE} RGBA, built in {time.perf_counter() - started:.1f} s")
    print(f"variants: brush {strokes.PAGE_INPUT_SIDE * strokes.PAGE_BRUSH_FRACTION:g} px; thick x{strokes.THICK_BRUSH_FACTOR:g}, "
          f"thin x{strokes.THIN_BRUSH_FACTOR:g}; small {strokes.SMALL_DIGIT_SHARE:.2f} of the side; off-centre "
          f"{strokes.OFF_CENTRE_DIGIT_SHARE:.2f} of the side in a corner; slanted: shear {strokes.SLANT_SHEAR:g} and "
          f"rotation {strokes.SLANT_ROTATION:g} degrees")

    results = {}
    for name, model in models.items():
        started = time.perf_counter()
        results[name], misses = score(model, drawn)
        print(f"{name}.json (model {model.name}, version {model.version}): classified in {time.perf_counter() - started:.1f} s")
        if args.misses:
            for drawing, predicted in misses:
                print(f"  test image {drawing.index} ({drawing.variant}): label {drawing.label}, classified as {predicted}")
    print()
    print_table(results, per_variant)
    print()
    print_goal(results, per_variant * len(strokes.DRAWN_VARIANTS))
    if args.trace_check:
        print()
        trace_check(models, images, labels, args.trace_check)
    return 0


if __name__ == "__main__":
    sys.exit(main())
