"""Temporal smoothing of per-frame predictions (One-Euro filter) and the jitter it is judged by.

The One-Euro filter (Casiez, Roussel and Vogel, CHI 2012) is a low-pass filter whose cut-off frequency rises with
the signal's speed: slow motion is smoothed strongly (little jitter), fast motion lightly (little lag). It runs
element-wise on arrays of any fixed shape, e.g. (778, 3) vertices in metres, one call per frame.
"""
from __future__ import annotations

import math

import numpy as np


def smoothing_factor(cutoff_hz, dt_s: float):
    """Exponential smoothing weight of the new sample for a first-order low-pass at ``cutoff_hz`` (float or
    array, element-wise)."""
    tau = 1.0 / (2.0 * math.pi * cutoff_hz)
    return 1.0 / (1.0 + tau / dt_s)


class OneEuroFilter:
    """One-Euro filter over arrays of a fixed shape.

    Args:
        min_cutoff_hz: cut-off at rest (lower = smoother when still).
        beta: how fast the cut-off grows with speed (``cutoff = min_cutoff + beta * |speed|``, speed in units/s).
        derivative_cutoff_hz: cut-off of the low-pass on the speed estimate.
    """

    def __init__(self, min_cutoff_hz: float = 1.0, beta: float = 0.0, derivative_cutoff_hz: float = 1.0):
        if min_cutoff_hz <= 0 or derivative_cutoff_hz <= 0 or beta < 0:
            raise ValueError("OneEuroFilter needs positive cut-offs and a non-negative beta, got "
                             f"min_cutoff_hz={min_cutoff_hz}, derivative_cutoff_hz={derivative_cutoff_hz}, beta={beta}")
        self.min_cutoff_hz, self.beta, self.derivative_cutoff_hz = min_cutoff_hz, beta, derivative_cutoff_hz
        self._value = None
        self._speed = None

    def reset(self) -> None:
        """Forget the history (e.g. when the tracked hand is lost)."""
        self._value = self._speed = None

    def __call__(self, value: np.ndarray, dt_s: float) -> np.ndarray:
        """Filter the next sample ``value`` (any shape, fixed across calls) taken ``dt_s`` seconds after the last."""
        value = np.asarray(value, dtype=np.float64)
        if self._value is None:
            self._value, self._speed = value.copy(), np.zeros_like(value)
            return value.copy()
        if value.shape != self._value.shape:
            raise ValueError(f"OneEuroFilter got shape {value.shape} after {self._value.shape}")
        speed = (value - self._value) / dt_s
        a_speed = smoothing_factor(self.derivative_cutoff_hz, dt_s)
        self._speed = a_speed * speed + (1.0 - a_speed) * self._speed
        cutoff = self.min_cutoff_hz + self.beta * np.abs(self._speed)
        a_value = smoothing_factor(cutoff, dt_s)
        self._value = a_value * value + (1.0 - a_value) * self._value
        return self._value.copy()


def smooth_sequence(frames: np.ndarray, fps: float, **filter_args) -> np.ndarray:
    """Run a fresh :class:`OneEuroFilter` over ``frames`` (T, ...) sampled at ``fps``; returns (T, ...) float64."""
    one_euro = OneEuroFilter(**filter_args)
    return np.stack([one_euro(frame, 1.0 / fps) for frame in np.asarray(frames, dtype=np.float64)])


def jitter(frames: np.ndarray) -> float:
    """Mean acceleration magnitude of a point sequence (T, N, 3): ``mean |x[t+1] - 2 x[t] + x[t-1]|`` in the
    input's units per frame^2 (T >= 3). Smooth motion at constant speed scores 0; frame-to-frame noise does not.
    """
    frames = np.asarray(frames, dtype=np.float64)
    if frames.ndim != 3 or frames.shape[0] < 3:
        raise ValueError(f"jitter needs (T >= 3, N, D) points, got {frames.shape}")
    acceleration = frames[2:] - 2.0 * frames[1:-1] + frames[:-2]
    return float(np.linalg.norm(acceleration, axis=-1).mean())
