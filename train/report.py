"""Write the report of a trained model as one HTML page.

    PYTHONPATH=py python3 -m train.report --model site/models/mlp.json --data DIR --out site/reports

The page shows the loss and accuracy per epoch, from the history that training saved in the
model file. It then runs the model on MNIST's 10,000 test images and shows the confusion
matrix, the accuracy per digit and the wrongly labelled test images with the highest
confidence. It is one self-contained file, <out>/<model name>.html: the plots are inline SVG
and the images PNG data URIs, so it loads nothing else and needs no script.
"""

import argparse
import base64
import dataclasses
import hashlib
import html
import io
import math
import os
import sys

import numpy as np
from PIL import Image

from digits import IdxFormatError, ModelFileError, load_mnist, load_model
from digits.idx import MNIST_FILES, find_idx_file, read_idx_bytes
from digits.model_file import softmax

CLASSES = 10
BATCH_SIZE = 500
WRONG_IMAGES = 30
# Each wrong test image is enlarged this many times, without smoothing, so its pixels stay visible.
IMAGE_SCALE = 3

# Colours of the page, the site's palette (site/style.css) where it has one.
TEXT = "#1d2433"
MUTED = "#5a6272"
GRID = "#e3e7ee"
AXIS = "#8a93a3"
BLUE = "#1a5fb4"
ORANGE = "#c64600"
RED = "#a51d2d"


# Evaluation

@dataclasses.dataclass
class Evaluation:
    """The model's outputs for every test image, and the counts derived from them."""

    labels: np.ndarray  # (N,) true digits
    probabilities: np.ndarray  # (N, 10) softmax outputs, float64
    predicted: np.ndarray  # (N,) the most probable digit
    confusion: np.ndarray  # (10, 10) counts: row = true digit, column = predicted digit

    @property
    def correct(self):
        return int(np.trace(self.confusion))

    @property
    def count(self):
        return len(self.labels)


def predict_probabilities(model, images, batch_size=BATCH_SIZE):
    """Run the model on uint8 images (N, 28, 28) in batches and return the softmax outputs (N, 10) in float64."""
    batches = []
    for start in range(0, len(images), batch_size):
        pixels = images[start: start + batch_size].astype(np.float32) / np.float32(255.0)
        batches.append(softmax(model.logits(pixels).astype(np.float64)))
    if not batches:
        return np.zeros((0, CLASSES))
    return np.concatenate(batches)


def confusion_matrix(labels, predicted, classes=CLASSES):
    """Count the images of each (true digit, predicted digit) pair; rows are true digits."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels, dtype=np.int64), np.asarray(predicted, dtype=np.int64)), 1)
    return matrix


def per_class_accuracy(confusion):
    """Return the share of each true digit's images labelled correctly, NaN for a digit without images."""
    totals = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(confusion) / totals, np.nan)


def most_confidently_wrong(labels, probabilities, count=WRONG_IMAGES):
    """Return the indices of up to count wrongly labelled images, highest probability of the wrong label first.

    Images with equal probability keep their order in the test set.
    """
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    confidence = probabilities[wrong, predicted[wrong]]
    order = np.argsort(-confidence, kind="stable")
    return wrong[order[:count]]


def evaluate(model, images, labels):
    probabilities = predict_probabilities(model, images)
    predicted = probabilities.argmax(axis=1)
    return Evaluation(np.asarray(labels), probabilities, predicted, confusion_matrix(labels, predicted))


def mnist_test_sha256(directory):
    """Return the sha256 of the uncompressed test IDX files, keyed as training records them ("test-images", "test-labels")."""
    checksums = {}
    for kind, stem in zip(("images", "labels"), MNIST_FILES["test"]):
        raw = read_idx_bytes(find_idx_file(directory, stem))
        checksums[f"test-{kind}"] = hashlib.sha256(raw).hexdigest()
    return checksums


# Formatting

