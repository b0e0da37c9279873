"""Tests of tests/strokes.py: thinning, tracing, placing and rendering pen strokes."""

import math
from pathlib import Path

import numpy as np
import pytest

import digits
import strokes

MODEL_PATH = Path(__file__).resolve().parent.parent / "site" / "models" / "mlp.json"
MNIST_SAMPLE = range(50)
MIN_CORRECT = 47


def grid(*rows):
    """Build a boolean image from rows of text, "#" for ink."""
    return np.array([[character == "#" for character in row] for row in rows])


def rounded(stroke_list, digits_after_point=6):
    return [[(round(x, digits_after_point), round(y, digits_after_point)) for x, y in stroke] for stroke in stroke_list]


# Thinning

def test_thin_thick_bar_gives_one_pixel_line():
    bar = np.zeros((16, 9), dtype=bool)
    bar[2:14, 3:6] = True  # 12 rows long, 3 columns wide

    skeleton = strokes.thin(bar)

    # Thinning keeps the middle column and shortens the bar by two pixels at the bottom only.
    assert np.argwhere(skeleton).tolist() == [[row, 4] for row in range(2, 12)]


def test_thin_keeps_thick_diagonal_whole():
    stroke = np.zeros((14, 14), dtype=bool)
    for row in range(2, 12):
        stroke[row, row - 1: row + 3] = True  # 4 pixels wide, running down to the right

    skeleton = strokes.thin(stroke)

    # Plain Zhang-Suen thinning leaves 3 pixels in rows 10 and 11 of this stroke.
    assert sorted(set(np.argwhere(skeleton)[:, 0].tolist())) == list(range(2, 12))
    assert strokes.trace(skeleton) == [[(1.5, 2.5), (3.5, 2.5), (10.5, 10.5), (13.5, 11.5)]]


def test_remove_squares_leaves_path():
    padded = grid(
        "........",
        ".#......",
        "..##....",
        "..##....",
        "....#...",
        "........",
    ).astype(np.uint8)

    strokes.remove_squares(padded)

    # The square's top right pixel is the only one whose removal keeps the line connected.
    assert np.argwhere(padded).tolist() == [[1, 1], [2, 2], [3, 2], [3, 3], [4, 4]]


def test_thin_leaves_thin_line_unchanged():
    line = grid(
        "........",
        ".#......",
        "..#.....",
        "..#.....",
        "...####.",
        "........",
    )
    assert np.array_equal(strokes.thin(line), line)


def test_thin_thick_ring_stays_closed_loop():
    rows, columns = np.mgrid[0:28, 0:28]
    radius = np.hypot(rows - 13.5, columns - 13.5)
    ring = (radius >= 6) & (radius <= 9)

    skeleton = strokes.thin(ring)
    graph = strokes.skeleton_graph([tuple(p) for p in np.argwhere(skeleton)])

    assert all(len(links) == 2 for links in graph.values())
    assert len(strokes.connected_components(list(graph))) == 1


def test_thin_empty_image_stays_empty():
    assert not strokes.thin(np.zeros((5, 5), dtype=bool)).any()


# Measuring the ink

def test_ink_depth_counts_to_nearest_outside_pixel():
    bar = np.zeros((9, 16), dtype=bool)
    bar[2:5, 2:14] = True

    depth = strokes.ink_depth(bar)

    assert depth[1:6, 1:5].tolist() == [[0, 0, 0, 0], [0, 1, 1, 1], [0, 1, 2, 2], [0, 1, 1, 1], [0, 0, 0, 0]]


def test_ink_depth_treats_image_edge_as_outside():
    assert strokes.ink_depth(np.ones((3, 3), dtype=bool)).tolist() == [[1, 1, 1], [1, 2, 1], [1, 1, 1]]


@pytest.mark.parametrize("width", [3, 5])
def test_stroke_width_of_bar(width):
    bar = np.zeros((width + 6, 20), dtype=bool)
    bar[3: 3 + width, 2:18] = True
    assert strokes.stroke_width(bar, strokes.thin(bar)) == width


