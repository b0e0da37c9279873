"""Augmentation: shifts, rotations, shears and scaling move pixels exactly where expected; stroke thickness; seeds."""

import numpy as np
import pytest

from train.augment import (Distortion, affine_source_coordinates, bilinear_sample, dilate, distort, elastic_displacement, erode,
                           inverse_affine_matrices, random_shifts, random_thickness, shift_images)


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


def pattern_image():
    """A 1x28x28 image in which every pixel differs, so any moved pixel shows."""
    return (np.arange(28 * 28, dtype=np.float32).reshape(1, 28, 28) % 251) / 250


def sample_with(images, angles=0.0, scales=1.0, shears=0.0, shifts=(0.0, 0.0)):
    count = len(images)
    matrices = inverse_affine_matrices(np.full(count, np.radians(angles)), np.full(count, scales, dtype=float),
                                       np.full(count, shears, dtype=float), np.tile(np.asarray(shifts, dtype=float), (count, 1)))
    rows, columns = affine_source_coordinates(matrices, 28, 28)
    return bilinear_sample(images, rows, columns)


def test_affine_identity_returns_input():
    image = pattern_image()
    np.testing.assert_array_equal(sample_with(image), image)


def test_affine_shift_moves_pixels_exactly():
    image = pattern_image()
    shifted = sample_with(image, shifts=(2.0, -3.0))
    np.testing.assert_array_equal(shifted[0, 2:, :25], image[0, :26, 3:])
    # Pixels shifted in from outside the image are background.
    assert not shifted[0, :2].any()
    assert not shifted[0, :, 25:].any()


def test_affine_half_pixel_shift_averages_neighbours():
    image = np.zeros((1, 28, 28), dtype=np.float32)
    image[0, 10, 10] = 1.0
    shifted = sample_with(image, shifts=(0.0, 0.5))
    np.testing.assert_allclose(shifted[0, 10, 10:12], [0.5, 0.5])
    assert shifted.sum() == pytest.approx(1.0)


def test_rotation_by_90_degrees_is_rot90():
    image = pattern_image()
    # A positive angle turns counter-clockwise as displayed, as np.rot90 does; 28x28 rotates about its centre onto itself.
    np.testing.assert_allclose(sample_with(image, angles=90.0), np.rot90(image, 1, axes=(1, 2)), atol=1e-6)
    np.testing.assert_allclose(sample_with(image, angles=-90.0), np.rot90(image, -1, axes=(1, 2)), atol=1e-6)


def test_shear_leans_top_to_the_right():
    image = np.zeros((1, 28, 28), dtype=np.float32)
    image[0, :, 13] = 1.0
    leaned = sample_with(image, shears=0.5)
    # The column 13 sits 0.5 left of the centre 13.5; the row 3.5 above the centre moves right by 0.5 * 3.5 pixels.
    row = leaned[0, 10]
    assert row.argmax() == 15
    assert np.sum(row * np.arange(28)) / row.sum() == pytest.approx(13 + 0.5 * 3.5, abs=1e-5)
    assert np.sum(leaned[0, 17] * np.arange(28)) / leaned[0, 17].sum() == pytest.approx(13 - 0.5 * 3.5, abs=1e-5)


def test_scale_enlarges_about_centre():
    image = np.zeros((1, 28, 28), dtype=np.float32)
    image[0, 12:16, 12:16] = 1.0
    enlarged = sample_with(image, scales=2.0)
    # Output pixel p samples source 13.5 + (p - 13.5) / 2, so pixels 11..16 read inside the square,
    # 10 and 17 read 3/4 of the way from its edge pixel to the background, 9 and 18 a quarter.
    np.testing.assert_array_equal(enlarged[0, 11:17, 11:17], np.ones((6, 6)))
    np.testing.assert_array_equal(enlarged[0, 13, 8:20], [0, 0.25, 0.75, 1, 1, 1, 1, 1, 1, 0.75, 0.25, 0])
    # Twice the size is four times the ink.
    assert enlarged.sum() == pytest.approx(4 * image.sum())