def percent(share, decimals=2):
    return f"{100 * share:.{decimals}f}%"


def format_duration(seconds):
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def format_setting(value):
    """Write a training setting for a table cell: lists joined by commas, nested settings as key: value pairs."""
    if isinstance(value, dict):
        return ", ".join(f"{key}: {format_setting(item)}" for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(format_setting(item) for item in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def escape(value):
    return html.escape(str(value), quote=True)


# SVG charts

def nice_step(span, target):
    """Return the smallest step of 1, 2 or 5 times a power of ten that cuts span into at most about target pieces."""
    raw_step = span / target
    power = 10 ** math.floor(math.log10(raw_step))
    return next(power * factor for factor in (1, 2, 5, 10) if power * factor >= raw_step)


def nice_ticks(low, high, target=5):
    """Return evenly spaced round tick values that cover low..high."""
    if high <= low:
        high = low + 1
    step = nice_step(high - low, target)
    first = math.floor(low / step + 1e-9) * step
    last = math.ceil(high / step - 1e-9) * step
    count = round((last - first) / step)
    return [round(first + i * step, 10) for i in range(count + 1)]


def tick_decimals(ticks):
    """Return how many decimals the tick labels need to tell ticks apart."""
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1
    return max(0, -math.floor(math.log10(step) + 1e-9))


@dataclasses.dataclass
class Frame:
    """The plotting area of a chart in SVG pixels, and the data ranges it maps onto it."""

    left: float
    top: float
    width: float
    height: float
    x_range: tuple
    y_range: tuple

    def x(self, value):
        low, high = self.x_range
        return self.left + (value - low) / (high - low) * self.width

    def y(self, value):
        low, high = self.y_range
        return self.top + self.height - (value - low) / (high - low) * self.height

    @property
    def right(self):
        return self.left + self.width

    @property
    def bottom(self):
        return self.top + self.height


def svg_start(chart_id, width, height, title, description):
    """Open an inline SVG whose title and description screen readers announce as the image's name and description."""
    return [
        f'<svg class="chart" id="{chart_id}" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-labelledby="{chart_id}-title {chart_id}-desc">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(description)}</desc>',
    ]


def text(x, y, content, anchor="middle", size=12, colour=TEXT, extra=""):
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" fill="{colour}"{extra}>'
            f'{escape(content)}</text>')


def x_axis(frame, ticks, label, decimals):
    """Draw vertical grid lines, the tick labels under the frame and the axis title."""
    parts = []
    for tick in ticks:
        x = frame.x(tick)
        parts.append(f'<line x1="{x:.1f}" y1="{frame.top:.1f}" x2="{x:.1f}" y2="{frame.bottom:.1f}" stroke="{GRID}"/>')
        parts.append(text(x, frame.bottom + 16, f"{tick:.{decimals}f}", colour=MUTED))
    parts.append(f'<line x1="{frame.left:.1f}" y1="{frame.bottom:.1f}" x2="{frame.right:.1f}" y2="{frame.bottom:.1f}" '
                 f'stroke="{AXIS}"/>')
    parts.append(text(frame.left + frame.width / 2, frame.bottom + 36, label, size=13))
    return parts


def y_axis(frame, ticks, label, decimals):
    """Draw horizontal grid lines, the tick labels left of the frame and the rotated axis title."""
    parts = []
    for tick in ticks:
        y = frame.y(tick)
        parts.append(f'<line x1="{frame.left:.1f}" y1="{y:.1f}" x2="{frame.right:.1f}" y2="{y:.1f}" stroke="{GRID}"/>')
        parts.append(text(frame.left - 8, y + 4, f"{tick:.{decimals}f}", anchor="end", colour=MUTED))
    parts.append(f'<line x1="{frame.left:.1f}" y1="{frame.top:.1f}" x2="{frame.left:.1f}" y2="{frame.bottom:.1f}" '
                 f'stroke="{AXIS}"/>')
    middle = frame.top + frame.height / 2
    parts.append(text(16, middle, label, size=13, extra=f' transform="rotate(-90 16 {middle:.1f})"'))
    return parts


@dataclasses.dataclass
class Series:
    """One line of a line chart: a name for the legend, the points and how the line looks."""

    name: str
    xs: list
    ys: list
    colour: str
    dash: str = ""
    value_format: str = "{:.4f}"


def line_chart(chart_id, title, description, series, x_label, y_label, y_ticks, width=490, height=300):
    """Draw series as lines with a dot per point; every dot has a tooltip with its value."""
    all_xs = [x for line in series for x in line.xs]
    x_ticks = epoch_ticks(min(all_xs), max(all_xs))
    frame = Frame(72, 36, width - 72 - 20, height - 36 - 52, (x_ticks[0], x_ticks[-1]), (y_ticks[0], y_ticks[-1]))
    parts = svg_start(chart_id, width, height, title, description)
    parts += y_axis(frame, y_ticks, y_label, tick_decimals(y_ticks))
    parts += x_axis(frame, x_ticks, x_label, 0)
    for line in series:
        points = " ".join(f"{frame.x(x):.1f},{frame.y(y):.1f}" for x, y in zip(line.xs, line.ys))
        dash = f' stroke-dasharray="{line.dash}"' if line.dash else ""
        parts.append(f'<polyline points="{points}" fill="none" stroke="{line.colour}" stroke-width="2"{dash}/>')
        for x, y in zip(line.xs, line.ys):
            tooltip = f"{line.name}, epoch {x}: {line.value_format.format(y)}"
            parts.append(f'<circle cx="{frame.x(x):.1f}" cy="{frame.y(y):.1f}" r="3" fill="{line.colour}">'
                         f'<title>{escape(tooltip)}</title></circle>')
    parts += legend(frame, series)
    parts.append("</svg>")
    return "\n".join(parts)


def epoch_ticks(first, last):
    """Return whole-number epoch ticks: first, the multiples of a round step in between, and last."""
    if last <= first:
        return [first, first + 1]
    step = max(1, round(nice_step(last - first, 6)))
    # A multiple of step closer than half a step to either end would crowd that end's label.
    middle = [tick for tick in range(first + 1, last) if tick % step == 0 and min(tick - first, last - tick) >= step / 2]
    return [first, *middle, last]


def legend(frame, series):
    """Draw a one-row legend above the frame, where it cannot cover a line."""
    parts = []
    x = frame.left
    y = frame.top - 14
    for line in series:
        dash = f' stroke-dasharray="{line.dash}"' if line.dash else ""
        parts.append(f'<line x1="{x:.1f}" y1="{y:.1f}" x2="{x + 28:.1f}" y2="{y:.1f}" stroke="{line.colour}" '
                     f'stroke-width="2"{dash}/>')
        parts.append(text(x + 34, y + 4, line.name, anchor="start"))
        # An estimate of the label's width: about 6.5 pixels per character at font size 12.
        x += 34 + 6.5 * len(line.name) + 20
    return parts


def loss_chart(history):
    epochs = [record["epoch"] for record in history]
    losses = [record["loss"] for record in history]
    description = (f"Mean cross-entropy loss on the training images per epoch, from {losses[0]:.4f} after epoch "
                   f"{epochs[0]} to {losses[-1]:.4f} after epoch {epochs[-1]}.")
    y_ticks = nice_ticks(0, max(losses))
    series = [Series("training loss", epochs, losses, BLUE)]
    return line_chart("loss-chart", "Training loss per epoch", description, series, "epoch",
                      "loss (cross-entropy, nats)", y_ticks)


def accuracy_chart(history):
    epochs = [record["epoch"] for record in history]
    train = [100 * record["train_accuracy"] for record in history]
    test = [100 * record["test_accuracy"] for record in history]
    best = int(np.argmax(test))
    description = (f"Accuracy per epoch in percent. Test accuracy goes from {test[0]:.2f}% after epoch {epochs[0]} to "
                   f"{test[-1]:.2f}% after epoch {epochs[-1]}, with its highest value, {test[best]:.2f}%, after epoch "
                   f"{epochs[best]}. Training accuracy goes from {train[0]:.2f}% to {train[-1]:.2f}%.")
    # Accuracy is a share of 100%, so the axis ends there; the lower end follows the data so the late epochs stay readable.
    y_ticks = nice_ticks(min(train + test + [99]), 100)
    series = [
        Series("training images (augmented)", epochs, train, ORANGE, "6 4", "{:.2f}%"),
        Series("test images", epochs, test, BLUE, "", "{:.2f}%"),
    ]
    return line_chart("accuracy-chart", "Accuracy per epoch", description, series, "epoch", "accuracy (%)", y_ticks)


def blend(colour, strength):
    """Mix white with colour (#rrggbb) by strength from 0 (white) to 1 (the colour)."""
    channels = [int(colour[i: i + 2], 16) for i in (1, 3, 5)]
    mixed = [round(255 + (channel - 255) * strength) for channel in channels]
    return "#" + "".join(f"{channel:02x}" for channel in mixed)


def confusion_chart(confusion):
    """Draw the confusion matrix as a grid of counts; correct cells shade blue by their row's share, errors red."""
    cell = 44
    left, top = 76, 64
    size = cell * CLASSES
    width, height = left + size + 16, top + size + 16

    totals = confusion.sum(axis=1)
    errors = confusion.copy()
    np.fill_diagonal(errors, 0)
    worst_count = int(errors.max())
    if worst_count:
        worst = np.unravel_index(int(errors.argmax()), errors.shape)
        worst_text = (f"The most frequent error is a true {worst[0]} labelled {worst[1]} "
                      f"({worst_count} image{'s' if worst_count != 1 else ''}).")
    else:
        worst_text = "There are no errors."
    description = (f"Rows are the true digits and columns the predicted digits, so the diagonal counts the "
                   f"{int(np.trace(confusion))} correctly labelled test images and every other cell an error. "
                   f"{worst_text}")

    parts = svg_start("confusion-chart", width, height, "Confusion matrix of the test images", description)
    parts.append(text(left + size / 2, 20, "predicted digit", size=13))
    middle = top + size / 2
    parts.append(text(18, middle, "true digit", size=13, extra=f' transform="rotate(-90 18 {middle:.1f})"'))
    for digit in range(CLASSES):
        parts.append(text(left + cell * digit + cell / 2, top - 10, str(digit), size=13))
        parts.append(text(left - 12, top + cell * digit + cell / 2 + 5, str(digit), anchor="end", size=13))

    for true in range(CLASSES):
        for guess in range(CLASSES):
            count = int(confusion[true, guess])
            if true == guess:
                strength = count / totals[true] if totals[true] else 0.0
                fill = blend(BLUE, 0.15 + 0.85 * strength) if count else "#ffffff"
            else:
                strength = count / worst_count if worst_count else 0.0
                fill = blend(RED, 0.12 + 0.88 * strength) if count else "#ffffff"
            if count == 0:
                ink = "#b8bfcc"
            elif strength > 0.55:
                ink = "#ffffff"
            else:
                ink = TEXT
            x, y = left + cell * guess, top + cell * true
            tooltip = f"true {true}, predicted {guess}: {count} image{'s' if count != 1 else ''}"
            parts.append(f'<g><title>{escape(tooltip)}</title>'
                         f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{fill}" stroke="{GRID}"/>'
                         f'{text(x + cell / 2, y + cell / 2 + 4, str(count), size=12 if count < 1000 else 11, colour=ink)}</g>')
    parts.append(f'<rect x="{left}" y="{top}" width="{size}" height="{size}" fill="none" stroke="{AXIS}"/>')
    parts.append("</svg>")
    return "\n".join(parts)


def per_class_chart(confusion, overall):
    """Draw each digit's accuracy as a dot on a shared axis, with the overall accuracy as a dashed line."""
    accuracy = per_class_accuracy(confusion)
    totals = confusion.sum(axis=1)
    measured = [100 * value for value in accuracy if not np.isnan(value)]
    row = 30
    width, height = 700, 56 + row * CLASSES + 40
    # Dots need no zero baseline, so the axis starts near the lowest accuracy and differences of a tenth of a percent show.
    ticks = nice_ticks(min(measured + [100 * overall, 99]), 100) if measured else [0, 50, 100]
    frame = Frame(84, 40, width - 84 - 210, row * CLASSES, (ticks[0], ticks[-1]), (0, CLASSES))

    if measured:
        lowest = int(np.nanargmin(accuracy))
        description = (f"Share of each digit's test images labelled correctly, in percent. The lowest is digit {lowest} "
                       f"with {100 * accuracy[lowest]:.2f}%; all digits together reach {100 * overall:.2f}%.")
    else:
        description = "There are no test images."

    parts = svg_start("per-class-chart", width, height, "Accuracy per digit", description)
    parts += x_axis(frame, ticks, "accuracy (%)", tick_decimals(ticks))
    parts.append(text(frame.left - 44, 26, "digit", size=13))
    parts.append(text(frame.right + 12, 26, "accuracy (correct/images)", anchor="start", size=13))
    overall_x = frame.x(100 * overall)
    parts.append(f'<line x1="{overall_x:.1f}" y1="{frame.top - 6:.1f}" x2="{overall_x:.1f}" y2="{frame.bottom:.1f}" '
                 f'stroke="{MUTED}" stroke-dasharray="4 3"/>')
    parts.append(text(overall_x, frame.top - 10, f"all digits {100 * overall:.2f}%", colour=MUTED, size=11))

    for digit in range(CLASSES):
        y = frame.top + row * digit + row / 2
        parts.append(text(frame.left - 44, y + 5, str(digit), size=13))
        if np.isnan(accuracy[digit]):
            parts.append(text(frame.left + 8, y + 4, "no test images", anchor="start", colour=MUTED))
            continue
        x = frame.x(100 * accuracy[digit])
        parts.append(f'<line x1="{frame.left:.1f}" y1="{y:.1f}" x2="{x:.1f}" y2="{y:.1f}" stroke="{GRID}" stroke-width="2"/>')
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="6" fill="{BLUE}">'
                     f'<title>digit {digit}: {100 * accuracy[digit]:.2f}%</title></circle>')
        parts.append(text(frame.right + 12, y + 4, f"{100 * accuracy[digit]:.2f}%  "
                                                   f"({confusion[digit, digit]}/{totals[digit]})", anchor="start"))
    parts.append("</svg>")
    return "\n".join(parts)