def test_stroke_width_without_ink_is_one():
    empty = np.zeros((5, 5), dtype=bool)
    assert strokes.stroke_width(empty, empty) == 1.0


# Opening bold loops

CENTRE = 13.5


def distance_from_centre(row_centre=CENTRE, column_centre=CENTRE):
    rows, columns = np.mgrid[0:28, 0:28]
    return np.hypot(rows - row_centre, columns - column_centre)


def test_holes_finds_enclosed_background_only():
    shape = grid(
        ".......",
        ".#####.",
        ".#..#..",
        ".#####.",
        ".......",
    )
    assert strokes.holes(shape) == [[(2, 2), (2, 3)]]
    shape[2, 4] = False  # the hole now reaches the image's edge through a gap
    assert strokes.holes(shape) == []


def test_open_bold_loops_grows_small_hole():
    full = distance_from_centre() <= 8.5
    disc = full.copy()
    disc[13:15, 13:15] = False  # a 2x2 hole, as ink that nearly closed a loop leaves

    opened = strokes.open_bold_loops(disc, width=3.0)

    # Every pixel deeper than 3 below the outline is opened, so the ring left is 3 pixels thick.
    deep = full & (strokes.ink_depth(full) > 3)
    assert np.array_equal(opened, full & ~deep)
    # The grown hole is the disc of the pixels deeper than 3, about 5.3 pixels in radius.
    assert [len(hole) for hole in strokes.holes(opened)] == [deep.sum()] == [88]


def test_bold_disc_with_pinhole_traces_big_loop():
    disc = distance_from_centre() <= 8.5
    disc[17, 10] = False  # a pinhole 4.9 pixels from the centre
    image = disc.astype(np.uint8) * 255

    traced = strokes.image_to_strokes(image)

    # Thinning the disc as it is gives a loop round the pinhole that comes within 2 pixels of the centre.
    assert len(traced) == 1
    loop = traced[0]
    assert loop[0] == loop[-1]
    centre = np.mean(loop[:-1], axis=0)
    assert math.dist(centre, (CENTRE + 0.5, CENTRE + 0.5)) < 0.5
    assert min(math.dist(point, (CENTRE + 0.5, CENTRE + 0.5)) for point in loop) > 5


def test_open_bold_loops_keeps_large_hole():
    radius = distance_from_centre()
    ring = (radius >= 4) & (radius <= 9)
    assert np.array_equal(strokes.open_bold_loops(ring, strokes.stroke_width(ring, strokes.thin(ring))), ring)


def test_bold_ring_traces_one_loop():
    radius = distance_from_centre()
    ring = ((radius >= 4) & (radius <= 9)).astype(np.uint8) * 255

    traced = strokes.image_to_strokes(ring)

    assert len(traced) == 1
    assert traced[0][0] == traced[0][-1]


def test_open_bold_loops_keeps_two_loops_apart():
    top, bottom = distance_from_centre(7.5), distance_from_centre(18.5)
    eight = ((top >= 3) & (top <= 6)) | (bottom <= 7)
    eight[18, 13] = False  # a bold lower loop with a pinhole

    opened = strokes.open_bold_loops(eight, width=3.0)

    assert [len(hole) for hole in strokes.holes(eight)] == [32, 1]
    assert [len(hole) for hole in strokes.holes(opened)] == [32, 56]
    assert np.array_equal(opened[:13], eight[:13])


# Tracing

def test_trace_l_shape_gives_one_polyline():
    shape = grid(
        "........",
        ".#......",
        ".#......",
        ".#......",
        ".#......",
        ".#####..",
        "........",
    )
    assert strokes.trace(shape) == [[(1.5, 1.5), (1.5, 5.5), (5.5, 5.5)]]


def test_trace_o_shape_gives_closed_polyline():
    shape = grid(
        ".........",
        "...###...",
        "..#...#..",
        ".#.....#.",
        ".#.....#.",
        ".#.....#.",
        "..#...#..",
        "...###...",
        ".........",
    )
    assert strokes.trace(shape) == [[
        (3.5, 1.5), (5.5, 1.5), (7.5, 3.5), (7.5, 5.5), (5.5, 7.5),
        (3.5, 7.5), (1.5, 5.5), (1.5, 3.5), (3.5, 1.5),
    ]]


