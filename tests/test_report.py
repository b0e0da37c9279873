"""Tests of train/report.py on a hand-made model and a 14-image test set with known outputs."""

import base64
import hashlib
import io
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import digits
from train import report

REPO = Path(__file__).resolve().parent.parent
LOGIT_SCALE = 10.0

# (true label, lit pixel, brightness): image i is black except pixel (0, lit pixel), and the tiny
# model's only non-zero logit is LOGIT_SCALE * brightness / 255 for the digit equal to the lit pixel.
# So the model predicts the lit pixel, and brighter pixels give more confident predictions.
CASES = [
    (0, 0, 255),
    (0, 0, 200),
    (0, 6, 100),  # wrong
    (1, 1, 255),
    (1, 7, 250),  # wrong, the most confident error
    (2, 2, 255),
    (3, 5, 150),  # wrong
    (3, 3, 255),
    (4, 9, 200),  # wrong
    (9, 4, 200),  # wrong, exactly as confident as the one before
    (5, 5, 255),
    (6, 6, 255),
    (7, 7, 255),
    (9, 9, 255),
]  # no 8 at all
WRONG_BY_CONFIDENCE = [4, 8, 9, 6, 2]
HISTORY = [
    {"epoch": 1, "loss": 0.9, "train_accuracy": 0.7, "test_accuracy": 0.8, "seconds": 1.25},
    {"epoch": 2, "loss": 0.4, "train_accuracy": 0.85, "test_accuracy": 0.9, "seconds": 2.25},
]
TRAINING = {"model": "tiny", "epochs": 2, "lr": 0.002, "augmentation": {"max_shift": 2}, "quick": True}


def expected_confusion():
    matrix = np.zeros((10, 10), dtype=int)
    for true, predicted in [(0, 0), (0, 0), (0, 6), (1, 1), (1, 7), (2, 2), (3, 5), (3, 3), (4, 9), (9, 4),
                            (5, 5), (6, 6), (7, 7), (9, 9)]:
        matrix[true, predicted] += 1
    return matrix


def write_idx(path, array):
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(size.to_bytes(4, "big") for size in array.shape)
    path.write_bytes(header + array.tobytes())


def case_images():
    images = np.zeros((len(CASES), 28, 28), dtype=np.uint8)
    for index, (_, lit, brightness) in enumerate(CASES):
        images[index, 0, lit] = brightness
    return images


def case_labels():
    return np.array([label for label, _, _ in CASES], dtype=np.uint8)


def tiny_layers():
    weight = np.zeros((784, 10), dtype=np.float32)
    for digit in range(10):
        weight[digit, digit] = LOGIT_SCALE  # pixel (0, digit) is input number digit
    return [{"type": "flatten"}, {"type": "dense", "weight": weight, "bias": np.zeros(10, dtype=np.float32)}]


@pytest.fixture
def data_dir(tmp_path):
    directory = tmp_path / "mnist"
    directory.mkdir()
    write_idx(directory / "t10k-images-idx3-ubyte", case_images())
    write_idx(directory / "t10k-labels-idx1-ubyte", case_labels())
    return directory


@pytest.fixture
def model_path(tmp_path, data_dir):
    images_sha256 = hashlib.sha256((data_dir / "t10k-images-idx3-ubyte").read_bytes()).hexdigest()
    path = tmp_path / "tiny.json"
    digits.save_model(path, "tiny", tiny_layers(), 0.0, 1.0, test_accuracy=0.5, history=HISTORY, training=TRAINING,
                      training_data_sha256={"test-images": images_sha256, "test-labels": "0" * 64})
    return path


@pytest.fixture
def evaluation(model_path):
    return report.evaluate(digits.load_model(model_path), case_images(), case_labels())


@pytest.fixture
def page(model_path, data_dir, evaluation):
    model = digits.load_model(model_path)
    return report.render_report(model, str(model_path), evaluation, case_images(), report.mnist_test_sha256(data_dir))


def expected_confidence(brightness):
    logit = math.exp(LOGIT_SCALE * brightness / 255)
    return logit / (logit + 9)


# Evaluation

def test_probabilities_match_hand_computed_softmax(evaluation):
    for index, (_, lit, brightness) in enumerate(CASES):
        assert evaluation.probabilities[index, lit] == pytest.approx(expected_confidence(brightness), abs=1e-6)
        others = np.delete(evaluation.probabilities[index], lit)
        assert others == pytest.approx(np.full(9, (1 - expected_confidence(brightness)) / 9), abs=1e-6)


