"""On-the-fly augmentation: random shifts of whole images by a few pixels.

A shifted digit is still the same digit. People do not centre their drawings the
way MNIST centres its digits (by centre of mass), so the network should accept a
digit a pixel or two away from where it expects one.
"""

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
