import numpy as np
import pytest

import digits
from digits import DrawingTooSmallError, EmptyDrawingError, InvalidDrawingError, preprocess
from digits.preprocess import resample_matrix


def rectangle_drawing(size, top, left, height, width):
    """A grayscale drawing with one solid rectangle of ink (1) on background (0)."""
    drawing = np.zeros((size, size))
    drawing[top: top + height, left: left + width] = 1.0
    return drawing


def expected_rectangle_field():
    # A 10x6 rectangle scales by 2 to a 20x12 box of ink; its centre of mass (9.5, 5.5)
    # moves to (14, 14), so the box starts at row round(4.5) = 4 and column round(8.5) = 8.
    field = np.zeros((28, 28), np.float32)
    field[4:24, 8:20] = 1.0
    return field


def test_shifted_digit_lands_centred():
    top_left = preprocess(rectangle_drawing(100, 0, 0, 10, 6))
    bottom_right = preprocess(rectangle_drawing(100, 90, 94, 10, 6))

    assert np.allclose(top_left, expected_rectangle_field(), atol=1e-6)
    assert np.allclose(bottom_right, expected_rectangle_field(), atol=1e-6)


def test_small_digit_is_scaled_up():
    small = preprocess(rectangle_drawing(40, 17, 18, 5, 3))

    assert np.allclose(small, expected_rectangle_field(), atol=1e-6)


def ring_drawing(size=60):
    rows, columns = np.mgrid[:size, :size]
    distance = np.hypot(rows - size * 0.45, columns - size * 0.55)
    return ((distance > size * 0.2) & (distance < size * 0.3)).astype(np.float64)


def test_dark_on_light_equals_light_on_dark():
    ring = ring_drawing()
    dark_on_light = np.repeat((255 * (1 - ring)).astype(np.uint8)[:, :, None], 3, axis=2)
    light_on_dark = np.repeat((255 * ring).astype(np.uint8)[:, :, None], 3, axis=2)

    assert np.array_equal(preprocess(dark_on_light), preprocess(light_on_dark))
    assert preprocess(light_on_dark).max() == pytest.approx(1.0)


def test_transparent_canvas_uses_alpha_whatever_the_colour():
    ring = ring_drawing()
    black_ink = np.zeros(ring.shape + (4,), np.uint8)
    black_ink[:, :, 3] = 255 * ring
    red_ink = black_ink.copy()
    red_ink[:, :, 0] = 255

    assert np.array_equal(preprocess(black_ink), preprocess(red_ink))
    assert np.array_equal(preprocess(black_ink), preprocess(ring))


def test_coloured_ink_on_white_equals_black_ink():
    ring = ring_drawing()
    white = np.full(ring.shape + (3,), 255, np.uint8)
    blue = white.copy()
    blue[ring > 0] = [30, 60, 200]
    black = white.copy()
    black[ring > 0] = [0, 0, 0]

    assert np.allclose(preprocess(blue), preprocess(black), atol=1e-6)


def test_mnist_image_keeps_its_form(mnist_dir):
    images, _ = digits.load_mnist(mnist_dir, "test")

    differences = [np.abs(preprocess(image) - image / 255.0).mean() for image in images[:100]]

    assert np.median(differences) < 0.005


def test_output_is_28x28_float32_in_unit_range():
    image = preprocess(ring_drawing(300))

    assert image.shape == (28, 28)
    assert image.dtype == np.float32
    assert image.min() == 0.0
    assert image.max() <= 1.0


def test_resample_matrix_downscale_by_hand():
    # Halving widens the triangle filter to a support of 2 input pixels.
    matrix = resample_matrix(4, 2)

    assert np.allclose(matrix, [[3 / 7, 3 / 7, 1 / 7, 0], [0, 1 / 7, 3 / 7, 3 / 7]])


def test_resample_matrix_rows_sum_to_one():
    for in_size, out_size in [(7, 20), (300, 20), (20, 20), (1, 20)]:
        assert np.allclose(resample_matrix(in_size, out_size).sum(axis=1), 1.0)


def test_empty_drawing_is_reported():
    with pytest.raises(EmptyDrawingError, match="the drawing is empty"):
        preprocess(np.zeros((50, 50, 4), np.uint8))


def test_faint_noise_counts_as_empty():
    noise = np.random.default_rng(0).uniform(0, 0.05, size=(40, 40))

    with pytest.raises(EmptyDrawingError):
        preprocess(noise)


def test_single_dot_is_too_small():
    with pytest.raises(DrawingTooSmallError, match="too small to read: it spans 2% .* at least 10%"):
        preprocess(rectangle_drawing(280, 100, 100, 6, 6))


@pytest.mark.parametrize("drawing, message", [
    (np.zeros((10, 10, 2)), r"shape \(height, width\) or \(height, width, 1\|3\|4 channels\)"),
    (np.zeros((2, 10, 10, 4)), "got shape"),
    (np.zeros((0, 10)), "at least 1x1"),
    (np.full((10, 10), np.nan), "NaN or infinite"),
    (np.full((10, 10), 2.0), r"values must be in 0\.\.1"),
    (np.array([["a"]]), "must hold numbers"),
])
def test_invalid_drawing_is_reported(drawing, message):
    with pytest.raises(InvalidDrawingError, match=message):
        preprocess(drawing)


def test_canvas_to_array_checks_length():
    with pytest.raises(InvalidDrawingError, match="a 2x3 canvas needs 24 RGBA bytes"):
        digits.canvas_to_array(b"\x00" * 23, 2, 3)

    assert digits.canvas_to_array(bytes(range(24)), 2, 3)[2, 1].tolist() == [20, 21, 22, 23]


def test_paper_with_transparent_margin_reads_ink():
    paper = np.zeros((200, 200, 4), np.uint8)
    paper[10:190, 10:190] = [255, 255, 255, 255]
    paper[40:160, 95:105, :3] = 0
    opaque = paper.copy()
    opaque[:, :, 3] = 255
    opaque[paper[:, :, 3] == 0, :3] = 255

    assert np.array_equal(preprocess(paper), preprocess(opaque))


def test_white_ink_on_transparent_canvas():
    ring = ring_drawing()
    white_ink = np.full(ring.shape + (4,), 255, np.uint8)
    white_ink[:, :, 3] = 255 * ring

    assert np.array_equal(preprocess(white_ink), preprocess(ring))
