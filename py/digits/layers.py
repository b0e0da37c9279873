"""Inference layers: the forward pass of every layer type a model file can contain.

Images flow in NHWC layout, float32: (batch, height, width, channels).
"""

import numpy as np

from .errors import ModelFileError


def im2col(x, kernel_height, kernel_width):
    """Unfold every kernel-sized window of x (N, H, W, C) into a row.

    Returns an array of shape (N * H_out * W_out, kernel_height * kernel_width * C) whose
    columns are ordered (kh, kw, C), the same order as a conv2d weight [kh, kw, cin, cout]
    reshaped to a matrix, so a convolution becomes one matrix product.
    """
    windows = window_view(x, kernel_height, kernel_width)
    n, out_height, out_width = windows.shape[:3]
    return windows.reshape(n * out_height * out_width, -1)


def window_view(x, kernel_height, kernel_width):
    """Return a view of x (N, H, W, C) of shape (N, H_out, W_out, kh, kw, C): every kernel-sized window, without copying."""
    windows = np.lib.stride_tricks.sliding_window_view(x, (kernel_height, kernel_width), axis=(1, 2))
    # sliding_window_view puts the window axes last: (N, Ho, Wo, C, kh, kw).
    return windows.transpose(0, 1, 2, 4, 5, 3)


def pad_same(x, kernel_height, kernel_width):
    """Zero-pad height and width so a stride-1 convolution keeps the spatial size."""
    top = (kernel_height - 1) // 2
    left = (kernel_width - 1) // 2
    return np.pad(x, ((0, 0), (top, kernel_height - 1 - top), (left, kernel_width - 1 - left), (0, 0)))


class Flatten:
    type = "flatten"

    def __call__(self, x):
        return x.reshape(x.shape[0], -1)

    def output_shape(self, input_shape):
        return (int(np.prod(input_shape)),)

    def arrays(self):
        return {}

    def __repr__(self):
        return "Flatten()"


class ReLU:
    type = "relu"

    def __call__(self, x):
        return np.maximum(x, 0, out=x)

    def output_shape(self, input_shape):
        return input_shape

    def arrays(self):
        return {}

    def __repr__(self):
        return "ReLU()"


class Dense:
    type = "dense"

    def __init__(self, weight, bias):
        self.weight = np.asarray(weight, dtype=np.float32)
        self.bias = np.asarray(bias, dtype=np.float32)

    def __call__(self, x):
        return x @ self.weight + self.bias

    def output_shape(self, input_shape):
        if input_shape != (self.weight.shape[0],):
            raise ModelFileError(
                f"dense layer expects input of size {self.weight.shape[0]} "
                f"but the previous layer gives shape {list(input_shape)}")
        return (self.weight.shape[1],)

    def arrays(self):
        return {"weight": self.weight, "bias": self.bias}

    def __repr__(self):
        return f"Dense({self.weight.shape[0]} -> {self.weight.shape[1]})"


class Conv2D:
    type = "conv2d"

    def __init__(self, weight, bias, padding="same"):
        self.weight = np.asarray(weight, dtype=np.float32)
        self.bias = np.asarray(bias, dtype=np.float32)
        self.padding = padding
        kernel_height, kernel_width, in_channels, out_channels = self.weight.shape
        self.weight_matrix = self.weight.reshape(kernel_height * kernel_width * in_channels, out_channels)

    def __call__(self, x):
        kernel_height, kernel_width, _, out_channels = self.weight.shape
        if self.padding == "same":
            x = pad_same(x, kernel_height, kernel_width)
        n, height, width, _ = x.shape
        out_height = height - kernel_height + 1
        out_width = width - kernel_width + 1
        columns = im2col(x, kernel_height, kernel_width)
        out = columns @ self.weight_matrix + self.bias
        return out.reshape(n, out_height, out_width, out_channels)

    def output_shape(self, input_shape):
        kernel_height, kernel_width, in_channels, out_channels = self.weight.shape
        if len(input_shape) != 3 or input_shape[2] != in_channels:
            raise ModelFileError(
                f"conv2d layer expects input of shape [height, width, {in_channels}] "
                f"but the previous layer gives shape {list(input_shape)}")
        height, width = input_shape[0], input_shape[1]
        if self.padding == "valid":
            height, width = height - kernel_height + 1, width - kernel_width + 1
        if height < 1 or width < 1:
            raise ModelFileError(f"conv2d kernel {kernel_height}x{kernel_width} is larger than its input {list(input_shape)}")
        return (height, width, out_channels)

    def arrays(self):
        return {"weight": self.weight, "bias": self.bias}

    def __repr__(self):
        kernel_height, kernel_width, in_channels, out_channels = self.weight.shape
        return f"Conv2D({in_channels} -> {out_channels}, {kernel_height}x{kernel_width}, padding={self.padding})"


class MaxPool2D:
    type = "maxpool2d"

    def __init__(self, size=2):
        self.size = size

    def __call__(self, x):
        n, height, width, channels = x.shape
        size = self.size
        # Rows and columns that do not fill a whole window are dropped, as in "valid" pooling.
        x = x[:, : height - height % size, : width - width % size, :]
        blocks = x.reshape(n, height // size, size, width // size, size, channels)
        return blocks.max(axis=(2, 4))

    def output_shape(self, input_shape):
        if len(input_shape) != 3 or input_shape[0] < self.size or input_shape[1] < self.size:
            raise ModelFileError(f"maxpool2d of size {self.size} cannot take input of shape {list(input_shape)}")
        return (input_shape[0] // self.size, input_shape[1] // self.size, input_shape[2])

    def arrays(self):
        return {}

    def __repr__(self):
        return f"MaxPool2D({self.size})"
