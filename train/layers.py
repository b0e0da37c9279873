"""Trainable layers in numpy: forward, backward and export to the model file.

Every layer keeps what its backward pass needs from the last forward pass, so a
forward and a backward call alternate, one batch at a time. Arrays are float32
in training, and the gradient checks build the same layers in float64.
Layout is the inference package's: images are NHWC, (batch, height, width, channels).
"""

import numpy as np


class Layer:
    """Base of the training layers; its defaults suit a layer without parameters that inference skips."""

    def forward(self, x, training):
        raise NotImplementedError

    def backward(self, grad):
        raise NotImplementedError

    def parameters(self):
        return []

    def gradients(self):
        return []

    def export(self):
        """Return this layer's entry in the model file, or None if inference skips it."""
        return None


class Dense(Layer):
    """A fully connected layer, y = x @ weight + bias, with weight of shape [inputs, outputs]."""

    def __init__(self, inputs, outputs, rng, dtype=np.float32, input_gradient=True):
        # He initialisation: a ReLU zeroes about half of its inputs, so weights of
        # variance 2 / inputs keep the variance of the activations the same from
        # layer to layer, where 1 / inputs would halve it at every layer.
        scale = np.sqrt(2.0 / inputs)
        self.weight = (rng.standard_normal((inputs, outputs)) * scale).astype(dtype)
        self.bias = np.zeros(outputs, dtype=dtype)
        self.weight_gradient = np.zeros_like(self.weight)
        self.bias_gradient = np.zeros_like(self.bias)
        # The first layer of a network can skip the gradient for its input, because
        # nothing uses it. For the MLP's 784 inputs that saves a quarter of the backward work.
        self.input_gradient = input_gradient
        self.x = None

    def forward(self, x, training):
        self.x = x
        return x @ self.weight + self.bias

    def backward(self, grad):
        np.matmul(self.x.T, grad, out=self.weight_gradient)
        np.sum(grad, axis=0, out=self.bias_gradient)
        if not self.input_gradient:
            return None
        return grad @ self.weight.T

    def parameters(self):
        return [self.weight, self.bias]

    def gradients(self):
        return [self.weight_gradient, self.bias_gradient]

    def export(self):
        return {"type": "dense", "weight": self.weight, "bias": self.bias}

    def __repr__(self):
        return f"Dense({self.weight.shape[0]} -> {self.weight.shape[1]})"


class ReLU(Layer):

    def forward(self, x, training):
        self.positive = x > 0
        return x * self.positive

    def backward(self, grad):
        return grad * self.positive

    def export(self):
        return {"type": "relu"}

    def __repr__(self):
        return "ReLU()"


class Dropout(Layer):
    """Inverted dropout: zeroes a fraction `rate` of activations in training.

    The kept activations are scaled by 1 / (1 - rate) so their expected value is
    unchanged, which is why inference can skip this layer.
    """

    def __init__(self, rate, rng):
        if not 0 <= rate < 1:
            raise ValueError(f"dropout rate must be at least 0 and below 1, got {rate}")
        self.rate = rate
        self.rng = rng
        self.mask = None

    def forward(self, x, training):
        if not training or self.rate == 0:
            self.mask = None
            return x
        keep = self.rng.random(x.shape, dtype=np.float32) >= self.rate
        self.mask = keep.astype(x.dtype) / x.dtype.type(1 - self.rate)
        return x * self.mask

    def backward(self, grad):
        if self.mask is None:
            return grad
        return grad * self.mask

    def __repr__(self):
        return f"Dropout({self.rate})"


class Flatten(Layer):
    """Layer that reshapes each image to one row, so (N, 28, 28) and (N, 28, 28, 1) both give (N, 784)."""

    def forward(self, x, training):
        self.input_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, grad):
        return grad.reshape(self.input_shape)

    def export(self):
        return {"type": "flatten"}

    def __repr__(self):
        return "Flatten()"
