"""AdamW against hand-computed updates, and the learning-rate schedule at chosen steps."""

import math

import numpy as np
import pytest

from train.optim import AdamW, warmup_cosine_lr


def test_adamw_first_step_exact():
    weight = np.array([[1.0, -2.0]])
    bias = np.array([0.5])
    optimizer = AdamW([weight, bias], weight_decay=0.01, betas=(0.9, 0.999), eps=1e-8)
    optimizer.step([np.array([[0.5, -0.25]]), np.array([2.0])], lr=0.1)
    # Step 1: bias correction makes m_hat = g and v_hat = g^2, so Adam moves each
    # value by lr * g / (|g| + eps). The weight first shrinks by 1 - lr * decay = 0.999.
    assert weight[0, 0] == pytest.approx(1.0 * 0.999 - 0.1 * 0.5 / (0.5 + 1e-8), rel=1e-14)
    assert weight[0, 1] == pytest.approx(-2.0 * 0.999 + 0.1 * 0.25 / (0.25 + 1e-8), rel=1e-14)
    # Biases have one dimension and are not decayed.
    assert bias[0] == pytest.approx(0.5 - 0.1 * 2.0 / (2.0 + 1e-8), rel=1e-14)


def test_adamw_second_step_exact():
    weight = np.array([[1.0]])
    optimizer = AdamW([weight], weight_decay=0.01, betas=(0.9, 0.999), eps=1e-8)
    optimizer.step([np.array([[0.5]])], lr=0.1)
    after_first = 1.0 * 0.999 - 0.1 * 0.5 / (0.5 + 1e-8)
    optimizer.step([np.array([[-0.5]])], lr=0.1)
    # m = 0.9 * 0.05 + 0.1 * -0.5 = -0.005 and v = 0.999 * 0.00025 + 0.001 * 0.25 = 0.00049975.
    # Bias correction divides them by 1 - 0.9^2 = 0.19 and 1 - 0.999^2 = 0.001999, so v_hat = 0.25.
    expected = after_first * 0.999 + 0.1 * (0.005 / 0.19) / (math.sqrt(0.25) + 1e-8)
    assert weight[0, 0] == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(optimizer.first_moments[0], [[-0.005]], rtol=1e-12)
    np.testing.assert_allclose(optimizer.second_moments[0], [[0.00049975]], rtol=1e-12)


def test_adamw_keeps_float32():
    weight = np.ones((2, 2), dtype=np.float32)
    optimizer = AdamW([weight])
    optimizer.step([np.ones((2, 2), dtype=np.float32)], lr=1e-3)
    assert weight.dtype == np.float32
    assert optimizer.first_moments[0].dtype == np.float32


def test_adamw_updates_in_place():
    weight = np.zeros((2, 3))
    original = weight
    AdamW([weight]).step([np.ones((2, 3))], lr=0.1)
    assert weight is original
    np.testing.assert_allclose(weight, np.full((2, 3), -0.1), rtol=1e-7)


@pytest.mark.parametrize("step, expected", [
    (0, 0.1),  # the warm-up rises linearly, reaching peak_lr / 10 after the first of 10 steps
    (4, 0.5),
    (9, 1.0),  # the last warm-up step reaches the peak
    (10, 1.0),  # the cosine starts at the peak
    (35, 0.5 + math.sqrt(2) / 4),  # a quarter of the decay: (1 + cos(pi / 4)) / 2
    (60, 0.5),  # half of the decay
    (110, 0.0),  # the last step
    (500, 0.0),  # past the end, the rate stays at final_lr
])
def test_warmup_cosine_values(step, expected):
    assert warmup_cosine_lr(step, total_steps=111, peak_lr=1.0, warmup_steps=10) == pytest.approx(expected, abs=1e-15)


def test_warmup_cosine_final_lr():
    assert warmup_cosine_lr(110, total_steps=111, peak_lr=1.0, warmup_steps=10, final_lr=0.01) == pytest.approx(0.01)
    assert warmup_cosine_lr(60, total_steps=111, peak_lr=1.0, warmup_steps=10, final_lr=0.01) == pytest.approx(0.505)


def test_warmup_cosine_without_warmup():
    assert warmup_cosine_lr(0, total_steps=5, peak_lr=2.0, warmup_steps=0) == 2.0
    assert warmup_cosine_lr(4, total_steps=5, peak_lr=2.0, warmup_steps=0) == pytest.approx(0.0, abs=1e-15)
