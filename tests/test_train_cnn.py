"""CNN layers: forward values against direct loops, gradients against finite differences, batch-norm folding at export."""

import numpy as np
import pytest

import digits
from digits.model_file import model_to_dict
from test_train_layers import check_layer_gradients, numerical_gradient
from train.layers import BatchNorm, Conv2D, Dense, Dropout, MaxPool2D, ReLU, fold_batch_norm
from train.model import build_cnn, softmax_cross_entropy


def direct_convolution(x, weight, bias, padding):
    """Convolve NHWC x with weight [kh, kw, cin, cout] by looping over every output value (cross-correlation, as in deep learning)."""
    size = weight.shape[0]
    if padding == "same":
        top = (size - 1) // 2
        x = np.pad(x, ((0, 0), (top, size - 1 - top), (top, size - 1 - top), (0, 0)))
    count, height, width, _ = x.shape
    out = np.zeros((count, height - size + 1, width - size + 1, weight.shape[3]))
    for n, row, column, channel in np.ndindex(out.shape):
        window = x[n, row: row + size, column: column + size, :]
        out[n, row, column, channel] = np.sum(window * weight[:, :, :, channel]) + bias[channel]
    return out


def random_conv(padding, kernel_size=3, in_channels=2, out_channels=3):
    rng = np.random.default_rng(0)
    layer = Conv2D(in_channels, out_channels, rng, kernel_size=kernel_size, padding=padding, dtype=np.float64)
    layer.bias[:] = rng.standard_normal(out_channels)
    return layer


@pytest.mark.parametrize("padding, kernel_size", [("same", 3), ("valid", 3), ("same", 2), ("valid", 2)])
def test_conv_forward_equals_direct_loop(padding, kernel_size):
    layer = random_conv(padding, kernel_size)
    x = np.random.default_rng(1).standard_normal((2, 5, 6, 2))
    expected = direct_convolution(x, layer.weight, layer.bias, padding)
    np.testing.assert_allclose(layer.forward(x, training=True), expected, rtol=1e-12, atol=1e-12)


def test_conv_forward_exact_small_case():
    layer = Conv2D(1, 1, np.random.default_rng(0), padding="valid")
    layer.weight[:, :, 0, 0] = [[1, 0, 0], [0, 2, 0], [0, 0, -1]]
    layer.bias[:] = 0.5
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    # The window whose top-left pixel is v sums 1 * v + 2 * (v + 5) - 1 * (v + 10) + 0.5 = 2v + 0.5, for v = 0, 1, 4, 5.
    np.testing.assert_array_equal(layer.forward(x, training=False)[0, :, :, 0], [[0.5, 2.5], [8.5, 10.5]])


@pytest.mark.parametrize("padding, kernel_size", [("same", 3), ("valid", 3), ("same", 2), ("valid", 2)])
def test_conv_gradients(padding, kernel_size):
    layer = random_conv(padding, kernel_size)
    check_layer_gradients(layer, np.random.default_rng(1).standard_normal((2, 5, 6, 2)))


def test_conv_without_bias_gradients():
    layer = Conv2D(2, 3, np.random.default_rng(0), bias=False, dtype=np.float64)
    assert len(layer.parameters()) == 1
    check_layer_gradients(layer, np.random.default_rng(1).standard_normal((2, 4, 4, 2)))
    np.testing.assert_array_equal(layer.export()["bias"], np.zeros(3))


def test_conv_skips_input_gradient():
    layer = Conv2D(1, 4, np.random.default_rng(0), input_gradient=False)
    out = layer.forward(np.ones((2, 5, 5, 1), dtype=np.float32), training=True)
    assert out.shape == (2, 5, 5, 4)
    assert layer.backward(np.ones_like(out)) is None
    # With all-ones input and gradient, each kernel weight sums the gradient over the positions where its input is inside the image.
    assert layer.weight_gradient[1, 1, 0, 0] == 2 * 25
    assert layer.weight_gradient[0, 0, 0, 0] == 2 * 16
    np.testing.assert_array_equal(layer.bias_gradient, np.full(4, 50.0))


