"""Trainable layers in numpy: forward, backward and export to the model file.

Every layer keeps what its backward pass needs from the last forward pass, so a
forward and a backward call alternate, one batch at a time. Arrays are float32
in training, and the gradient checks build the same layers in float64.
Layout is the inference package's: images are NHWC, (batch, height, width, channels).
"""

import numpy as np

from digits.layers import im2col, pad_same


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
        # Assigned, because np.matmul(..., out=...) with a transposed operand was over 100 times slower (numpy 2.4.6).
        self.weight_gradient[...] = self.x.T @ grad
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


class Conv2D(Layer):
    """A stride-1 convolution of NHWC images with a kernel [kh, kw, in_channels, out_channels].

    Both passes are matrix products over im2col windows. The gradient for the
    input is itself a stride-1 convolution: the output gradient, padded on the
    opposite sides to the forward pass, convolved with the kernel flipped in
    height and width and with in and out channels swapped. So the backward pass
    needs no scatter of window gradients back onto overlapping pixels.
    """

    def __init__(self, in_channels, out_channels, rng, kernel_size=3, padding="same", bias=True,
                 dtype=np.float32, input_gradient=True):
        if padding not in ("same", "valid"):
            raise ValueError(f"padding must be 'same' or 'valid', got {padding!r}")
        # He initialisation, as in Dense: each output sums kernel_size**2 * in_channels inputs.
        fan_in = kernel_size * kernel_size * in_channels
        shape = (kernel_size, kernel_size, in_channels, out_channels)
        self.weight = (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)
        self.weight_gradient = np.zeros_like(self.weight)
        # A bias is redundant before batch normalisation, which subtracts each channel's mean.
        self.bias = np.zeros(out_channels, dtype=dtype) if bias else None
        self.bias_gradient = np.zeros_like(self.bias) if bias else None
        self.kernel_size = kernel_size
        self.padding = padding
        self.input_gradient = input_gradient
        self.columns = None

    def forward(self, x, training):
        size = self.kernel_size
        if self.padding == "same":
            x = pad_same(x, size, size)
        count, height, width, _ = x.shape
        self.columns = im2col(x, size, size)
        out = self.columns @ self.weight.reshape(-1, self.weight.shape[3])
        if self.bias is not None:
            out += self.bias
        return out.reshape(count, height - size + 1, width - size + 1, -1)

    def backward(self, grad):
        size = self.kernel_size
        out_channels = self.weight.shape[3]
        grad_rows = grad.reshape(-1, out_channels)
        self.weight_gradient[...] = (self.columns.T @ grad_rows).reshape(self.weight.shape)
        if self.bias is not None:
            np.sum(grad_rows, axis=0, out=self.bias_gradient)
        if not self.input_gradient:
            return None
        # The forward pass padded the input by top before and size - 1 - top after, on each
        # axis. The gradient is padded by the same two amounts, swapped.
        top = (size - 1) // 2 if self.padding == "same" else 0
        after, before = top, size - 1 - top
        if self.padding == "valid":
            before = after = size - 1
        padded = np.pad(grad, ((0, 0), (before, after), (before, after), (0, 0)))
        flipped = np.ascontiguousarray(self.weight[::-1, ::-1].transpose(0, 1, 3, 2)).reshape(-1, self.weight.shape[2])
        count, height, width, _ = padded.shape
        input_grad = im2col(padded, size, size) @ flipped
        return input_grad.reshape(count, height - size + 1, width - size + 1, -1)

    def parameters(self):
        return [self.weight] if self.bias is None else [self.weight, self.bias]

    def gradients(self):
        return [self.weight_gradient] if self.bias is None else [self.weight_gradient, self.bias_gradient]

    def export(self):
        bias = np.zeros(self.weight.shape[3], self.weight.dtype) if self.bias is None else self.bias
        return {"type": "conv2d", "weight": self.weight, "bias": bias, "padding": self.padding}

    def __repr__(self):
        size, _, in_channels, out_channels = self.weight.shape
        return f"Conv2D({in_channels} -> {out_channels}, {size}x{size}, padding={self.padding})"


