"""Classifying a drawing, an image or pixels already in MNIST's form."""

from dataclasses import dataclass

import numpy as np

from .errors import EmptyDrawingError, InvalidDrawingError
from .preprocess import EMPTY_INK, SIZE, preprocess

MAX_CANVAS_PIXELS = 4096 * 4096


@dataclass
class Result:
    label: int
    probabilities: np.ndarray
    image: np.ndarray

    def to_dict(self):
        return {
            "label": self.label,
            "probabilities": [float(p) for p in self.probabilities],
            "image": [float(v) for v in self.image.ravel()],
        }


def classify_image(model, image):
    """Classify one image already in MNIST's form, (28, 28) with ink 1 on background 0."""
    probabilities = model.predict_proba(image[None])[0]
    return Result(int(np.argmax(probabilities)), probabilities, image)


def classify(model, drawing):
    """Preprocess a drawing of any size (see preprocess) and classify it."""
    return classify_image(model, preprocess(drawing))


def classify_pixels(model, pixels):
    """Classify 784 values in 0..1 that are already in MNIST's form, skipping preprocessing."""
    try:
        image = np.asarray(pixels, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidDrawingError("pixels must be a list of 784 numbers in 0..1") from None
    if image.size != SIZE * SIZE or image.ndim not in (1, 2):
        raise InvalidDrawingError(f"pixels must be 784 numbers (28x28), got shape {list(image.shape)}")
    if not np.all(np.isfinite(image)):
        raise InvalidDrawingError("pixels must not contain NaN or infinite values")
    if image.min() < 0 or image.max() > 1:
        raise InvalidDrawingError(f"pixel values must be in 0..1, got values from {image.min():g} to {image.max():g}")
    if image.max() < EMPTY_INK:
        raise EmptyDrawingError("the drawing is empty: draw a digit first")
    return classify_image(model, image.reshape(SIZE, SIZE).astype(np.float32))


def canvas_to_array(rgba, width, height):
    """Wrap the RGBA bytes of a canvas (as from getImageData) as an (height, width, 4) uint8 array."""
    for name, value in (("width", width), ("height", height)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InvalidDrawingError(f"canvas {name} must be a positive integer, got {value!r}")
    if width * height > MAX_CANVAS_PIXELS:
        raise InvalidDrawingError(f"a canvas of {width}x{height} is larger than the limit of {MAX_CANVAS_PIXELS} pixels")
    data = np.frombuffer(bytes(rgba), dtype=np.uint8)
    if data.size != width * height * 4:
        raise InvalidDrawingError(
            f"a {width}x{height} canvas needs {width * height * 4} RGBA bytes (4 per pixel), got {data.size}")
    return data.reshape(height, width, 4)