# Images

def png_data_uri(image, scale=IMAGE_SCALE):
    """Encode an MNIST image (28x28 uint8, ink bright) as a PNG data URI, dark ink on white, enlarged without smoothing."""
    picture = Image.fromarray(255 - np.asarray(image, dtype=np.uint8))
    picture = picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def wrong_image_figure(index, image, label, probabilities, scale=IMAGE_SCALE):
    predicted = int(probabilities.argmax())
    confidence = probabilities[predicted]
    alt = (f"Test image {index}, a handwritten {label} that the model labelled {predicted} with "
           f"{percent(confidence, 1)} confidence")
    size = 28 * scale
    return (f'<figure class="wrong">'
            f'<img src="{png_data_uri(image, scale)}" width="{size}" height="{size}" alt="{escape(alt)}">'
            f'<figcaption><span class="predicted">predicted {predicted}: {percent(confidence, 1)}</span>'
            f'<br>true {label}: {percent(probabilities[label], 1)}<br><span class="index">#{index}</span></figcaption>'
            f'</figure>')


# The page

STYLE = """
:root { color-scheme: light; --text: #1d2433; --muted: #5a6272; --page: #f4f6fa; --panel: #ffffff;
  --line: #d5dae3; --accent: #1a5fb4; --danger: #a51d2d;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  color: var(--text); background: var(--page); line-height: 1.45; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1080px; padding: 16px; }
h1 { font-size: 1.6rem; margin: 0 0 4px; }
h2 { font-size: 1.2rem; margin: 0 0 12px; }
h3 { font-size: 1rem; margin: 20px 0 8px; }
p { margin: 0 0 10px; }
header p, .note { color: var(--muted); }
nav ul { display: flex; flex-wrap: wrap; gap: 4px 16px; list-style: none; padding: 0; margin: 12px 0 16px; }
a { color: var(--accent); }
section { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; padding: 16px 20px;
  margin-bottom: 16px; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 0; }
.facts dt { color: var(--muted); }
.facts dd { margin: 0; }
code, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 0.9em; }
table { border-collapse: collapse; margin: 4px 0 8px; }
th[scope="row"] { font-weight: 500; }
th, td { text-align: left; padding: 3px 12px 3px 0; border-bottom: 1px solid var(--line); vertical-align: top; }
td.number, th.number { text-align: right; font-variant-numeric: tabular-nums; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; }
svg.chart { max-width: 100%; height: auto; font-family: inherit; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(136px, 1fr)); gap: 12px; }
figure.wrong { margin: 0; text-align: center; font-size: 0.85rem; }
.gallery figcaption span { white-space: nowrap; }
figure.wrong img { display: block; margin: 0 auto 4px; border: 1px solid var(--line); image-rendering: pixelated; }
.predicted { font-weight: 600; color: var(--danger); }
.index { color: var(--muted); }
.ok { color: #26734d; }
td.hash { overflow-wrap: anywhere; }
.mismatch { color: var(--danger); font-weight: 600; }
"""