class BatchNorm(Layer):
    """Batch normalisation over the last axis (channels): each channel to mean 0 and variance 1, then times gamma plus beta.

    Training normalises with the batch's own statistics and keeps exponential
    moving averages of them; inference uses the averages. Inference then is an
    affine map per channel, which export folds into the preceding conv2d or dense
    layer (fold_batch_norm), so the model file has no batch-norm layer.
    """

    def __init__(self, channels, momentum=0.1, eps=1e-5, dtype=np.float32):
        self.gamma = np.ones(channels, dtype=dtype)
        self.beta = np.zeros(channels, dtype=dtype)
        self.gamma_gradient = np.zeros_like(self.gamma)
        self.beta_gradient = np.zeros_like(self.beta)
        self.running_mean = np.zeros(channels, dtype=dtype)
        self.running_var = np.ones(channels, dtype=dtype)
        self.momentum = momentum
        self.eps = eps

    def forward(self, x, training):
        rows = x.reshape(-1, x.shape[-1])
        if not training:
            scale, shift = self.inference_affine()
            return (rows * scale + shift).reshape(x.shape)
        count = len(rows)
        mean = rows.mean(axis=0)
        centred = rows - mean
        var = np.einsum("ij,ij->j", centred, centred) / count
        self.inverse_std = 1 / np.sqrt(var + self.eps)
        self.normalised = np.multiply(centred, self.inverse_std, out=centred)
        momentum = self.momentum
        self.running_mean *= 1 - momentum
        self.running_mean += momentum * mean
        # The running variance estimates the population's, hence the unbiased count - 1.
        self.running_var *= 1 - momentum
        self.running_var += momentum * var * (count / max(count - 1, 1))
        out = self.normalised * self.gamma
        out += self.beta
        return out.reshape(x.shape)

    def backward(self, grad):
        rows = grad.reshape(-1, grad.shape[-1])
        count = len(rows)
        np.sum(rows, axis=0, out=self.beta_gradient)
        self.gamma_gradient[:] = np.einsum("ij,ij->j", rows, self.normalised)
        # d loss / d x for y = gamma * (x - mean) / std + beta, where mean and std are the batch's:
        # gamma / std * (g - mean(g) - x_hat * mean(g * x_hat)), with x_hat the normalised input.
        input_grad = self.normalised * (self.gamma_gradient / count)
        input_grad += self.beta_gradient / count
        np.subtract(rows, input_grad, out=input_grad)
        input_grad *= self.gamma * self.inverse_std
        return input_grad.reshape(grad.shape)

    def inference_affine(self):
        """Return (scale, shift) such that inference computes x * scale + shift per channel."""
        scale = self.gamma / np.sqrt(self.running_var + self.eps)
        return scale, self.beta - self.running_mean * scale

    def parameters(self):
        return [self.gamma, self.beta]

    def gradients(self):
        return [self.gamma_gradient, self.beta_gradient]

    def __repr__(self):
        return f"BatchNorm({len(self.gamma)})"


def fold_batch_norm(spec, batch_norm):
    """Return a copy of a conv2d or dense layer's export whose output equals that layer followed by batch_norm in inference."""
    if spec is None or spec["type"] not in ("conv2d", "dense"):
        kind = "nothing" if spec is None else spec["type"]
        raise ValueError(f"batch normalisation can only follow a conv2d or dense layer to be folded, not {kind}")
    scale, shift = batch_norm.inference_affine()
    # Weights are [..., outputs] for both layer types, so scaling the last axis scales each output channel.
    return {**spec, "weight": spec["weight"] * scale, "bias": spec["bias"] * scale + shift}


class MaxPool2D(Layer):
    """Maximum over non-overlapping size x size windows. Rows and columns that fill no whole window are dropped."""

    def __init__(self, size=2):
        self.size = size

    def forward(self, x, training):
        size = self.size
        self.input_shape = x.shape
        height, width = x.shape[1] - x.shape[1] % size, x.shape[2] - x.shape[2] % size
        # Window position (i, j) of every window is one strided view, so the max is
        # size**2 - 1 elementwise maxima of quarter-sized arrays (for size 2).
        self.views = [x[:, i:height:size, j:width:size] for i in range(size) for j in range(size)]
        self.out = self.views[0].copy()
        for view in self.views[1:]:
            np.maximum(self.out, view, out=self.out)
        return self.out

    def backward(self, grad):
        size = self.size
        input_grad = np.zeros(self.input_shape, dtype=grad.dtype)
        height, width = self.input_shape[1] - self.input_shape[1] % size, self.input_shape[2] - self.input_shape[2] % size
        # Each window passes its gradient to its first maximal element only, so that
        # tied maxima (such as zeros after a ReLU) do not receive it twice.
        unclaimed = np.ones(self.out.shape, dtype=bool)
        for index, view in enumerate(self.views):
            i, j = divmod(index, size)
            winner = (view == self.out) & unclaimed
            unclaimed &= ~winner
            np.multiply(grad, winner, out=input_grad[:, i:height:size, j:width:size])
        return input_grad

    def export(self):
        return {"type": "maxpool2d", "size": self.size}

    def __repr__(self):
        return f"MaxPool2D({self.size})"
