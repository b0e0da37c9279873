"""Trainable layers in numpy: forward, backward and export to the model file.

Every layer keeps what its backward pass needs from the last forward pass, so a
forward and a backward call alternate, one batch at a time. Arrays are float32
in training, and the gradient checks build the same layers in float64.
Layout is the inference package's: images are NHWC, (batch, height, width, channels).
"""

import math

import numpy as np

from digits.layers import window_view

from .parallel import add_up, in_row_halves


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


# Below this many multiply-adds, a matrix product runs in one thread, because handing half of it
# to the other thread costs more than it saves. The forward pass of the MLP's last layer
# (128 x 256 x 10) took 0.06 ms in two halves and 0.015 ms in one piece.
MIN_SPLIT_MULTIPLY_ADDS = 1 << 21


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
        out = np.empty((len(x), self.weight.shape[1]), x.dtype)

        def forward_rows(rows, rows_out):
            np.matmul(rows, self.weight, out=rows_out)
            rows_out += self.bias

        in_row_halves(forward_rows, x, out, min_elements=self.min_split_elements(x))
        return out

    def min_split_elements(self, x):
        """Return in_row_halves' min_elements for products of x's rows with the weight: 0 to split them, unless they are small."""
        return 0 if len(x) * self.weight.size >= MIN_SPLIT_MULTIPLY_ADDS else x.size + 1

    def backward(self, grad):
        split = self.min_split_elements(self.x)
        # Each half of the batch gives its part of the sum over the batch.
        parts = in_row_halves(lambda rows, grad_rows: rows.T @ grad_rows, self.x, grad, min_elements=split)
        add_up(parts, self.weight_gradient)
        np.sum(grad, axis=0, out=self.bias_gradient)
        if not self.input_gradient:
            return None
        input_grad = np.empty(self.x.shape, grad.dtype)
        # A transposed operand with out= was over 100 times slower (numpy 2.4.6), hence the contiguous copy.
        transposed = np.ascontiguousarray(self.weight.T)
        in_row_halves(lambda grad_rows, out: np.matmul(grad_rows, transposed, out=out), grad, input_grad,
                      min_elements=0 if split == 0 else grad.size + 1)
        return input_grad

    def parameters(self):
        return [self.weight, self.bias]

    def gradients(self):
        return [self.weight_gradient, self.bias_gradient]

    def export(self):
        return {"type": "dense", "weight": self.weight, "bias": self.bias}

    def __repr__(self):
        return f"Dense({self.weight.shape[0]} -> {self.weight.shape[1]})"


def multiply_flat(x, mask, out):
    """Write x * mask to out, for a boolean mask of x's shape.

    All three are handled as flat arrays, because numpy ran the loop that converts
    the mask once per row of a 2-D array of 32 channels, and took 1.5 times as long.
    """
    if not (x.flags.c_contiguous and mask.flags.c_contiguous and out.flags.c_contiguous):
        np.multiply(x, mask, out=out)
        return
    np.multiply(x.reshape(-1), mask.reshape(-1), out=out.reshape(-1))


def keep_positive(x, positive, out):
    """Set positive to x > 0, and out to x where it is positive and 0 elsewhere."""
    np.greater(x, 0, out=positive)
    multiply_flat(x, positive, out)


class ReLU(Layer):

    def forward(self, x, training):
        self.positive = np.empty(x.shape, dtype=bool)
        out = np.empty_like(x)
        in_row_halves(keep_positive, x, self.positive, out)
        return out

    def backward(self, grad):
        input_grad = np.empty_like(grad)
        in_row_halves(multiply_flat, grad, self.positive, input_grad)
        return input_grad

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


# Images are unfolded into im2col rows a few at a time, into buffers of about this size. A
# buffer that stays in the core's 2 MB L2 cache is read by the matrix product straight after
# it is written: the 16 -> 32 convolution on 128 images took 26 ms for its forward and
# backward passes this way, against 37 ms with the whole batch unfolded at once (AMD EPYC,
# 2 cores, numpy 2.4.6), even though the backward pass unfolds its input a second time.
COLUMN_CHUNK_BYTES = 2 << 20


