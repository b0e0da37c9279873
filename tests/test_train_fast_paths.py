"""The speed-ups of the training layers: work split into two halves, chunked im2col, rows of several pixels.

The gradient checks in test_train_cnn.py use arrays too small to take the split
paths, so the arrays here are large enough to take them, and each result is
compared with a plain numpy computation of the same thing.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from digits.layers import im2col, pad_same
from train import layers, parallel
from train.layers import BatchNorm, Conv2D, Dense, MaxPool2D, ReLU, channel_sums, chunked_columns, first_maximum, pixel_rows

ROOT = Path(__file__).resolve().parent.parent
# 128 images of 28 x 28 x 32, as after the CNN's second convolution.
BIG_SHAPE = (128, 28, 28, 32)


def test_row_halves_match_across_arrays():
    rows = np.arange(parallel.MIN_SPLIT_ELEMENTS * 2).reshape(-1, 2)
    labels = np.arange(len(rows))
    results = parallel.in_row_halves(lambda part, part_labels: (len(part), int(part[0, 0]), int(part_labels[0])), rows, labels)
    half = len(rows) // 2
    assert results == [(half, 0, 0), (len(rows) - half, 2 * half, half)]


def test_row_halves_small_arrays_whole():
    assert parallel.in_row_halves(len, np.zeros((10, 3))) == [10]
    assert parallel.in_row_halves(len, np.zeros((10, 3)), min_elements=0) == [5, 5]
    assert parallel.in_row_halves(len, np.zeros((1, 3)), min_elements=0) == [1]


def test_row_halves_use_two_threads():
    import threading

    names = parallel.in_row_halves(lambda part: threading.current_thread().name, np.zeros((4, 1)), min_elements=0)
    assert names[0] == threading.current_thread().name
    assert names[1].startswith("train-half")


def test_add_up_writes_the_sum():
    out = np.empty(3)
    parallel.add_up([np.array([1.0, 2, 3]), np.array([10.0, 20, 30])], out)
    np.testing.assert_array_equal(out, [11, 22, 33])
    parallel.add_up([np.array([4.0, 5, 6])], out)
    np.testing.assert_array_equal(out, [4, 5, 6])


def test_pixel_rows_and_channel_sums():
    x = np.arange(2 * 3 * 4 * 2, dtype=np.float64).reshape(2, 3, 4, 2)
    rows, repeats = pixel_rows(x)
    # 24 pixels: the largest divisor of 24 that also divides 64 is 8 pixels per row.
    assert repeats == 8
    assert rows.shape == (3, 16)
    assert np.shares_memory(rows, x)
    np.testing.assert_array_equal(channel_sums([rows.sum(axis=0)], repeats), x.sum(axis=(0, 1, 2)))
    np.testing.assert_array_equal(channel_sums([rows[:1].sum(axis=0), rows[1:].sum(axis=0)], repeats), [552, 576])


def test_first_maximum_ties_go_first():
    arrays = [np.array([1.0, 5, 2, 7]), np.array([1.0, 6, 2, 3]), np.array([0.0, 6, 4, 7])]
    out = np.empty(4)
    winner = np.empty(4, np.uint8)
    first_maximum(arrays, out, winner)
    np.testing.assert_array_equal(out, [1, 6, 4, 7])
    np.testing.assert_array_equal(winner, [0, 1, 2, 0])


@pytest.mark.parametrize("channels", [1, 16])
@pytest.mark.parametrize("before, after", [(1, 1), (0, 0), (2, 2)])
def test_chunked_columns_equal_im2col(monkeypatch, channels, before, after):
    pixels = (6 + before + after - 2) ** 2
    # Room for the columns of 3 images gives several chunks, the last of them shorter.
    monkeypatch.setattr(layers, "COLUMN_CHUNK_BYTES", 3 * pixels * 9 * channels * 8)
    x = np.random.default_rng(0).standard_normal((7, 6, 6, channels))
    padded = np.pad(x, ((0, 0), (before, after), (before, after), (0, 0)))
    expected = im2col(padded, 3, 3)
    chunks = []
    for start, stop, columns in chunked_columns(x, 3, before, after):
        np.testing.assert_array_equal(columns, expected[start * pixels: stop * pixels])
        chunks.append((start, stop))
    assert chunks == [(0, 3), (3, 6), (6, 7)]


def test_conv_big_batch():
    rng = np.random.default_rng(0)
    # 37 images give halves of 18 and 19, each in several chunks.
    x = rng.standard_normal((37, 28, 28, 16))
    layer = Conv2D(16, 32, rng, dtype=np.float64)
    layer.bias[:] = rng.standard_normal(32)
    columns = im2col(pad_same(x, 3, 3), 3, 3)
    out = layer.forward(x, training=True)
    np.testing.assert_allclose(out, (columns @ layer.weight.reshape(-1, 32) + layer.bias).reshape(out.shape), rtol=1e-12, atol=1e-12)

    grad = rng.standard_normal(out.shape)
    input_grad = layer.backward(grad)
    np.testing.assert_allclose(layer.weight_gradient.reshape(-1, 32), columns.T @ grad.reshape(-1, 32), rtol=1e-11)
    # The input gradient by definition: each window's gradient added back onto its pixels.
    window_grads = (grad.reshape(-1, 32) @ layer.weight.reshape(-1, 32).T).reshape(37, 28, 28, 3, 3, 16)
    padded_grad = np.zeros((37, 30, 30, 16))
    for row in range(3):
        for column in range(3):
            padded_grad[:, row: row + 28, column: column + 28] += window_grads[:, :, :, row, column]
    np.testing.assert_allclose(input_grad, padded_grad[:, 1:-1, 1:-1], rtol=1e-11, atol=1e-12)


def test_dense_split_batch():
    rng = np.random.default_rng(0)
    layer = Dense(300, 70, rng, dtype=np.float64)
    layer.bias[:] = rng.standard_normal(70)
    # 101 x 300 x 70 multiply-adds are enough to be split, into 50 and 51 rows.
    x = rng.standard_normal((101, 300))
    assert layer.min_split_elements(x) == 0
    out = layer.forward(x, training=True)
    np.testing.assert_allclose(out, x @ layer.weight + layer.bias, rtol=1e-12, atol=1e-12)
    grad = rng.standard_normal(out.shape)
    np.testing.assert_allclose(layer.backward(grad), grad @ layer.weight.T, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.weight_gradient, x.T @ grad, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.bias_gradient, grad.sum(axis=0), rtol=1e-12, atol=1e-12)


def test_batch_norm_big_batch():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(BIG_SHAPE) * 2 + 1
    layer = BatchNorm(32, dtype=np.float64)
    layer.gamma[:] = rng.random(32) + 0.5
    layer.beta[:] = rng.random(32)
    mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    normalised = (x - mean) / np.sqrt(var + layer.eps)
    np.testing.assert_allclose(layer.forward(x, training=True), normalised * layer.gamma + layer.beta, atol=1e-12)

    grad = rng.standard_normal(BIG_SHAPE)
    expected = layer.gamma / np.sqrt(var + layer.eps) * (
        grad - grad.mean(axis=(0, 1, 2)) - normalised * (grad * normalised).mean(axis=(0, 1, 2)))
    np.testing.assert_allclose(layer.backward(grad), expected, atol=1e-12)
    np.testing.assert_allclose(layer.beta_gradient, grad.sum(axis=(0, 1, 2)), rtol=1e-12)
    np.testing.assert_allclose(layer.gamma_gradient, (grad * normalised).sum(axis=(0, 1, 2)), rtol=1e-11)

    scale, shift = layer.inference_affine()
    np.testing.assert_allclose(layer.forward(x, training=False), x * scale + shift, rtol=1e-13)


def test_relu_big_batch():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(BIG_SHAPE).astype(np.float32)
    grad = rng.standard_normal(BIG_SHAPE).astype(np.float32)
    layer = ReLU()
    np.testing.assert_array_equal(layer.forward(x, training=True), np.maximum(x, 0))
    np.testing.assert_array_equal(layer.backward(grad), np.where(x > 0, grad, 0))


def test_maxpool_big_batch():
    rng = np.random.default_rng(0)
    # Rounded values give tied maxima in many windows.
    x = np.round(rng.standard_normal(BIG_SHAPE)).astype(np.float32)
    layer = MaxPool2D(2)
    out = layer.forward(x, training=True)
    windows = x.reshape(128, 14, 2, 14, 2, 32)
    np.testing.assert_array_equal(out, windows.max(axis=(2, 4)))

    grad = rng.standard_normal(out.shape).astype(np.float32) + 10
    input_grad = layer.backward(grad).reshape(windows.shape)
    # Each window's gradient goes whole to exactly one element, and that element is a maximum.
    assert np.all((input_grad != 0).sum(axis=(2, 4)) == 1)
    np.testing.assert_array_equal(input_grad.sum(axis=(2, 4)), grad)
    assert np.all(windows[input_grad != 0] == np.broadcast_to(out[:, :, None, :, None], windows.shape)[input_grad != 0])


def run_python(code, environment):
    return subprocess.run([sys.executable, "-c", code], env=environment, cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_train_import_sets_blas_threads():
    code = "import os, train; print(os.environ['OPENBLAS_NUM_THREADS'])"
    environment = {key: value for key, value in os.environ.items() if not key.endswith("_NUM_THREADS")}
    environment["PYTHONPATH"] = os.pathsep.join([str(ROOT / "py"), str(ROOT)])
    assert run_python(code, environment) == "1"
    assert run_python(code, {**environment, "OPENBLAS_NUM_THREADS": "3"}) == "3"


def test_maxpool_of_size_one_is_identity():
    x = np.random.default_rng(0).standard_normal((2, 3, 3, 2))
    layer = MaxPool2D(1)
    np.testing.assert_array_equal(layer.forward(x, training=True), x)
    np.testing.assert_array_equal(layer.backward(x * 2), x * 2)


def test_dense_small_product_not_split():
    layer = Dense(256, 10, np.random.default_rng(0))
    x = np.zeros((128, 256), np.float32)
    # 128 x 256 x 10 multiply-adds, as in the MLP's last layer, stay in one piece.
    assert layer.min_split_elements(x) == x.size + 1
    assert parallel.in_row_halves(len, x, min_elements=layer.min_split_elements(x)) == [128]
