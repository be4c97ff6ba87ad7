"""One-Euro filter and jitter measure (utils/temporal_filter.py)."""
import math

import numpy as np
import pytest

from benchmarks.smoothing_jitter import error_mm, noisy_hand_sequence
from utils.temporal_filter import OneEuroFilter, jitter, smooth_sequence, smoothing_factor


def test_smoothing_factor_matches_the_formula():
    # tau = 1 / (2 pi * 1 Hz); alpha = 1 / (1 + tau / dt) at 30 fps
    assert smoothing_factor(1.0, 1 / 30) == pytest.approx(1 / (1 + 30 / (2 * math.pi)))
    assert np.allclose(smoothing_factor(np.array([1.0, 2.0]), 0.1), [1 / (1 + 1 / (0.2 * math.pi)),
                                                                   1 / (1 + 1 / (0.4 * math.pi))])


def test_first_sample_passes_and_a_constant_stays_constant():
    one_euro = OneEuroFilter(min_cutoff_hz=0.5)
    value = np.array([[1.0, 2.0, 3.0]])
    for _ in range(5):
        assert np.allclose(one_euro(value, 1 / 30), value)


def test_jitter_is_zero_for_constant_speed_and_positive_for_noise():
    t = np.arange(10.0)[:, None, None]
    assert jitter(np.concatenate([t, 2 * t, -t], axis=2)) == pytest.approx(0.0)
    assert jitter(np.random.default_rng(0).normal(size=(10, 4, 3))) > 1.0
    with pytest.raises(ValueError, match="T >= 3"):
        jitter(np.zeros((2, 4, 3)))


def test_smoothing_lowers_jitter_and_stays_near_the_clean_motion():
    clean, noisy = noisy_hand_sequence()
    smoothed = smooth_sequence(noisy, fps=30.0, min_cutoff_hz=1.0, beta=10.0)  # predict.py defaults
    before, after = jitter(noisy) * 1000, jitter(smoothed) * 1000  # mm / frame^2
    assert after < 0.3 * before, (before, after)
    assert error_mm(smoothed, clean) < error_mm(noisy, clean)


def test_shape_change_is_an_error():
    one_euro = OneEuroFilter()
    one_euro(np.zeros(3), 0.1)
    with pytest.raises(ValueError, match="shape"):
        one_euro(np.zeros(4), 0.1)
