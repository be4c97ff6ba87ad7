"""Jitter of a noisy synthetic hand sequence before and after ``predict.py --smooth`` (One-Euro filter).

    python -m benchmarks.smoothing_jitter

The sequence: 21 points of a hand shape drifting on a circle of 5 cm radius (one turn in 3 s) at 0.6 m, 90 frames
at 30 fps, plus Gaussian noise of 4 mm per coordinate, the order of a single-image model's frame-to-frame
wobble. Printed per filter setting: jitter (mean acceleration, mm / frame^2; utils/temporal_filter.py) and the
mean distance to the clean motion (mm, from frame 10 on, after the filter's start-up).
"""
from __future__ import annotations

import numpy as np

from utils.temporal_filter import jitter, smooth_sequence

FPS = 30.0
SETTINGS = ((1.0, 10.0), (1.0, 0.0), (1.0, 30.0), (2.0, 20.0))  # (min_cutoff_hz, beta); first = predict.py default


def noisy_hand_sequence(frames: int = 90, fps: float = FPS, noise_m: float = 0.004, seed: int = 0):
    """(clean, noisy) point sequences (T, 21, 3) metres (module docstring)."""
    rng = np.random.default_rng(seed)
    shape = rng.normal(scale=0.04, size=(21, 3))
    angle = 2 * np.pi * np.arange(frames) / (3 * fps)
    path = np.stack([0.05 * np.cos(angle), 0.05 * np.sin(angle), np.full(frames, 0.6)], axis=1)  # (T, 3)
    clean = shape[None] + path[:, None]
    return clean, clean + rng.normal(scale=noise_m, size=clean.shape)


def error_mm(sequence: np.ndarray, clean: np.ndarray, start: int = 10) -> float:
    """Mean point distance (mm) to the clean motion from frame ``start`` on."""
    return float(np.linalg.norm(sequence - clean, axis=2)[start:].mean() * 1000.0)


def main() -> None:
    clean, noisy = noisy_hand_sequence()
    print("setting                     | jitter (mm/frame^2) | error to clean (mm)")
    print(f"{'clean motion':<28}| {jitter(clean) * 1000:19.2f} | {0.0:19.2f}")
    print(f"{'noisy (no smoothing)':<28}| {jitter(noisy) * 1000:19.2f} | {error_mm(noisy, clean):19.2f}")
    for min_cutoff, beta in SETTINGS:
        smoothed = smooth_sequence(noisy, FPS, min_cutoff_hz=min_cutoff, beta=beta)
        label = f"one-euro {min_cutoff:g} Hz, beta {beta:g}"
        print(f"{label:<28}| {jitter(smoothed) * 1000:19.2f} | {error_mm(smoothed, clean):19.2f}")


if __name__ == "__main__":
    main()
