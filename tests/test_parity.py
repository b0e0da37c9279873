"""Parity of the two runtimes: py/digits in CPython and in Pyodide inside Chromium return the same results.

Both classify the same MNIST test images with the model the built site loads by default,
sent as the page sends a drawing: RGBA bytes, here black ink with the image value as alpha.
"""

import json

import numpy as np
import pytest

import digits

pytestmark = [pytest.mark.browser, pytest.mark.mnist]

SAMPLE = range(50)
MAX_PROBABILITY_DIFFERENCE = 1e-5

CLASSIFY_ALL_IN_WORKER = """
async (images) => {
  const answers = [];
  for (const rgba of images) {
    const answer = await window.digitsWorker.classifyRGBA(28, 28, rgba);
    answers.push({label: answer.label, probabilities: answer.probabilities});
  }
  return answers;
}
"""


def as_rgba(image):
    """Return a (28, 28) uint8 image as RGBA bytes: black ink, the image value as alpha."""
    rgba = np.zeros((*image.shape, 4), dtype=np.uint8)
    rgba[:, :, 3] = image
    return rgba.tobytes()


def default_model_path(dist_dir):
    index = json.loads((dist_dir / "models" / "index.json").read_text(encoding="utf-8"))
    entry = next(model for model in index["models"] if model["name"] == index["default"])
    return dist_dir / "models" / entry["file"]


def test_cpython_and_pyodide_agree(shared_ready_page, dist_dir, mnist_dir):
    images, _ = digits.load_mnist(mnist_dir, "test")
    model = digits.load_model(default_model_path(dist_dir))
    pixels = [as_rgba(images[index]) for index in SAMPLE]

    in_cpython = [digits.classify(model, digits.canvas_to_array(rgba, 28, 28)) for rgba in pixels]
    in_pyodide = shared_ready_page.evaluate(CLASSIFY_ALL_IN_WORKER, [list(rgba) for rgba in pixels])

    cpython_labels = [result.label for result in in_cpython]
    pyodide_labels = [answer["label"] for answer in in_pyodide]
    cpython_probabilities = np.array([result.probabilities for result in in_cpython])
    pyodide_probabilities = np.array([answer["probabilities"] for answer in in_pyodide])
    difference = float(np.abs(cpython_probabilities - pyodide_probabilities).max())
    print(f"{len(SAMPLE)} images: max absolute difference of probabilities {difference:.3g}")

    assert pyodide_labels == cpython_labels
    assert pyodide_probabilities.shape == (len(SAMPLE), 10)
    assert difference <= MAX_PROBABILITY_DIFFERENCE
