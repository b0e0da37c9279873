"""The networks that train/ builds, and the loss they minimise."""

import numpy as np

from .layers import BatchNorm, Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU, fold_batch_norm

IMAGE_SIZE = 28
IMAGE_PIXELS = IMAGE_SIZE * IMAGE_SIZE
CLASSES = 10


class Sequential:
    """Layers applied one after the other; backward runs them in reverse."""

    def __init__(self, layers):
        self.layers = layers

    def forward(self, x, training):
        for layer in self.layers:
            x = layer.forward(x, training)
        return x

    def backward(self, grad):
        for layer in reversed(self.layers):
            grad = layer.backward(grad)
            if grad is None:
                break

    def parameters(self):
        return [array for layer in self.layers for array in layer.parameters()]

    def gradients(self):
        return [array for layer in self.layers for array in layer.gradients()]

    def export(self):
        """Return the model file's layer list; layers that inference skips are left out and batch norms are folded."""
        exported = []
        for layer in self.layers:
            if isinstance(layer, BatchNorm):
                exported[-1] = fold_batch_norm(exported[-1] if exported else None, layer)
                continue
            spec = layer.export()
            if spec is not None:
                exported.append(spec)
        return exported

    def parameter_count(self):
        return sum(array.size for array in self.parameters())

    def __repr__(self):
        lines = [f"  {layer!r}," for layer in self.layers]
        return "Sequential(\n" + "\n".join(lines) + f"\n)  # {self.parameter_count():,} parameters"


def softmax_cross_entropy(logits, labels):
    """Return the mean cross-entropy of softmax(logits) and its gradient with respect to logits."""
    rows = np.arange(len(labels))
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_probabilities[rows, labels].mean()
    grad = np.exp(log_probabilities)
    grad[rows, labels] -= 1
    grad /= len(labels)
    return float(loss), grad


def build_mlp(init_rng, dropout_rng, hidden_sizes=(512, 256), dropout=0.2, dtype=np.float32):
    """Build Flatten, then Dense, ReLU and Dropout per hidden size, then a Dense to 10 logits."""
    layers = [Flatten()]
    inputs = IMAGE_PIXELS
    for index, size in enumerate(hidden_sizes):
        layers.append(Dense(inputs, size, init_rng, dtype, input_gradient=index > 0))
        layers.append(ReLU())
        layers.append(Dropout(dropout, dropout_rng))
        inputs = size
    layers.append(Dense(inputs, CLASSES, init_rng, dtype, input_gradient=bool(hidden_sizes)))
    return Sequential(layers)


def build_cnn(init_rng, dropout_rng, channels=(16, 32, 32, 64), dropout=0.25, dtype=np.float32):
    """Build 3x3 "same" convolutions, each followed by batch norm and ReLU, with a 2x2 max-pool after every second one,
    then Flatten, Dropout and a Dense to 10 logits.

    The default is conv 16, conv 32, pool, conv 32, conv 64, pool, so 28x28 becomes
    7x7x64 = 3136 features. Its forward pass for one image took about 5 ms in Pyodide
    inside Chromium (2-core AMD EPYC), small enough to classify on every stroke.
    """
    layers = []
    in_channels = 1
    size = IMAGE_SIZE
    for index, out_channels in enumerate(channels):
        # The first convolution skips its input gradient, because its input is the image.
        layers.append(Conv2D(in_channels, out_channels, init_rng, bias=False, dtype=dtype, input_gradient=index > 0))
        layers.append(BatchNorm(out_channels, dtype=dtype))
        layers.append(ReLU())
        if index % 2 == 1:
            layers.append(MaxPool2D(2))
            size //= 2
        in_channels = out_channels
    layers.append(Flatten())
    layers.append(Dropout(dropout, dropout_rng))
    layers.append(Dense(size * size * in_channels, CLASSES, init_rng, dtype))
    return Sequential(layers)