def test_dilation_thickens_line_to_three():
    image = np.zeros((1, 28, 28), dtype=np.float32)
    image[0, 5:20, 14] = 1.0
    thick = dilate(image)
    np.testing.assert_array_equal(thick[0, 6:19].sum(axis=1), np.full(13, 3.0))
    np.testing.assert_array_equal(np.flatnonzero(thick[0, 10]), [13, 14, 15])
    # The ends grow by one pixel too.
    assert thick[0, 4, 14] == 1
    assert thick[0, 20, 14] == 1
    assert thick[0, 3, 14] == 0


def test_erosion_thins_line_to_one():
    image = np.zeros((1, 28, 28), dtype=np.float32)
    image[0, 5:20, 13:16] = 1.0
    thin = erode(image)
    np.testing.assert_array_equal(np.flatnonzero(thin[0, 10]), [14])
    np.testing.assert_array_equal(np.flatnonzero(thin[0, :, 14]), np.arange(6, 19))


def test_random_thickness_blends_by_amount():
    images = np.zeros((400, 28, 28), dtype=np.float32)
    images[:, 5:20, 13:16] = 1.0
    result = random_thickness(images, np.random.default_rng(0), 0.25)
    columns = result[:, 10, 12]  # next to the stroke: above 0 only if the image was drawn thicker
    middle = result[:, 10, 13]  # the stroke's left edge: below 1 only if the image was drawn thinner
    thicker, thinner = columns > 0, middle < 1
    assert 70 < thicker.sum() < 130
    assert 70 < thinner.sum() < 130
    assert not (thicker & thinner).any()
    # The amount is random per image, from 0 to 1.
    assert columns[thicker].min() < 0.2
    assert columns[thicker].max() > 0.8
    np.testing.assert_array_equal(result[~(thicker | thinner)], images[~(thicker | thinner)])


def test_random_thickness_zero_probability_keeps_images():
    images = np.random.default_rng(0).random((4, 28, 28), dtype=np.float32)
    assert random_thickness(images, np.random.default_rng(0), 0.0) is images


def test_elastic_displacement_size():
    field = elastic_displacement(np.random.default_rng(0), 200, 28, 28, rms=1.5, sigma=4.0)
    assert field.shape == (2, 200, 28, 28)
    assert field.dtype == np.float32
    interior = field[:, :, 8:20, 8:20]
    assert np.sqrt(np.mean(interior ** 2)) == pytest.approx(1.5, rel=0.1)
    # Smooth: neighbouring pixels move almost together.
    assert np.abs(np.diff(field, axis=3)).mean() < 0.2 * np.abs(field).mean()


def test_distort_zero_strength_returns_input():
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    none = Distortion(0, 0, 0, 0, 0, 4.0, 0)
    distorted = distort(images, np.random.default_rng(0), none)
    assert distorted.dtype == np.float32
    np.testing.assert_array_equal(distorted, images / np.float32(255))
    # Strength zero for each part alone, with the resampling still running, keeps the images too.
    resampled = distort(images, np.random.default_rng(0), Distortion(0, 0, 0, 0, 0, 4.0, 0.0001))
    np.testing.assert_allclose(resampled, images / np.float32(255), atol=1e-6)


def test_distort_repeats_with_seed():
    images = np.random.default_rng(0).integers(0, 256, (16, 28, 28), dtype=np.uint8)
    first = distort(images, np.random.default_rng(7), Distortion())
    second = distort(images, np.random.default_rng(7), Distortion())
    np.testing.assert_array_equal(first, second)
    other = distort(images, np.random.default_rng(8), Distortion())
    assert not np.array_equal(first, other)
    assert first.min() >= 0
    assert first.max() <= 1


def test_distort_keeps_ink_on_average():
    images = np.zeros((256, 28, 28), dtype=np.uint8)
    images[:, 8:20, 12:16] = 255
    distorted = distort(images, np.random.default_rng(0), Distortion(thickness_probability=0))
    # Scaling changes the area by a factor from 0.88**2 to 1.12**2 and the elastic displacement
    # stretches or squeezes it locally, but on average the ink stays, and none leaves the image.
    ink = distorted.sum(axis=(1, 2)) / 48
    assert ink.mean() == pytest.approx(1.0, abs=0.05)
    assert ink.min() > 0.5
    assert not distorted[:, [0, -1], :].any()
    assert not distorted[:, :, [0, -1]].any()
