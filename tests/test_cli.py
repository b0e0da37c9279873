import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import digits
from test_model_file import tiny_layers

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(*args, env=None):
    environment = {**os.environ, "PYTHONPATH": os.path.join(REPO, "py"), **(env or {})}
    return subprocess.run([sys.executable, "-m", "digits", *args], capture_output=True, text=True, env=environment, timeout=120)


@pytest.fixture
def tiny_model_path(tmp_path):
    path = tmp_path / "tiny.json"
    digits.save_model(path, "tiny", tiny_layers(), 0.0, 1.0)
    return path


def png_bytes(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_evaluate_prints_accuracy_line(tiny_model_path, mnist_dir):
    result = run_cli("evaluate", "--model", str(tiny_model_path), "--data", str(mnist_dir))

    assert result.returncode == 0, result.stderr
    last_line = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"accuracy: 0\.\d{4} \(\d+/10000\)", last_line)


def test_classify_json(tiny_model_path, mnist_dir, tmp_path):
    images, labels = digits.load_mnist(mnist_dir, "test")
    path = tmp_path / "digit.png"
    path.write_bytes(png_bytes(255 - images[0]))
    expected = digits.classify(digits.load_model(tiny_model_path), images[0])

    result = run_cli("classify", "--model", str(tiny_model_path), "--json", str(path))

    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)["results"][0]
    assert record["label"] == expected.label
    assert record["probabilities"] == pytest.approx(expected.probabilities, abs=1e-6)


def test_classify_reports_bad_files_and_continues(tiny_model_path, tmp_path):
    not_image = tmp_path / "notes.txt"
    not_image.write_text("not an image")
    blank = tmp_path / "blank.png"
    blank.write_bytes(png_bytes(np.full((30, 30), 255, np.uint8)))

    result = run_cli("classify", "--model", str(tiny_model_path), str(not_image), str(blank), str(tmp_path / "missing.png"))

    assert result.returncode == 1
    assert "notes.txt: error: the data is not an image" in result.stderr
    assert "blank.png: error: the drawing is empty" in result.stderr
    assert "missing.png: error: cannot read" in result.stderr
    assert "Traceback" not in result.stderr


def test_evaluate_reports_corrupt_model(tmp_path, mnist_dir):
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "digits-model"')

    result = run_cli("evaluate", "--model", str(broken), "--data", str(mnist_dir))

    assert result.returncode == 2
    assert "broken.json is not valid JSON" in result.stderr
    assert "Traceback" not in result.stderr


def test_decode_image_rejects_too_many_pixels():
    data = png_bytes(np.zeros((100, 100), np.uint8))

    with pytest.raises(digits.InvalidImageError, match="100x100 = 10000 pixels; the limit is 5000") as raised:
        digits.decode_image(data, max_pixels=5000)

    assert raised.value.code == "image_too_large"


def test_decode_image_rejects_truncated_png():
    data = png_bytes(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))

    with pytest.raises(digits.InvalidImageError, match="could not be decoded"):
        digits.decode_image(data[: len(data) // 2])


def test_decode_image_turns_photo_upright():
    image = Image.new("L", (40, 20), 255)
    exif = image.getexif()
    exif[0x0112] = 6  # EXIF orientation: rotate 90 degrees clockwise to view
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)

    assert digits.decode_image(buffer.getvalue()).shape == (40, 20, 4)


def test_classify_pixels_skips_preprocessing(tiny_model_path):
    model = digits.load_model(tiny_model_path)
    pixels = np.zeros(784)
    pixels[0], pixels[1] = 1.0, 0.5

    result = digits.classify_pixels(model, pixels.tolist())

    assert result.label == 0
    assert result.image[0, :2].tolist() == [1.0, 0.5]


@pytest.mark.parametrize("pixels, error", [
    ([0.5] * 783, digits.InvalidDrawingError),
    ([float("nan")] * 784, digits.InvalidDrawingError),
    ([2.0] * 784, digits.InvalidDrawingError),
    (["a"] * 784, digits.InvalidDrawingError),
    ([0.0] * 784, digits.EmptyDrawingError),
])
def test_classify_pixels_rejects_bad_values(tiny_model_path, pixels, error):
    with pytest.raises(error):
        digits.classify_pixels(digits.load_model(tiny_model_path), pixels)


def test_decode_image_scales_16_bit_png():
    paper = np.full((40, 40), 65535, np.uint16)
    paper[10:30, 18:22] = 20000
    buffer = io.BytesIO()
    Image.fromarray(paper).save(buffer, format="PNG")

    decoded = digits.decode_image(buffer.getvalue())

    assert decoded[0, 0].tolist() == [255, 255, 255, 255]
    assert decoded[20, 20].tolist() == [78, 78, 78, 255]