def test_trace_cross_joins_straight_branches():
    shape = grid(
        ".........",
        "....#....",
        "....#....",
        "....#....",
        ".#######.",
        "....#....",
        "....#....",
        "....#....",
        ".........",
    )
    assert strokes.trace(shape) == [[(4.5, 1.5), (4.5, 7.5)], [(1.5, 4.5), (7.5, 4.5)]]


def test_trace_t_shape_keeps_stem_separate():
    shape = grid(
        ".........",
        ".#######.",
        "....#....",
        "....#....",
        "....#....",
        "....#....",
        ".........",
    )
    assert strokes.trace(shape) == [[(1.5, 1.5), (7.5, 1.5)], [(4.5, 1.5), (4.5, 5.5)]]


def test_trace_drops_specks():
    shape = grid(
        "..........",
        ".#......#.",
        ".#........",
        ".#.....##.",
        ".#........",
        ".#######..",
        "..........",
    )
    assert strokes.trace(shape) == [[(1.5, 1.5), (1.5, 5.5), (7.5, 5.5)]]


def test_trace_drops_short_spur():
    shape = grid(
        ".........",
        "....#....",
        "....#....",
        "....#....",
        "...##....",
        "..#.#....",
        "....#....",
        "....#....",
        ".........",
    )
    assert strokes.trace(shape) == [[(4.5, 1.5), (4.5, 7.5)]]


def test_max_spur_pixels_grows_with_stroke_width():
    assert [strokes.max_spur_pixels(width) for width in (1.0, 3.0, 4.0, 7.0, 9.0)] == [2, 2, 3, 5, 6]


def test_trace_spur_limit_is_a_parameter():
    shape = grid(
        "............",
        ".##########.",
        "......#.....",
        "......#.....",
        "......#.....",
        "............",
    )
    assert strokes.trace(shape) == [[(1.5, 1.5), (10.5, 1.5)], [(6.5, 1.5), (6.5, 4.5)]]
    assert strokes.trace(shape, max_spur=3) == [[(1.5, 1.5), (10.5, 1.5)]]


def test_thick_bar_drops_bump_spur():
    bar = np.zeros((15, 24), dtype=np.uint8)
    bar[3:10, 2:22] = 255  # 7 pixels wide
    bar[10:12, 10:12] = 255  # a bump 2 pixels deep, which thinning turns into a 4-pixel branch

    assert strokes.image_to_strokes(bar) == [[(2.5, 6.5), (20.0, 6.5)]]


def test_thick_t_keeps_stem():
    shape = np.zeros((24, 24), dtype=np.uint8)
    shape[3:8, 2:22] = 255
    shape[8:21, 10:15] = 255  # a stem as wide as the bar and 13 pixels long

    traced = strokes.image_to_strokes(shape)

    assert len(traced) == 2
    stem = traced[1]
    assert stem[0][0] == stem[-1][0] == 12.5
    assert stem[-1][1] > 18


def test_trace_extends_free_ends_to_edge_of_ink():
    bar = np.zeros((9, 16), dtype=np.uint8)
    bar[3:6, 2:14] = 255  # ink spans x from 2 to 14

    # The skeleton runs from x = 3.5 to 11.5; its ends grow to half a pixel inside the ink's edge.
    assert strokes.image_to_strokes(bar) == [[(2.5, 4.5), (13.25, 4.5)]]