def facts(rows):
    """Render (term, HTML) pairs as a definition list; the values must already be escaped."""
    items = "".join(f"<dt>{escape(term)}</dt><dd>{value}</dd>" for term, value in rows)
    return f'<dl class="facts">{items}</dl>'


def parameter_count(model):
    return sum(int(array.size) for layer in model.layers for array in layer.arrays().values())


def summary_section(model, model_file, evaluation, history):
    metadata = model.metadata
    description = model.describe()
    recorded = description["test_accuracy"]
    measured = evaluation.correct / evaluation.count if evaluation.count else float("nan")
    rows = [
        ("model", f"<strong>{escape(model.name)}</strong>"),
        ("version", f'<span class="mono">{escape(model.version or "none")}</span>'),
        ("model file", f'<span class="mono">{escape(os.path.basename(model_file))}</span>'),
        ("test accuracy (model file)", escape(percent(recorded)) if isinstance(recorded, (int, float)) else "not recorded"),
        ("test accuracy (this report)", f"{escape(percent(measured))} ({evaluation.correct:,} of {evaluation.count:,} test images)"),
        ("parameters", f"{parameter_count(model):,}"),
        ("layers", "<br>".join(f'<span class="mono">{escape(layer)}</span>' for layer in description["layers"])),
    ]
    if history:
        seconds = sum(record.get("seconds", 0) for record in history)
        rows.append(("training time", f"{escape(format_duration(seconds))}, the sum of {len(history)} epochs' times"))
    whole_run = metadata.get("training", {}).get("seconds") if isinstance(metadata.get("training"), dict) else None
    if whole_run is not None:
        rows.append(("whole training run", f"{escape(format_duration(whole_run))}, including data loading, evaluation and export"))
    return ('<section id="summary" aria-labelledby="summary-title">\n<h2 id="summary-title">Summary</h2>\n'
            + facts(rows) + "\n</section>")


