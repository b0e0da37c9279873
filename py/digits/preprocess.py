"""Turning a drawing or a photo into MNIST's form.

MNIST's digits were cropped to their ink, scaled so the longer side is 20 pixels with
anti-aliasing, and placed in a 28x28 field with their centre of mass at the centre.
The network was trained on that form alone, so every drawing goes through the same steps.
"""

import numpy as np

from .errors import DrawingTooSmallError, EmptyDrawingError, InvalidDrawingError

SIZE = 28
BOX = 20
MAX_PIXELS = 40_000_000
# Ink weaker than this (on 0..1) anywhere means nothing was drawn.
EMPTY_INK = 0.1
# Relative to the strongest ink: fainter pixels are paper texture, shadow or noise.
NOISE_FLOOR = 0.1
# A drawing whose ink spans less than this share of the image's longer side is a dot, not a digit.
# The page's brush alone spans 1/14 (7%) of its canvas, so a tap stays below this.
MIN_EXTENT = 0.1


def as_pixel_array(drawing):
    """Check a drawing's shape and values and return it as float64 (H, W, channels) in 0..1."""
    array = np.asarray(drawing)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise InvalidDrawingError(
            f"a drawing must be an array of shape (height, width) or (height, width, 1|3|4 channels), got shape {list(np.shape(drawing))}")
    height, width = array.shape[:2]
    if height < 1 or width < 1:
        raise InvalidDrawingError(f"a drawing must be at least 1x1 pixels, got {width}x{height}")
    if height * width > MAX_PIXELS:
        raise InvalidDrawingError(f"a drawing of {width}x{height} pixels is larger than the limit of {MAX_PIXELS} pixels")
    if array.dtype == np.uint8:
        return array.astype(np.float64) / 255.0
    if array.dtype == np.bool_:
        return array.astype(np.float64)
    if not np.issubdtype(array.dtype, np.number):
        raise InvalidDrawingError(f"a drawing must hold numbers, got dtype {array.dtype}")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise InvalidDrawingError("a drawing must not contain NaN or infinite values")
    if array.min() < 0 or array.max() > 1:
        raise InvalidDrawingError(
            f"pixel values must be in 0..1 (or uint8 0..255), got values from {array.min():g} to {array.max():g}")
    return array


def ink_strength(pixels):
    """Return how strongly each pixel differs from the background, 0..1, for any ink colour.

    The background is the median colour of the border, which works for dark ink on white
    paper and light ink on a dark screen alike. A transparent image is first laid over white
    and over black, and the one with less visible ink is kept. Black ink on a transparent
    canvas vanishes over black, and white ink vanishes over white. White paper with
    transparent margins turns into one large blob over black, so it loses to the white backdrop.
    """
    channels = pixels.shape[2]
    if channels == 4 and pixels[:, :, 3].min() < 0.5:
        alpha = pixels[:, :, 3:]
        candidates = [difference_from_border(pixels[:, :, :3] * alpha + backdrop * (1 - alpha)) for backdrop in (1.0, 0.0)]
        visible = [ink for ink in candidates if ink.max() >= EMPTY_INK]
        return min(visible, key=np.sum) if visible else candidates[0]
    return difference_from_border(pixels[:, :, :3] if channels >= 3 else pixels)


def difference_from_border(colour):
    border = np.concatenate([colour[0], colour[-1], colour[:, 0], colour[:, -1]])
    background = np.median(border, axis=0)
    difference = np.abs(colour - background)
    # An element-wise maximum over the channel planes is 20 times faster than max(axis=2) on 3 channels.
    return np.maximum.reduce([difference[:, :, channel] for channel in range(difference.shape[2])])


def resample_matrix(in_size, out_size):
    """Return the (out_size, in_size) matrix that resizes one axis with a triangle filter.

    Downscaling widens the filter by the scale factor so every input pixel contributes
    (anti-aliasing); upscaling interpolates linearly.
    """
    scale = out_size / in_size
    support = max(1.0, 1.0 / scale)
    centres = (np.arange(out_size) + 0.5) / scale
    positions = np.arange(in_size) + 0.5
    weights = np.maximum(0.0, 1.0 - np.abs(positions[None, :] - centres[:, None]) / support)
    return weights / weights.sum(axis=1, keepdims=True)


def resize(image, height, width):
    return resample_matrix(image.shape[0], height) @ image @ resample_matrix(image.shape[1], width).T


def crop_to_ink(ink):
    rows = np.flatnonzero(ink.any(axis=1))
    columns = np.flatnonzero(ink.any(axis=0))
    return ink[rows[0]: rows[-1] + 1, columns[0]: columns[-1] + 1]


def centre_of_mass(image):
    total = image.sum()
    rows = np.arange(image.shape[0])
    columns = np.arange(image.shape[1])
    return (image.sum(axis=1) @ rows) / total, (image.sum(axis=0) @ columns) / total


def place_by_centre_of_mass(box):
    """Put box into a SIZE x SIZE field so its centre of mass lands on the field's centre."""
    centre_row, centre_column = centre_of_mass(box)
    # MNIST's centres of mass sit at pixel index 14.0 on average, not the geometric 13.5.
    middle = SIZE / 2
    top = int(np.clip(np.round(middle - centre_row), 0, SIZE - box.shape[0]))
    left = int(np.clip(np.round(middle - centre_column), 0, SIZE - box.shape[1]))
    field = np.zeros((SIZE, SIZE))
    field[top: top + box.shape[0], left: left + box.shape[1]] = box
    return field


def preprocess(drawing):
    """Return a drawing in MNIST's form: (28, 28) float32, ink 1 on background 0.

    Raises EmptyDrawingError when there is no ink and DrawingTooSmallError for a dot.
    """
    pixels = as_pixel_array(drawing)
    ink = ink_strength(pixels)
    strongest = ink.max()
    if strongest < EMPTY_INK:
        raise EmptyDrawingError("the drawing is empty: draw a digit first")
    ink = ink / strongest
    ink[ink < NOISE_FLOOR] = 0.0

    digit = crop_to_ink(ink)
    extent = max(digit.shape)
    if extent < max(2, MIN_EXTENT * max(ink.shape)):
        raise DrawingTooSmallError(
            f"the drawing is too small to read: it spans {extent / max(ink.shape):.0%} of the drawing area's "
            f"width or height, and a digit needs at least {MIN_EXTENT:.0%}; draw it larger")

    scale = BOX / extent
    height = max(1, int(round(digit.shape[0] * scale)))
    width = max(1, int(round(digit.shape[1] * scale)))
    box = np.clip(resize(digit, height, width), 0.0, 1.0)
    return place_by_centre_of_mass(box).astype(np.float32)