def test_simplify_straightens_staircase():
    staircase = [(0.5 + i, 0.5 + i // 2) for i in range(8)]
    assert strokes.simplify(staircase) == [(0.5, 0.5), (7.5, 3.5)]


# Placing and transforming

L_STROKE = [[(1.5, 1.5), (1.5, 5.5), (5.5, 5.5)]]


def test_fit_to_canvas_fills_room_inside_margin():
    assert strokes.fit_to_canvas(L_STROKE, 100, 10) == [[(10.0, 10.0), (10.0, 90.0), (90.0, 90.0)]]


def test_fit_to_canvas_keeps_aspect_ratio():
    assert strokes.fit_to_canvas([[(4.5, 1.5), (4.5, 5.5)]], (100, 50), 10) == [[(50.0, 10.0), (50.0, 40.0)]]


def test_fit_to_canvas_puts_dot_in_centre():
    assert strokes.fit_to_canvas([[(3.0, 3.0)]], 100, 10) == [[(50.0, 50.0)]]


def test_fit_to_canvas_rejects_margin_without_room():
    with pytest.raises(ValueError, match="a margin of 50 leaves no room on a 100x100 canvas"):
        strokes.fit_to_canvas(L_STROKE, 100, 50)


def test_shift_moves_every_point():
    assert strokes.shift(L_STROKE, 1, -1) == [[(2.5, 0.5), (2.5, 4.5), (6.5, 4.5)]]


def test_scale_around_bounds_centre():
    assert strokes.scale(L_STROKE, 2) == [[(-0.5, -0.5), (-0.5, 7.5), (7.5, 7.5)]]


def test_shear_positive_slant_leans_right():
    assert strokes.shear(L_STROKE, 0.5) == [[(2.5, 1.5), (0.5, 5.5), (4.5, 5.5)]]


def test_rotate_quarter_turn_clockwise_on_screen():
    assert rounded(strokes.rotate(L_STROKE, 90)) == [[(5.5, 1.5), (1.5, 1.5), (1.5, 5.5)]]


# Rendering

def test_render_horizontal_stroke_lights_expected_pixels():
    alpha = strokes.render_strokes([[(2, 5), (8, 5)]], 10, 2)[:, :, 3].astype(int)

    # The line covers rows 4-5 (y from 4 to 6) and columns 2-7 (x from 2 to 8) fully.
    assert (alpha[4:6, 2:8] == 255).all()
    # Each round cap covers a quarter disc of radius 1 in columns 1 and 8: pi / 4 of a pixel.
    for row in (4, 5):
        for column in (1, 8):
            assert abs(alpha[row, column] - 255 * math.pi / 4) < 8
    outside = np.ones_like(alpha, dtype=bool)
    outside[4:6, 1:9] = False
    assert (alpha[outside] == 0).all()


def test_render_dot_has_disc_area():
    alpha = strokes.render_strokes([[(5, 5)]], 10, 4)[:, :, 3]
    assert abs(alpha.sum() / 255 - math.pi * 2 ** 2) < 0.05 * math.pi * 2 ** 2


def test_render_gives_black_ink_on_transparent():
    rgba = strokes.render_strokes([[(10, 10), (30, 25), (15, 35)]], (40, 50), 5)
    assert rgba.shape == (50, 40, 4)
    assert rgba.dtype == np.uint8
    assert (rgba[:, :, :3] == 0).all()
    assert rgba[:, :, 3].max() == 255
    assert rgba[0, 0, 3] == 0


def test_render_diagonal_stroke_has_capsule_area():
    width, start, end = 9, (20.0, 30.0), (110.0, 100.0)
    alpha = strokes.render_strokes([[start, end]], 140, width)[:, :, 3]
    length = math.dist(start, end)
    area = length * width + math.pi * (width / 2) ** 2
    assert abs(alpha.sum() / 255 - area) < 0.01 * area


# Strokes of MNIST digits

@pytest.mark.mnist
def test_traced_mnist_digits_keep_their_labels(mnist_dir):
    if not MODEL_PATH.exists():
        pytest.skip(f"{MODEL_PATH} does not exist yet: train the model with python3 -m train first")
    model = digits.load_model(MODEL_PATH)
    images, labels = digits.load_mnist(mnist_dir, "test")

    misses = []
    for index in MNIST_SAMPLE:
        rgba = strokes.render_as_page_sends(strokes.image_to_strokes(images[index]))
        label = digits.classify(model, rgba).label
        if label != labels[index]:
            misses.append(f"test image {index}: label {labels[index]}, classified as {label}")

    print(f"{len(MNIST_SAMPLE) - len(misses)} of {len(MNIST_SAMPLE)} traced digits kept their label", *misses, sep="\n")
    assert len(MNIST_SAMPLE) - len(misses) >= MIN_CORRECT, misses