def training_section(metadata, history):
    parts = ['<section id="training" aria-labelledby="training-title">', '<h2 id="training-title">Training</h2>']
    if history:
        parts.append('<p class="note">Training loss and accuracy are measured on the augmented training images with '
                     'dropout on, so they run below the test accuracy.</p>')
        parts.append(f'<div class="charts">\n{loss_chart(history)}\n{accuracy_chart(history)}\n</div>')
    else:
        parts.append("<p>This model file has no training history, so there are no curves.</p>")

    settings = metadata.get("training")
    parts.append('<h3 id="settings-title">Settings</h3>')
    if isinstance(settings, dict) and settings:
        rows = "".join(f'<tr><th scope="row" class="mono">{escape(key)}</th><td>{escape(format_setting(value))}</td></tr>'
                       for key, value in settings.items())
        parts.append(f'<table aria-labelledby="settings-title"><tbody>{rows}</tbody></table>')
    else:
        parts.append("<p>This model file records no training settings.</p>")
    parts.append("</section>")
    return "\n".join(parts)


def data_section(metadata, test_checksums):
    recorded = metadata.get("training_data_sha256") or {}
    names = list(recorded) + [name for name in test_checksums if name not in recorded]
    rows = []
    for name in names:
        stored = recorded.get(name)
        used = test_checksums.get(name)
        if used is None:
            check = ""
        elif stored is None:
            check = f'<span class="note">not recorded in the model file; this report read {escape(used)}</span>'
        elif used == stored:
            check = '<span class="ok">same file</span>'
        else:
            check = f'<span class="mismatch">differs: this report read {escape(used)}</span>'
        rows.append(f'<tr><th scope="row" class="mono">{escape(name)}</th>'
                    f'<td class="mono hash">{escape(stored or "")}</td><td class="hash">{check}</td></tr>')
    return ('<section id="data" aria-labelledby="data-title">\n<h2 id="data-title">Data</h2>\n'
            '<p>sha256 of the uncompressed MNIST IDX files that training read, and whether this report evaluated '
            'the same test files.</p>\n'
            '<table><thead><tr><th scope="col">file</th><th scope="col">sha256 (training)</th>'
            '<th scope="col">test files of this report</th></tr></thead>\n'
            f'<tbody>{"".join(rows)}</tbody></table>\n</section>')