def chunked_columns(x, size, before, after):
    """Yield (start, stop, columns) for consecutive chunks of the images in x (N, H, W, C).

    columns contains the im2col rows of x[start:stop] zero-padded on height and width
    by `before` and `after` pixels, for a size x size kernel. The buffers are reused,
    so each columns array is only valid until the next one is yielded.
    """
    count, height, width, channels = x.shape
    padded_height, padded_width = height + before + after, width + before + after
    out_height, out_width = padded_height - size + 1, padded_width - size + 1
    image_bytes = out_height * out_width * size * size * channels * x.itemsize
    chunk = max(1, min(count, COLUMN_CHUNK_BYTES // image_bytes))
    columns = np.empty((chunk, out_height, out_width, size, size, channels), x.dtype)
    padded = np.zeros((chunk, padded_height, padded_width, channels), x.dtype) if before or after else None
    for start in range(0, count, chunk):
        stop = min(start + chunk, count)
        images = x[start:stop]
        if padded is not None:
            # Only the middle is written, so the zero border stays from the allocation.
            padded[: stop - start, before: before + height, before: before + width] = images
            images = padded[: stop - start]
        unfold_into(columns[: stop - start], images)
        yield start, stop, columns[: stop - start].reshape((stop - start) * out_height * out_width, -1)


def unfold_into(columns, images):
    """Write every window of images (N, H, W, C) into columns (N, H_out, W_out, kh, kw, C)."""
    kernel_height, kernel_width, channels = columns.shape[3:]
    if channels >= 8:
        np.copyto(columns, window_view(images, kernel_height, kernel_width))
        return
    # With few channels a window row is only a few floats long, and numpy's copy of the
    # window view runs its inner loop once per window row. One copy per kernel position,
    # each over whole image rows, took a third of the time for a single channel.
    out_height, out_width = columns.shape[1:3]
    for row in range(kernel_height):
        for column in range(kernel_width):
            columns[:, :, :, row, column] = images[:, row: row + out_height, column: column + out_width]


def convolve(images, matrix, size, before, after, out):
    """Write the stride-1 convolution of images (N, H, W, C), zero-padded by before and after, to out (N, H_out, W_out, K).

    matrix is the kernel [size, size, C, K] reshaped to (size * size * C, K).
    """
    out_rows = out.reshape(-1, out.shape[3])
    pixels = out.shape[1] * out.shape[2]
    for start, stop, columns in chunked_columns(images, size, before, after):
        np.matmul(columns, matrix, out=out_rows[start * pixels: stop * pixels])


class Conv2D(Layer):
    """A stride-1 convolution of NHWC images with a kernel [kh, kw, in_channels, out_channels].

    Both passes are matrix products over im2col windows, a few images at a time
    (chunked_columns). The gradient for the input is itself a stride-1
    convolution: the output gradient, padded on the opposite sides to the forward
    pass, convolved with the kernel flipped in height and width and with in and
    out channels swapped. So the backward pass needs no scatter of window
    gradients back onto overlapping pixels.
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
        self.x = None

    def padding_amounts(self):
        """Return the zero padding (before, after) that the forward pass puts on height and width."""
        if self.padding == "valid":
            return 0, 0
        before = (self.kernel_size - 1) // 2
        return before, self.kernel_size - 1 - before

    def forward(self, x, training):
        # The input is kept, not its im2col rows: the backward pass unfolds it again, chunk by chunk.
        self.x = x
        before, after = self.padding_amounts()
        size = self.kernel_size
        count, height, width, _ = x.shape
        out = np.empty((count, height + before + after - size + 1, width + before + after - size + 1,
                        self.weight.shape[3]), x.dtype)
        matrix = self.weight.reshape(-1, self.weight.shape[3])
        in_row_halves(lambda images, images_out: convolve(images, matrix, size, before, after, images_out),
                      x, out, min_elements=0)
        if self.bias is not None:
            out += self.bias
        return out

    def backward(self, grad):
        size = self.kernel_size
        before, after = self.padding_amounts()
        out_channels = self.weight.shape[3]

        def weight_gradient(images, images_grad):
            grad_rows = images_grad.reshape(-1, out_channels)
            pixels = images_grad.shape[1] * images_grad.shape[2]
            total = np.zeros((size * size * images.shape[3], out_channels), grad.dtype)
            for start, stop, columns in chunked_columns(images, size, before, after):
                total += columns.T @ grad_rows[start * pixels: stop * pixels]
            return total

        parts = in_row_halves(weight_gradient, self.x, grad, min_elements=0)
        add_up(parts, self.weight_gradient.reshape(-1, out_channels))
        if self.bias is not None:
            np.sum(grad.reshape(-1, out_channels), axis=0, out=self.bias_gradient)
        if not self.input_gradient:
            return None
        # The forward pass padded the input by `before` and `after` on each axis; the
        # gradient is padded by the same two amounts, swapped. A valid convolution has
        # no padding, and its gradient is padded by size - 1 on both sides.
        if self.padding == "valid":
            before = after = size - 1
        else:
            before, after = after, before
        flipped = np.ascontiguousarray(self.weight[::-1, ::-1].transpose(0, 1, 3, 2)).reshape(-1, self.weight.shape[2])
        input_grad = np.empty(self.x.shape, grad.dtype)
        in_row_halves(lambda images_grad, out: convolve(images_grad, flipped, size, before, after, out),
                      grad, input_grad, min_elements=0)
        return input_grad

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


# Pixels per row in pixel_rows. Per-channel operations on an array of shape (pixels,
# channels) run numpy's inner loop once per row, and rows of 16 to 64 channels are too
# short for it. The column sums of 128 x 28 x 28 x 32 floats took 1.3 ms with one pixel
# per row and 0.2 ms with 64 (numpy 2.4.6).
PIXELS_PER_ROW = 64


def pixel_rows(x):
    """Return x (..., C) reshaped to rows of several whole pixels each, and the number of pixels per row.

    A vector per channel applies to such rows when tiled that many times, and
    channel_sums turns the rows' column sums back into sums per channel.
    """
    channels = x.shape[-1]
    repeats = math.gcd(x.size // channels, PIXELS_PER_ROW)
    return x.reshape(-1, repeats * channels), repeats


def channel_sums(column_sums, repeats):
    """Add up column sums of pixel_rows' rows, given as a list of parts, into one sum per channel."""
    return np.sum(column_sums, axis=0).reshape(repeats, -1).sum(axis=0)


def affine(rows, scale, shift, out):
    """Write rows * scale + shift to out."""
    np.multiply(rows, scale, out=out)
    out += shift


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
        rows, repeats = pixel_rows(x)
        out = np.empty_like(rows)
        if not training:
            scale, shift = (np.tile(vector, repeats) for vector in self.inference_affine())
            in_row_halves(lambda part, part_out: affine(part, scale, shift, part_out), rows, out)
            return out.reshape(x.shape)
        count = x.size // x.shape[-1]
        mean = channel_sums(in_row_halves(lambda part: part.sum(axis=0), rows), repeats) / count
        tiled_mean = np.tile(mean, repeats)

        def centre(part, centred):
            np.subtract(part, tiled_mean, out=centred)
            return np.einsum("ij,ij->j", centred, centred)

        self.centred = np.empty_like(rows)
        var = channel_sums(in_row_halves(centre, rows, self.centred), repeats) / count
        self.inverse_std = 1 / np.sqrt(var + self.eps)
        momentum = self.momentum
        self.running_mean *= 1 - momentum
        self.running_mean += momentum * mean
        # The running variance estimates the population's, hence the unbiased count - 1.
        self.running_var *= 1 - momentum
        self.running_var += momentum * var * (count / max(count - 1, 1))
        scale, shift = np.tile(self.gamma * self.inverse_std, repeats), np.tile(self.beta, repeats)
        in_row_halves(lambda part, part_out: affine(part, scale, shift, part_out), self.centred, out)
        return out.reshape(x.shape)

    def backward(self, grad):
        rows = grad.reshape(self.centred.shape)
        repeats = rows.shape[1] // grad.shape[-1]
        count = grad.size // grad.shape[-1]
        np.copyto(self.beta_gradient, channel_sums(in_row_halves(lambda part: part.sum(axis=0), rows), repeats))
        grad_dot_centred = channel_sums(
            in_row_halves(lambda part, centred: np.einsum("ij,ij->j", part, centred), rows, self.centred), repeats)
        np.copyto(self.gamma_gradient, grad_dot_centred * self.inverse_std)
        # d loss / d x for y = gamma * x_hat + beta, with x_hat = (x - mean) / std over the batch:
        # gamma / std * (g - mean(g) - x_hat * mean(g * x_hat)), where mean(g * x_hat) is gamma_gradient / count.
        scale = self.gamma * self.inverse_std
        grad_scale = np.tile(scale, repeats)
        shift = np.tile(-scale * self.beta_gradient / count, repeats)
        centred_scale = np.tile(scale * self.inverse_std * self.gamma_gradient / count, repeats)

        def input_gradient(part, centred, out):
            affine(part, grad_scale, shift, out)
            out -= centred * centred_scale

        input_grad = np.empty_like(rows)
        in_row_halves(input_gradient, rows, self.centred, input_grad)
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


def first_maximum(arrays, out, winner):
    """Write the elementwise maximum of same-shape arrays to out, and for each element the index of the first array that contains it to winner."""
    if len(arrays) == 1:
        np.copyto(out, arrays[0])
        winner[...] = 0
        return
    # Strictly greater, so a tie keeps the earlier array as the winner.
    np.greater(arrays[1], arrays[0], out=winner.view(bool))
    np.maximum(arrays[0], arrays[1], out=out)
    for index, array in enumerate(arrays[2:], start=2):
        greater = array > out
        np.maximum(out, array, out=out)
        winner[greater] = index


class MaxPool2D(Layer):
    """Maximum over non-overlapping size x size windows. Rows and columns that fill no whole window are dropped.

    The maximum is taken in two steps: over the rows of each window, where every
    step compares whole image rows, and then over its columns. Each window's
    gradient goes to one of its maximal elements only, so that tied maxima (such
    as zeros after a ReLU) do not receive it twice.
    """

    def __init__(self, size=2):
        self.size = size

    def forward(self, x, training):
        size = self.size
        count, height, width, channels = self.input_shape = x.shape
        out_height, out_width = height // size, width // size
        self.row_winner = np.empty((count, out_height, out_width, size * channels), np.uint8)
        self.column_winner = np.empty((count, out_height, out_width, channels), np.uint8)
        out = np.empty((count, out_height, out_width, channels), x.dtype)

        def pool(images, row_winner, column_winner, images_out):
            # Axis 2 is the row within the window; the last axis contains the window's columns, each channel by channel.
            windows = images[:, : out_height * size, : out_width * size].reshape(
                len(images), out_height, size, out_width, size * channels)
            row_max = np.empty(row_winner.shape, x.dtype)
            first_maximum([windows[:, :, row] for row in range(size)], row_max, row_winner)
            first_maximum([row_max[..., column * channels: (column + 1) * channels] for column in range(size)],
                          images_out, column_winner)

        in_row_halves(pool, x, self.row_winner, self.column_winner, out)
        return out

    def backward(self, grad):
        size = self.size
        count, height, width, channels = self.input_shape
        out_height, out_width = grad.shape[1:3]
        windows_grad = np.empty((count, out_height, size, out_width, size * channels), grad.dtype)

        def unpool(images_grad, row_winner, column_winner, out):
            row_grad = np.empty(row_winner.shape, grad.dtype)
            for column in range(size):
                np.multiply(images_grad, column_winner == column, out=row_grad[..., column * channels: (column + 1) * channels])
            for row in range(size):
                np.multiply(row_grad, row_winner == row, out=out[:, :, row])

        in_row_halves(unpool, grad, self.row_winner, self.column_winner, windows_grad)
        windows_grad = windows_grad.reshape(count, out_height * size, out_width * size, channels)
        if windows_grad.shape == self.input_shape:
            return windows_grad
        input_grad = np.zeros(self.input_shape, grad.dtype)
        input_grad[:, : out_height * size, : out_width * size] = windows_grad
        return input_grad

    def export(self):
        return {"type": "maxpool2d", "size": self.size}

    def __repr__(self):
        return f"MaxPool2D({self.size})"