def test_conv_rejects_unknown_padding():
    with pytest.raises(ValueError, match="padding must be 'same' or 'valid', got 'full'"):
        Conv2D(1, 1, np.random.default_rng(0), padding="full")


def test_maxpool_forward_exact():
    x = np.array([[1, 5, 2, 0, 9],
                  [3, 4, 8, 1, 9],
                  [0, 0, 7, 6, 9]], dtype=np.float32).reshape(1, 3, 5, 1)
    # The last row and column fill no whole 2x2 window and are dropped.
    np.testing.assert_array_equal(MaxPool2D(2).forward(x, training=False)[0, :, :, 0], [[5, 8]])


def test_maxpool_gradients():
    check_layer_gradients(MaxPool2D(2), np.random.default_rng(0).standard_normal((2, 5, 4, 3)))


def test_maxpool_gradient_goes_to_one_tied_maximum():
    layer = MaxPool2D(2)
    layer.forward(np.zeros((1, 2, 2, 1)), training=True)
    input_grad = layer.backward(np.full((1, 1, 1, 1), 3.0))
    np.testing.assert_array_equal(input_grad[0, :, :, 0], [[3, 0], [0, 0]])


def test_batch_norm_gradients():
    rng = np.random.default_rng(0)
    layer = BatchNorm(3, dtype=np.float64)
    layer.gamma[:] = rng.standard_normal(3)
    layer.beta[:] = rng.standard_normal(3)
    check_layer_gradients(layer, rng.standard_normal((4, 3, 3, 3)) * 2 + 1)


def test_batch_norm_normalises_each_channel():
    x = np.random.default_rng(0).standard_normal((8, 4, 4, 2)) * [3.0, 0.5] + [10.0, -2.0]
    out = BatchNorm(2, dtype=np.float64).forward(x, training=True)
    np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), [0, 0], atol=1e-12)
    np.testing.assert_allclose(out.var(axis=(0, 1, 2)), [1, 1], rtol=1e-4)


def test_batch_norm_running_statistics():
    layer = BatchNorm(1, momentum=0.1, dtype=np.float64)
    x = np.array([1.0, 3.0, 5.0, 7.0]).reshape(4, 1, 1, 1)
    layer.forward(x, training=True)
    # Mean 4, unbiased variance 20 / 3; each moves a tenth of the way from its start (0 and 1).
    np.testing.assert_allclose(layer.running_mean, [0.4], rtol=1e-15)
    np.testing.assert_allclose(layer.running_var, [0.9 + 0.1 * 20 / 3], rtol=1e-15)
    layer.gamma[:] = 2.0
    layer.beta[:] = 1.0
    out = layer.forward(np.array([0.4]).reshape(1, 1, 1, 1), training=False)
    # Inference uses the running mean, so its own value maps to beta.
    np.testing.assert_allclose(out.ravel(), [1.0], rtol=1e-15)


def test_fold_batch_norm_into_dense():
    rng = np.random.default_rng(0)
    dense = Dense(4, 3, rng, dtype=np.float64)
    dense.bias[:] = rng.standard_normal(3)
    norm = BatchNorm(3, dtype=np.float64)
    norm.gamma[:], norm.beta[:] = rng.standard_normal(3), rng.standard_normal(3)
    norm.running_mean[:], norm.running_var[:] = rng.standard_normal(3), rng.uniform(0.5, 2, 3)
    x = rng.standard_normal((5, 4))
    folded = fold_batch_norm(dense.export(), norm)
    expected = norm.forward(dense.forward(x, training=False), training=False)
    np.testing.assert_allclose(x @ folded["weight"] + folded["bias"], expected, rtol=1e-12)


def test_fold_batch_norm_needs_conv_or_dense():
    with pytest.raises(ValueError, match="can only follow a conv2d or dense layer to be folded, not maxpool2d"):
        fold_batch_norm({"type": "maxpool2d", "size": 2}, BatchNorm(2))
    with pytest.raises(ValueError, match="not nothing"):
        fold_batch_norm(None, BatchNorm(2))