def confusion_section(evaluation):
    return ('<section id="confusion" aria-labelledby="confusion-title">\n'
            '<h2 id="confusion-title">Confusion matrix</h2>\n'
            f'<p>All {evaluation.count:,} test images: each row is a true digit, each column the digit the model '
            'output. Blue cells are correct, red cells errors, darker for more images.</p>\n'
            f'{confusion_chart(evaluation.confusion)}\n</section>')


def per_class_section(evaluation):
    overall = evaluation.correct / evaluation.count if evaluation.count else 0.0
    return ('<section id="per-class" aria-labelledby="per-class-title">\n'
            '<h2 id="per-class-title">Accuracy per digit</h2>\n'
            f'{per_class_chart(evaluation.confusion, overall)}\n</section>')


def wrong_section(evaluation, images, count):
    indices = most_confidently_wrong(evaluation.labels, evaluation.probabilities, count)
    wrong_total = evaluation.count - evaluation.correct
    parts = ['<section id="wrong" aria-labelledby="wrong-title">',
             f'<h2 id="wrong-title">The {len(indices)} most confidently wrong test images</h2>']
    if len(indices) == 0:
        parts.append("<p>The model labels every test image correctly.</p>")
    else:
        parts.append(f'<p>{len(indices)} of the {wrong_total:,} wrongly labelled test images, highest probability of the '
                     'wrong digit first. Under each: the digit the model output and its probability, the probability it gave '
                     'the true digit, and the image\'s index in the test set. Images are shown as dark ink on white, '
                     f'enlarged {IMAGE_SCALE} times.</p>')
        figures = [wrong_image_figure(int(index), images[index], int(evaluation.labels[index]), evaluation.probabilities[index])
                   for index in indices]
        parts.append('<div class="gallery">\n' + "\n".join(figures) + "\n</div>")
    parts.append("</section>")
    return "\n".join(parts)


