"""Training layers and the MLP: exact forward values and gradients checked against finite differences."""

import math

import numpy as np
import pytest

from train.layers import Dense, Dropout, Flatten, ReLU
from train.model import Sequential, build_mlp, softmax_cross_entropy

STEP = 1e-6


def numerical_gradient(function, array):
    """Return d function() / d array by central differences, changing array in place and restoring it."""
    gradient = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        original = array[index]
        array[index] = original + STEP
        above = function()
        array[index] = original - STEP
        below = function()
        array[index] = original
        gradient[index] = (above - below) / (2 * STEP)
    return gradient


def check_layer_gradients(layer, x, reset=lambda: None):
    """Compare a layer's backward pass with finite differences of sum(forward(x) * upstream)."""
    rng = np.random.default_rng(1)
    reset()
    upstream = rng.standard_normal(layer.forward(x, training=True).shape)

    def weighted_output():
        reset()
        return float(np.sum(layer.forward(x, training=True) * upstream))

    reset()
    layer.forward(x, training=True)
    input_gradient = layer.backward(upstream)
    parameter_gradients = [gradient.copy() for gradient in layer.gradients()]

    np.testing.assert_allclose(input_gradient, numerical_gradient(weighted_output, x), rtol=1e-6, atol=1e-8)
    for parameter, gradient in zip(layer.parameters(), parameter_gradients):
        np.testing.assert_allclose(gradient, numerical_gradient(weighted_output, parameter), rtol=1e-6, atol=1e-8)


def test_dense_gradients():
    rng = np.random.default_rng(0)
    layer = Dense(4, 3, rng, dtype=np.float64)
    layer.bias[:] = rng.standard_normal(3)
    check_layer_gradients(layer, rng.standard_normal((5, 4)))


def test_relu_gradients():
    # Inputs at least 0.1 away from the kink at 0, where the derivative is undefined.
    rng = np.random.default_rng(0)
    x = rng.uniform(0.1, 1.0, (4, 6)) * rng.choice([-1.0, 1.0], (4, 6))
    check_layer_gradients(ReLU(), x)


def test_dropout_gradients():
    layer = Dropout(0.5, None)

    def same_mask():
        layer.rng = np.random.default_rng(7)

    x = np.random.default_rng(0).standard_normal((4, 6))
    check_layer_gradients(layer, x, reset=same_mask)


def test_flatten_gradients():
    check_layer_gradients(Flatten(), np.random.default_rng(0).standard_normal((2, 3, 3, 1)))


def dropout_layers(model):
    return [layer for layer in model.layers if isinstance(layer, Dropout)]


@pytest.mark.parametrize("training", [False, True])
def test_mlp_loss_gradients(training):
    init_rng = np.random.default_rng(0)
    model = build_mlp(init_rng, None, hidden_sizes=(6, 5), dropout=0.3, dtype=np.float64)
    for layer in model.layers:
        if isinstance(layer, Dense):
            layer.bias[:] = init_rng.standard_normal(layer.bias.shape) * 0.1
    images = np.random.default_rng(1).standard_normal((3, 28, 28))
    labels = np.array([3, 0, 9])

    def same_masks():
        rng = np.random.default_rng(5)
        for layer in dropout_layers(model):
            layer.rng = rng

    def loss():
        same_masks()
        return softmax_cross_entropy(model.forward(images, training), labels)[0]

    same_masks()
    _, grad = softmax_cross_entropy(model.forward(images, training), labels)
    model.backward(grad)
    analytic = [gradient.copy() for gradient in model.gradients()]
    for parameter, gradient in zip(model.parameters(), analytic):
        np.testing.assert_allclose(gradient, numerical_gradient(loss, parameter), rtol=1e-5, atol=1e-8)


def test_softmax_cross_entropy_exact():
    # softmax([0, ln 3]) = [1/4, 3/4], so the loss of label 1 is ln(4/3).
    loss, grad = softmax_cross_entropy(np.array([[0.0, math.log(3.0)]]), np.array([1]))
    assert loss == pytest.approx(math.log(4 / 3), rel=1e-15)
    np.testing.assert_allclose(grad, [[0.25, -0.25]], rtol=1e-15, atol=1e-16)