def cnn_with_statistics(dtype=np.float32):
    """A small CNN whose batch norms have non-trivial gamma, beta and running statistics, as after training."""
    rng = np.random.default_rng(3)
    model = build_cnn(np.random.default_rng(0), np.random.default_rng(1), channels=(4, 6, 6, 8), dtype=dtype)
    for layer in model.layers:
        if isinstance(layer, BatchNorm):
            channels = len(layer.gamma)
            layer.gamma[:] = rng.uniform(0.5, 1.5, channels)
            layer.beta[:] = rng.normal(0, 0.3, channels)
            layer.running_mean[:] = rng.normal(0, 0.5, channels)
            layer.running_var[:] = rng.uniform(0.3, 3, channels)
    return model


def test_exported_cnn_matches_eval_mode():
    model = cnn_with_statistics()
    images = np.random.default_rng(4).random((6, 28, 28), dtype=np.float32)
    mean, std = 0.1307, 0.3081
    expected = model.forward(((images - np.float32(mean)) / np.float32(std))[..., None], training=False)
    loaded = digits.load_model(model_to_dict("cnn", model.export(), mean, std, "float32"))
    np.testing.assert_allclose(loaded.logits(images), expected, rtol=1e-4, atol=1e-4)


def test_cnn_export_layers():
    exported = build_cnn(np.random.default_rng(0), np.random.default_rng(1)).export()
    assert [spec["type"] for spec in exported] == [
        "conv2d", "relu", "conv2d", "relu", "maxpool2d", "conv2d", "relu", "conv2d", "relu", "maxpool2d", "flatten", "dense"]
    assert [spec["weight"].shape for spec in exported if "weight" in spec] == [
        (3, 3, 1, 16), (3, 3, 16, 32), (3, 3, 32, 32), (3, 3, 32, 64), (3136, 10)]
    assert all(spec["padding"] == "same" for spec in exported if spec["type"] == "conv2d")


def test_cnn_repr_and_size():
    model = build_cnn(np.random.default_rng(0), np.random.default_rng(1))
    assert repr(model.layers[0]) == "Conv2D(1 -> 16, 3x3, padding=same)"
    assert repr(model.layers[1]) == "BatchNorm(16)"
    assert repr(model.layers[6]) == "MaxPool2D(2)"
    # Convolutions without bias, 2 batch-norm arrays per convolution, and the dense layer.
    weights = 9 * (1 * 16 + 16 * 32 + 32 * 32 + 32 * 64) + 3136 * 10 + 10
    assert repr(model).endswith(f"# {weights + 2 * (16 + 32 + 32 + 64):,} parameters")


def test_cnn_loss_gradients():
    # Batch norm's backward pass is that of training mode, so the check runs in training mode.
    model = build_cnn(np.random.default_rng(0), None, channels=(2, 3, 2, 3), dropout=0.3, dtype=np.float64)
    images = np.random.default_rng(0).standard_normal((3, 28, 28, 1))
    labels = np.array([1, 5, 9])

    def same_masks():
        rng = np.random.default_rng(5)
        for layer in model.layers:
            if isinstance(layer, Dropout):
                layer.rng = rng

    def loss():
        same_masks()
        return softmax_cross_entropy(model.forward(images, training=True), labels)[0]

    # A finite difference across a ReLU's kink is not its derivative; with these seeds no ReLU input is near 0.
    same_masks()
    activations = images
    for layer in model.layers:
        if isinstance(layer, ReLU):
            assert np.abs(activations).min() > 5e-5
        activations = layer.forward(activations, training=True)

    same_masks()
    _, grad = softmax_cross_entropy(model.forward(images, training=True), labels)
    model.backward(grad)
    analytic = [gradient.copy() for gradient in model.gradients()]
    for parameter, gradient in zip(model.parameters(), analytic):
        np.testing.assert_allclose(gradient, numerical_gradient(loss, parameter), rtol=1e-5, atol=1e-8)
