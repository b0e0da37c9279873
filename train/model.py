"""The networks that train/ builds, and the loss they minimise."""

import numpy as np

from .layers import Dense, Dropout, Flatten, ReLU

IMAGE_PIXELS = 28 * 28
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
        """Return the model file's layer list; layers that inference skips are left out."""
        exported = (layer.export() for layer in self.layers)
        return [spec for spec in exported if spec is not None]

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
