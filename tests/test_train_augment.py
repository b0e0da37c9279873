"""Shift augmentation moves each image's pixels by exact amounts."""

import numpy as np

from train.augment import random_shifts, shift_images


def single_pixel_images(count, row, column):
    images = np.zeros((count, 28, 28), dtype=np.uint8)
    images[:, row, column] = 255
    return images


def test_shift_moves_pixel_down_and_left():
    shifted = shift_images(single_pixel_images(1, 10, 12), np.array([2]), np.array([-1]))
    assert shifted.dtype == np.uint8
    assert shifted.shape == (1, 28, 28)
    assert shifted[0, 12, 11] == 255
    assert shifted.sum() == 255


def test_shift_per_image():
    images = single_pixel_images(3, 14, 14)
    shifted = shift_images(images, np.array([0, -2, 1]), np.array([2, 0, -2]))
    assert [tuple(np.argwhere(image)[0]) for image in shifted] == [(14, 16), (12, 14), (15, 12)]


def test_shift_matches_roll_with_zero_fill():
    image = np.random.default_rng(0).integers(0, 256, (1, 28, 28), dtype=np.uint8)
    shifted = shift_images(image, np.array([1]), np.array([-2]))
    expected = np.zeros_like(image)
    expected[0, 1:, :26] = image[0, :27, 2:]
    np.testing.assert_array_equal(shifted, expected)


def test_shift_drops_pixels_leaving_the_image():
    shifted = shift_images(single_pixel_images(1, 27, 0), np.array([1]), np.array([-1]))
    assert shifted.sum() == 0


def test_zero_shift_keeps_images():
    images = np.random.default_rng(0).integers(0, 256, (4, 28, 28), dtype=np.uint8)
    np.testing.assert_array_equal(shift_images(images, np.zeros(4, int), np.zeros(4, int)), images)
    assert random_shifts(images, np.random.default_rng(0), 0) is images


def test_random_shifts_cover_range():
    shifted = random_shifts(single_pixel_images(500, 14, 14), np.random.default_rng(0), 2)
    positions = np.argwhere(shifted)[:, 1:]
    assert len(positions) == 500
    row_shifts, column_shifts = positions[:, 0] - 14, positions[:, 1] - 14
    assert set(row_shifts) == {-2, -1, 0, 1, 2}
    assert set(column_shifts) == {-2, -1, 0, 1, 2}


def test_random_shifts_repeat_with_seed():
    images = np.random.default_rng(0).integers(0, 256, (8, 28, 28), dtype=np.uint8)
    first = random_shifts(images, np.random.default_rng(42), 2)
    second = random_shifts(images, np.random.default_rng(42), 2)
    np.testing.assert_array_equal(first, second)