def test_softmax_cross_entropy_averages_batch():
    # Equal logits give probability 1/10 per class, so every row's loss is ln 10.
    loss, grad = softmax_cross_entropy(np.zeros((4, 10)), np.array([0, 1, 2, 3]))
    assert loss == pytest.approx(math.log(10), rel=1e-15)
    assert grad[0, 0] == pytest.approx((0.1 - 1) / 4, rel=1e-15)
    assert grad[0, 1] == pytest.approx(0.1 / 4, rel=1e-15)


def test_tiny_network_forward_exact():
    rng = np.random.default_rng(0)
    hidden = Dense(2, 2, rng)
    hidden.weight[:] = [[1, 2], [3, -1]]
    hidden.bias[:] = [0.5, -0.5]
    output = Dense(2, 1, rng)
    output.weight[:] = [[2], [-1]]
    output.bias[:] = [0.25]
    network = Sequential([hidden, ReLU(), output])
    # [1, -2] @ W1 + b1 = [-4.5, 3.5]; ReLU gives [0, 3.5]; 0 * 2 + 3.5 * -1 + 0.25 = -3.25.
    # [0, 1] @ W1 + b1 = [3.5, -1.5]; ReLU gives [3.5, 0]; 3.5 * 2 + 0 + 0.25 = 7.25.
    result = network.forward(np.array([[1, -2], [0, 1]], dtype=np.float32), training=False)
    assert result.dtype == np.float32
    np.testing.assert_array_equal(result, [[-3.25], [7.25]])


def test_dense_he_initialisation():
    layer = Dense(784, 512, np.random.default_rng(0))
    assert layer.weight.dtype == np.float32
    assert layer.weight.shape == (784, 512)
    assert layer.weight.std() == pytest.approx(math.sqrt(2 / 784), rel=0.01)
    assert abs(layer.weight.mean()) < 1e-3
    np.testing.assert_array_equal(layer.bias, np.zeros(512))


def test_dense_skips_input_gradient():
    layer = Dense(3, 2, np.random.default_rng(0), input_gradient=False)
    layer.forward(np.ones((4, 3), dtype=np.float32), training=True)
    assert layer.backward(np.ones((4, 2), dtype=np.float32)) is None
    np.testing.assert_array_equal(layer.weight_gradient, np.full((3, 2), 4.0))
    np.testing.assert_array_equal(layer.bias_gradient, [4.0, 4.0])


def test_dropout_in_inference_is_identity():
    layer = Dropout(0.5, np.random.default_rng(0))
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert layer.forward(x, training=False) is x


def test_dropout_scales_kept_units():
    layer = Dropout(0.25, np.random.default_rng(0))
    result = layer.forward(np.ones((100, 100), dtype=np.float32), training=True)
    assert set(np.unique(result)) == {0.0, np.float32(1 / 0.75)}
    assert (result == 0).mean() == pytest.approx(0.25, abs=0.02)


def test_dropout_rejects_bad_rate():
    with pytest.raises(ValueError, match="dropout rate"):
        Dropout(1.0, np.random.default_rng(0))


def test_mlp_export_and_repr():
    model = build_mlp(np.random.default_rng(0), np.random.default_rng(1))
    exported = model.export()
    assert [spec["type"] for spec in exported] == ["flatten", "dense", "relu", "dense", "relu", "dense"]
    assert [spec["weight"].shape for spec in exported if spec["type"] == "dense"] == [(784, 512), (512, 256), (256, 10)]
    assert exported[1]["weight"] is model.layers[1].weight
    assert repr(model.layers[1]) == "Dense(784 -> 512)"
    assert repr(model).endswith("# 535,818 parameters")


def test_mlp_stays_cheap_in_browser():
    model = build_mlp(np.random.default_rng(0), np.random.default_rng(1))
    multiply_adds = sum(spec["weight"].size for spec in model.export() if spec["type"] == "dense")
    assert multiply_adds == 784 * 512 + 512 * 256 + 256 * 10
    assert multiply_adds < 1_000_000
