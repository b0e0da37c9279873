"""On-the-fly augmentation: the MLP's whole-pixel shifts, and the CNN's distortions of the digit's shape.

A shifted, slightly turned, sheared, stretched or wobbled digit, or one drawn with
a thicker or thinner pen, is still the same digit. People do not draw like
MNIST's writers, so the network should accept these variations. Every function
works on a whole batch at once and draws its randomness from the numpy Generator
it is given, so a seed reproduces a run.
"""

import dataclasses
import math

import numpy as np


def shift_images(images, row_shifts, column_shifts):
    """Shift each image of a batch (N, H, W) by its own whole number of pixels.

    A positive shift moves the content down or right. Pixels shifted in from
    outside the image are 0, the MNIST background.
    """
    count, height, width = images.shape
    margin = int(max(np.abs(row_shifts).max(initial=0), np.abs(column_shifts).max(initial=0)))
    padded = np.pad(images, ((0, 0), (margin, margin), (margin, margin)))
    # Output pixel (r, c) of image n is input pixel (r - dy, c - dx), which is at
    # (r - dy + margin, c - dx + margin) in the padded image. One gather shifts the whole batch.
    rows = np.arange(height) - np.asarray(row_shifts)[:, None] + margin
    columns = np.arange(width) - np.asarray(column_shifts)[:, None] + margin
    batch = np.arange(count)[:, None, None]
    return padded[batch, rows[:, :, None], columns[:, None, :]]


def random_shifts(images, rng, max_shift):
    """Shift each image by a random number of pixels from -max_shift to max_shift on each axis."""
    if max_shift == 0:
        return images
    row_shifts = rng.integers(-max_shift, max_shift, size=len(images), endpoint=True)
    column_shifts = rng.integers(-max_shift, max_shift, size=len(images), endpoint=True)
    return shift_images(images, row_shifts, column_shifts)


@dataclasses.dataclass(frozen=True)
class Distortion:
    """Strength of the CNN's random distortions; each image draws its own values uniformly within these bounds.

    All zero leaves images unchanged.
    """

    max_rotation: float = 12.0  # degrees, either way
    max_scale: float = 0.12  # relative change of size, either way
    max_shear: float = 0.2  # horizontal shear factor (tangent of the lean), either way
    max_shift: float = 2.0  # pixels, on each axis
    elastic: float = 1.0  # root mean square of the elastic displacement, in pixels
    elastic_smoothness: float = 4.0  # standard deviation of the Gaussian that smooths the displacement field, in pixels
    thickness_probability: float = 0.25  # share of images drawn thicker, and the same share drawn thinner

    def is_identity(self):
        return not any(dataclasses.astuple(self)[:5]) and self.thickness_probability == 0


def distort(images, rng, distortion):
    """Return a batch of uint8 images (N, H, W) randomly distorted, as float32 in 0..1.

    Stroke thickness changes first, then one resampling applies the affine map
    (rotation, scale, shear, shift) and the elastic displacement together, so the
    image is interpolated only once.
    """
    x = images.astype(np.float32) / np.float32(255.0)
    if distortion.is_identity():
        return x
    x = random_thickness(x, rng, distortion.thickness_probability)
    count, height, width = x.shape
    matrices = random_affine_matrices(rng, count, distortion)
    rows, columns = affine_source_coordinates(matrices, height, width)
    if distortion.elastic:
        displacement = elastic_displacement(rng, count, height, width, distortion.elastic, distortion.elastic_smoothness)
        rows += displacement[0]
        columns += displacement[1]
    return bilinear_sample(x, rows, columns)


def random_affine_matrices(rng, count, distortion):
    """Return (count, 2, 3) matrices mapping output (row, column, 1) to the source position to sample.

    The forward map turns, leans, scales and moves the digit about the image
    centre; sampling needs its inverse, built here directly.
    """
    angles = np.radians(rng.uniform(-distortion.max_rotation, distortion.max_rotation, count))
    scales = 1 + rng.uniform(-distortion.max_scale, distortion.max_scale, count)
    shears = rng.uniform(-distortion.max_shear, distortion.max_shear, count)
    shifts = rng.uniform(-distortion.max_shift, distortion.max_shift, (count, 2))
    return inverse_affine_matrices(angles, scales, shears, shifts)


def inverse_affine_matrices(angles, scales, shears, shifts):
    """Return the sampling matrices (N, 2, 3) of the forward maps p -> R(angle) S(shear) (scale p) + shift about the centre.

    Positions are (row, column), with rows growing downwards. A positive angle turns
    the digit counter-clockwise as displayed. A positive shear moves the top of the
    digit to the right, a forward lean. Shifts are (rows down, columns right).
    """
    cosines, sines = np.cos(angles), np.sin(angles)
    # Counter-clockwise on screen, in (row, column) with rows pointing down.
    rotation = np.stack([np.stack([cosines, -sines], -1), np.stack([sines, cosines], -1)], -2)
    # Rows above the centre (negative row offset) move right by shear * distance.
    shear = np.zeros_like(rotation)
    shear[:, 0, 0] = 1
    shear[:, 1, 1] = 1
    shear[:, 1, 0] = -shears
    forward = rotation @ shear * scales[:, None, None]
    inverse = np.linalg.inv(forward)
    matrices = np.empty((len(angles), 2, 3))
    matrices[:, :, :2] = inverse
    # Source = inverse @ (output - shift), in coordinates relative to the centre.
    matrices[:, :, 2] = -(inverse @ shifts[:, :, None])[:, :, 0]
    return matrices


