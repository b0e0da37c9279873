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

    # Zhang-Suen keeps the middle column and shortens the bar by one pixel at the top and two at the bottom.
    assert np.argwhere(skeleton).tolist() == [[row, 4] for row in range(3, 12)]


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