def test_probabilities_same_in_any_batch_size(model_path):
    model = digits.load_model(model_path)
    whole = report.predict_probabilities(model, case_images(), batch_size=len(CASES))
    batched = report.predict_probabilities(model, case_images(), batch_size=4)
    assert batched.shape == (len(CASES), 10)
    assert np.allclose(batched, whole, rtol=0, atol=1e-12)


def test_confusion_matrix_counts_exact(evaluation):
    assert evaluation.confusion.tolist() == expected_confusion().tolist()
    assert evaluation.correct == 9
    assert evaluation.count == 14


def test_per_class_accuracy_exact(evaluation):
    accuracy = report.per_class_accuracy(evaluation.confusion)
    expected = [2 / 3, 1 / 2, 1, 1 / 2, 0, 1, 1, 1, math.nan, 1 / 2]
    assert np.isnan(accuracy[8])
    assert np.delete(accuracy, 8).tolist() == pytest.approx(np.delete(expected, 8).tolist(), abs=1e-15)


def test_most_confidently_wrong_order(evaluation):
    wrong = report.most_confidently_wrong(evaluation.labels, evaluation.probabilities, count=30)
    assert wrong.tolist() == WRONG_BY_CONFIDENCE


def test_most_confidently_wrong_keeps_count(evaluation):
    wrong = report.most_confidently_wrong(evaluation.labels, evaluation.probabilities, count=3)
    assert wrong.tolist() == WRONG_BY_CONFIDENCE[:3]


def test_most_confidently_wrong_none_when_all_right():
    probabilities = np.eye(10)[[3, 1, 4]]
    assert report.most_confidently_wrong(np.array([3, 1, 4]), probabilities).tolist() == []


# Axes and formatting

def test_nice_ticks_cover_range_with_round_steps():
    assert report.nice_ticks(0, 0.8) == [0, 0.2, 0.4, 0.6, 0.8]
    assert report.nice_ticks(74.6, 100) == [70, 80, 90, 100]
    assert report.nice_ticks(98.22, 100) == [98, 98.5, 99, 99.5, 100]
    assert report.nice_ticks(0.03, 0.97) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]


def test_epoch_ticks_are_round_between_ends():
    assert report.epoch_ticks(1, 30) == [1, 5, 10, 15, 20, 25, 30]
    assert report.epoch_ticks(1, 12) == [1, 2, 4, 6, 8, 10, 12]
    assert report.epoch_ticks(1, 2) == [1, 2]
    assert report.epoch_ticks(1, 1) == [1, 2]


def test_format_duration():
    assert report.format_duration(3.5) == "3.5 s"
    assert report.format_duration(230.6) == "3 min 51 s"
    assert report.format_duration(3725) == "1 h 02 min"


# The page

def test_page_has_every_section(page):
    for section in ("summary", "training", "data", "confusion", "per-class", "wrong"):
        assert f'<section id="{section}"' in page
        assert f'href="#{section}"' in page


def test_page_header_describes_model(page, model_path):
    assert "<h1>Model report: tiny</h1>" in page
    assert f'<span class="mono">{digits.load_model(model_path).version}</span>' in page
    assert "Dense(784 -&gt; 10)" in page
    assert "<dt>test accuracy (model file)</dt><dd>50.00%</dd>" in page
    assert "<dt>test accuracy (this report)</dt><dd>64.29% (9 of 14 test images)</dd>" in page
    assert "<dt>parameters</dt><dd>7,850</dd>" in page
    assert "<dt>training time</dt><dd>3.5 s, the sum of 2 epochs' times</dd>" in page


def test_page_lists_training_settings(page):
    assert '<th scope="row" class="mono">lr</th><td>0.002</td>' in page
    assert '<th scope="row" class="mono">augmentation</th><td>max_shift: 2</td>' in page
    assert '<th scope="row" class="mono">quick</th><td>true</td>' in page


def test_page_checks_test_data_sha256(page):
    assert re.search(r'<th scope="row" class="mono">test-images</th><td class="mono hash">[0-9a-f]{64}</td>'
                     r'<td class="hash"><span class="ok">same file</span></td>', page)
    assert '<span class="mismatch">differs: this report read ' in page


def test_page_has_four_accessible_charts(page):
    charts = re.findall(r'<svg class="chart" id="([a-z-]+)"[^>]*role="img" aria-labelledby="([^"]+)"', page)
    assert [chart_id for chart_id, _ in charts] == ["loss-chart", "accuracy-chart", "confusion-chart", "per-class-chart"]
    for chart_id, labelled_by in charts:
        assert labelled_by == f"{chart_id}-title {chart_id}-desc"
        assert re.search(f'<title id="{chart_id}-title">[^<]+</title>', page)
        assert re.search(f'<desc id="{chart_id}-desc">[^<]+</desc>', page)