def render_report(model, model_file, evaluation, images, test_checksums, wrong_count=WRONG_IMAGES):
    """Return the report page as HTML text."""
    metadata = model.metadata
    history = metadata.get("history") or []
    title = f"Model report: {model.name}"
    navigation = "".join(f'<li><a href="#{anchor}">{escape(name)}</a></li>' for anchor, name in (
        ("summary", "Summary"), ("training", "Training"), ("data", "Data"), ("confusion", "Confusion matrix"),
        ("per-class", "Accuracy per digit"), ("wrong", "Wrong images")))
    body = [
        # The site serves reports from reports/, one level below the drawing page.
        '<p><a href="../">Back to the drawing page</a></p>',
        f"<header><h1>{escape(title)}</h1>",
        f'<p>Version <span class="mono">{escape(model.version or "none")}</span>, evaluated on '
        f'{evaluation.count:,} MNIST test images.</p></header>',
        f'<nav aria-label="Sections"><ul>{navigation}</ul></nav>',
        "<main>",
        summary_section(model, model_file, evaluation, history),
        training_section(metadata, history),
        data_section(metadata, test_checksums),
        confusion_section(evaluation),
        per_class_section(evaluation),
        wrong_section(evaluation, images, wrong_count),
        "</main>",
    ]
    return ("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            # An empty icon, so the browser does not request /favicon.ico.
            '<link rel="icon" href="data:,">\n'
            f"<title>{escape(title)} ({escape(model.version or 'no version')})</title>\n"
            f"<style>{STYLE}</style>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n")


