"""AdamW and the learning-rate schedule."""

import math

import numpy as np

from .parallel import in_row_halves


class AdamW:
    """Adam with decoupled weight decay.

    Weight decay shrinks each weight by lr * weight_decay per step, apart from the
    Adam update. Adding it to the gradient instead (L2 regularisation) would be
    divided by Adam's per-weight scale, so weights with large gradients would be
    barely decayed. Only arrays of 2 or more dimensions (weights and kernels) are
    decayed, because decaying biases only pulls them towards zero and does not
    limit what the network can fit.
    """

    def __init__(self, parameters, weight_decay=0.01, betas=(0.9, 0.999), eps=1e-8):
        self.parameters = parameters
        self.weight_decay = weight_decay
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.first_moments = [np.zeros_like(p) for p in parameters]
        self.second_moments = [np.zeros_like(p) for p in parameters]
        self.steps = 0

    def step(self, gradients, lr):
        """Update every parameter in place from its gradient, at learning rate lr."""
        self.steps += 1
        # Bias correction: the moments start at zero, so early averages are too small by these factors.
        first_correction = 1 - self.beta1 ** self.steps
        second_correction = 1 - self.beta2 ** self.steps
        for parameter, gradient, m, v in zip(self.parameters, gradients, self.first_moments, self.second_moments):
            decay = parameter.ndim >= 2 and self.weight_decay

            def update(parameter, gradient, m, v):
                # The same operations as m += (1 - beta1) * gradient and so on, written into two scratch
                # arrays instead of a new array for each intermediate result.
                scratch, step = np.empty_like(parameter), np.empty_like(parameter)
                if decay:
                    parameter *= parameter.dtype.type(1 - lr * self.weight_decay)
                m *= self.beta1
                m += np.multiply(gradient, 1 - self.beta1, out=scratch)
                v *= self.beta2
                np.square(gradient, out=scratch)
                v += np.multiply(scratch, 1 - self.beta2, out=scratch)
                denominator = np.divide(v, second_correction, out=scratch)
                np.sqrt(denominator, out=denominator)
                denominator += self.eps
                np.multiply(m, lr / first_correction, out=step)
                parameter -= np.divide(step, denominator, out=step)

            # Every element is updated on its own, so the halves give the same result as one call.
            in_row_halves(update, parameter, gradient, m, v)

    def __repr__(self):
        return (f"AdamW(betas=({self.beta1}, {self.beta2}), eps={self.eps}, "
                f"weight_decay={self.weight_decay}, {len(self.parameters)} arrays)")


def warmup_cosine_lr(step, total_steps, peak_lr, warmup_steps, final_lr=0.0):
    """Return the learning rate for step (0-based) of total_steps.

    It rises linearly to peak_lr over warmup_steps, then follows half a cosine
    down to final_lr at the last step. The warm-up keeps the first updates small
    while Adam's second-moment estimates rest on only a few batches and the
    freshly initialised network has large gradients. The cosine keeps the rate
    high for most of training, then lowers it smoothly, so the last epochs
    average out the noise of single batches instead of jumping around a minimum.
    """
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    decay_steps = max(total_steps - warmup_steps - 1, 1)
    progress = min((step - warmup_steps) / decay_steps, 1.0)
    return final_lr + (peak_lr - final_lr) * 0.5 * (1 + math.cos(math.pi * progress))