def test_charts_label_their_axes(page):
    for label in ("epoch", "loss (cross-entropy, nats)", "accuracy (%)", "predicted digit", "true digit"):
        assert f">{label}</text>" in page


def test_confusion_chart_shows_counts(page):
    assert "<title>true 0, predicted 0: 2 images</title>" in page
    assert "<title>true 0, predicted 6: 1 image</title>" in page
    assert "<title>true 8, predicted 8: 0 images</title>" in page
    assert "The most frequent error is a true 0 labelled 6 (1 image)." in page


def test_per_class_chart_shows_accuracies(page):
    assert ">66.67%  (2/3)</text>" in page
    assert ">0.00%  (0/1)</text>" in page
    assert ">no test images</text>" in page


def test_wrong_images_in_confidence_order(page):
    alts = re.findall(r'alt="Test image (\d+), a handwritten (\d) that the model labelled (\d) with ([\d.]+)% confidence"', page)
    assert [int(index) for index, _, _, _ in alts] == WRONG_BY_CONFIDENCE
    index, label, predicted, confidence = alts[0]
    assert (label, predicted) == ("1", "7")
    assert confidence == f"{100 * expected_confidence(250):.1f}"


def test_wrong_images_are_enlarged_png(page):
    sources = re.findall(r'<img src="data:image/png;base64,([^"]+)" width="84" height="84"', page)
    assert len(sources) == len(WRONG_BY_CONFIDENCE)
    picture = np.asarray(Image.open(io.BytesIO(base64.b64decode(sources[0]))))
    # Test image 4 is black except pixel (0, 7) = 250; shown inverted and 3 times larger.
    expected = np.full((84, 84), 255, dtype=np.uint8)
    expected[0:3, 21:24] = 5
    assert picture.shape == (84, 84)
    assert np.array_equal(picture, expected)


def test_page_loads_nothing_external(page):
    assert "http://" not in page
    assert "https://" not in page
    assert "<script" not in page
    assert re.findall(r"<link[^>]*>", page) == ['<link rel="icon" href="data:,">']
    for value in re.findall(r'(?:src|href)="([^"]*)"', page):
        assert value.startswith(("data:image/png;base64,", "#", "data:,", "../")), value


def test_page_links_back_to_drawing_page(page):
    assert '<a href="../">Back to the drawing page</a>' in page


def test_page_without_history_says_so(tmp_path, data_dir):
    path = tmp_path / "bare.json"
    digits.save_model(path, "bare", tiny_layers(), 0.0, 1.0)
    model = digits.load_model(path)
    evaluation = report.evaluate(model, case_images(), case_labels())

    page = report.render_report(model, str(path), evaluation, case_images(), report.mnist_test_sha256(data_dir))

    assert "This model file has no training history, so there are no curves." in page
    assert "This model file records no training settings." in page
    images_sha256 = report.mnist_test_sha256(data_dir)["test-images"]
    assert f"not recorded in the model file; this report read {images_sha256}" in page
    assert 'id="loss-chart"' not in page
    assert 'id="confusion-chart"' in page


# Command line

def run_report(*args):
    environment = {**os.environ, "PYTHONPATH": str(REPO / "py")}
    return subprocess.run([sys.executable, "-m", "train.report", *args], cwd=REPO, capture_output=True, text=True,
                          env=environment, timeout=120)


def test_command_writes_report(model_path, data_dir, tmp_path):
    out = tmp_path / "reports"

    result = run_report("--model", str(model_path), "--data", str(data_dir), "--out", str(out))

    assert result.returncode == 0, result.stderr
    written = out / "tiny.html"
    assert result.stdout.splitlines() == ["test accuracy: 64.29% (9/14)",
                                          f"wrote {written} ({written.stat().st_size / 1e3:.0f} kB)"]
    text = written.read_text(encoding="utf-8")
    assert text.startswith("<!doctype html>")
    assert len(re.findall(r"<img ", text)) == len(WRONG_BY_CONFIDENCE)


def test_command_rejects_missing_data_folder(model_path, tmp_path):
    result = run_report("--model", str(model_path), "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path))

    assert result.returncode == 2
    assert f"error: --data {tmp_path / 'nowhere'} is not a folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_command_reports_broken_model(data_dir, tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "digits-model"')

    result = run_report("--model", str(broken), "--data", str(data_dir), "--out", str(tmp_path))

    assert result.returncode == 2
    assert "broken.json is not valid JSON" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "broken.html").exists()