def write_report(model_file, data_dir, out_dir, wrong_count=WRONG_IMAGES):
    """Evaluate a model file on the test set in data_dir and write <out_dir>/<model name>.html; return its path."""
    model = load_model(model_file)
    images, labels = load_mnist(data_dir, "test")
    evaluation = evaluate(model, images, labels)
    page = render_report(model, os.fspath(model_file), evaluation, images, mnist_test_sha256(data_dir), wrong_count)
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"{model.name}.html")
    with open(path, "w", encoding="utf-8") as file:
        file.write(page)
    return path, evaluation


# Command line

def non_negative_int(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number of 0 or more, got {text}")
    return value


def parse_arguments(argv):
    parser = argparse.ArgumentParser(prog="python3 -m train.report",
                                     description="Write an HTML report of a model file: training curves, confusion "
                                                 "matrix, accuracy per digit and the most confidently wrong test images.")
    parser.add_argument("--model", required=True, help="model file (JSON) to report on")
    parser.add_argument("--data", default=os.environ.get("MNIST_DIR"),
                        help="folder with the MNIST test IDX files (.gz or raw); default: $MNIST_DIR")
    parser.add_argument("--out", default=os.path.join("site", "reports"),
                        help="folder to write <model name>.html into (default: site/reports)")
    parser.add_argument("--wrong", type=non_negative_int, default=WRONG_IMAGES,
                        help=f"how many of the most confidently wrong test images to show (default: {WRONG_IMAGES})")
    args = parser.parse_args(argv)
    if args.data is None:
        parser.error("pass --data DIR or set MNIST_DIR to the folder with the MNIST IDX files")
    return args


def main(argv=None):
    args = parse_arguments(argv)
    if not os.path.isdir(args.data):
        print(f"error: --data {args.data} is not a folder; pass the folder with the MNIST IDX files", file=sys.stderr)
        return 2
    try:
        path, evaluation = write_report(args.model, args.data, args.out, args.wrong)
    except (ModelFileError, IdxFormatError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"test accuracy: {percent(evaluation.correct / evaluation.count)} ({evaluation.correct}/{evaluation.count})")
    print(f"wrote {path} ({os.path.getsize(path) / 1e3:.0f} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