def affine_source_coordinates(matrices, height, width):
    """Return the source rows and columns (N, H, W) float32 for sampling matrices (N, 2, 3) about the image centre."""
    centre_row, centre_column = (height - 1) / 2, (width - 1) / 2
    row_offsets = np.arange(height) - centre_row
    column_offsets = np.arange(width) - centre_column
    # For each image, source = A @ (r, c) + t, written as broadcast sums so no (N, H, W, 2, 2) array is formed.
    a = matrices[:, :, :, None, None]
    rows = a[:, 0, 0] * row_offsets[:, None] + a[:, 0, 1] * column_offsets + matrices[:, 0, 2, None, None] + centre_row
    columns = a[:, 1, 0] * row_offsets[:, None] + a[:, 1, 1] * column_offsets + matrices[:, 1, 2, None, None] + centre_column
    return rows.astype(np.float32), columns.astype(np.float32)


def gaussian_smoothing_matrix(size, sigma):
    """Return the (size, size) matrix that blurs one axis with a Gaussian of standard deviation sigma, rows summing to 1."""
    offsets = np.arange(size)[:, None] - np.arange(size)[None, :]
    weights = np.exp(-0.5 * (offsets / sigma) ** 2)
    return weights / weights.sum(axis=1, keepdims=True)


def elastic_displacement(rng, count, height, width, rms, sigma):
    """Return a random smooth displacement field (2, N, H, W) in pixels, rows first, with the given root mean square.

    The field is white noise blurred by a Gaussian, computed as one matrix product
    per axis. Blurring multiplies the noise's standard deviation by
    sqrt(sum of squared weights) per axis, which is undone so that `rms` is the
    typical displacement away from the edges.
    """
    blur_rows = gaussian_smoothing_matrix(height, sigma).astype(np.float32)
    blur_columns = gaussian_smoothing_matrix(width, sigma).astype(np.float32)
    noise = rng.standard_normal((2, count, height, width), dtype=np.float32)
    field = blur_rows @ noise @ blur_columns.T
    middle_row, middle_column = blur_rows[height // 2], blur_columns[width // 2]
    spread = math.sqrt(float(middle_row @ middle_row) * float(middle_column @ middle_column))
    return field * np.float32(rms / spread)


def bilinear_sample(images, rows, columns):
    """Sample images (N, H, W) at fractional source positions rows, columns (N, H', W'); outside the image is 0."""
    count, height, width = images.shape
    # Positions are clipped to at most one pixel outside the image, so with a 2-pixel zero
    # border all four neighbours of every position lie in the padded array. Clipped positions read zeros.
    pad = 2
    padded = np.zeros((count, height + 2 * pad, width + 2 * pad), dtype=np.float32)
    padded[:, pad:-pad, pad:-pad] = images
    rows = np.clip(rows, -1, height) + pad
    columns = np.clip(columns, -1, width) + pad
    top = np.floor(rows)
    left = np.floor(columns)
    down = (rows - top)[..., None]
    right = (columns - left)[..., None]
    padded_width = width + 2 * pad
    first = (np.arange(count)[:, None, None] * (height + 2 * pad) + top.astype(np.intp)) * padded_width + left.astype(np.intp)
    # One gather reads all four neighbours: top-left, top-right, bottom-left, bottom-right.
    neighbours = padded.reshape(-1)[first[..., None] + np.array([0, 1, padded_width, padded_width + 1])]
    upper = neighbours[..., 0:1] * (1 - right) + neighbours[..., 1:2] * right
    lower = neighbours[..., 2:3] * (1 - right) + neighbours[..., 3:4] * right
    return (upper * (1 - down) + lower * down)[..., 0]


def dilate(images):
    """Return the 3x3 grey dilation (maximum over each pixel's neighbourhood) of images (N, H, W)."""
    return neighbourhood_extreme(images, np.maximum)


def erode(images):
    """Return the 3x3 grey erosion (minimum over each pixel's neighbourhood) of images (N, H, W); outside counts as 0."""
    return neighbourhood_extreme(images, np.minimum)


def neighbourhood_extreme(images, extreme):
    # The 3x3 square is a 3x1 line after a 1x3 line, so 4 elementwise operations do instead of 8.
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1)))
    across = extreme(extreme(padded[:, :, :-2], padded[:, :, 1:-1]), padded[:, :, 2:])
    return extreme(extreme(across[:, :-2], across[:, 1:-1]), across[:, 2:])


def random_thickness(images, rng, probability):
    """Draw a random share `probability` of images (N, H, W) thicker and another such share thinner.

    Each chosen image moves towards its dilation or erosion by a random amount
    from 0 to 1, because a full 3x3 erosion would erase MNIST's thinnest strokes.
    """
    if probability == 0:
        return images
    if not 0 <= probability <= 0.5:
        raise ValueError(f"thickness probability must be from 0 to 0.5, got {probability}")
    choice = rng.random(len(images))
    amounts = rng.random(len(images), dtype=np.float32)[:, None, None]
    result = images.copy()
    for chosen, morphology in ((choice < probability, dilate), (choice >= 1 - probability, erode)):
        if chosen.any():
            selected = images[chosen]
            result[chosen] = selected + amounts[chosen] * (morphology(selected) - selected)
    return result
