"""PCK curves and their AUC (FreiHAND ``EvalUtil`` / DexYCB-toolkit definition).

PCK(t) of a keypoint = fraction of samples whose error is ``<= t``; the curve is averaged over keypoints
(every keypoint visible in every sample, so this is the fraction over all (sample, keypoint) pairs).
AUC = ``trapezoid(pck, t) / trapezoid(ones, t)``; the official range is 0-50 mm with 100 thresholds
(docs/official-data.md §4.3, docs/libraries.md C.3). A 20-50 mm AUC (common in older hand papers) is an extra.

Errors can be reduced once to *threshold bins* (uint8 per point), from which the curve on the same grid
is exact; the evaluator stores bins instead of float errors to keep memory small.
"""
import numpy as np
from numba import njit

from utils.metrics.arrays import as_float_array

__all__ = [
    "PCK_THRESHOLDS_M",
    "PCK_20_50_THRESHOLDS_M",
    "threshold_bins",
    "pck_from_bins",
    "pck_curve",
    "auc",
]

PCK_THRESHOLDS_M = np.linspace(0.0, 0.05, 100)  # metres, official 0-50 mm, 100 steps
PCK_20_50_THRESHOLDS_M = np.linspace(0.02, 0.05, 100)  # metres, extra 20-50 mm range


def _check_grid(thresholds):
    grid = np.asarray(thresholds, dtype=np.float64)
    if grid.ndim != 1 or len(grid) < 2 or np.any(np.diff(grid) <= 0):
        raise ValueError(f"thresholds must be a strictly increasing 1-D array of >= 2 values, got {grid}")
    if len(grid) > np.iinfo(np.uint16).max:
        raise ValueError(f"at most {np.iinfo(np.uint16).max} thresholds are supported, got {len(grid)}")
    return grid


def threshold_bins(errors, thresholds):
    """Index of the first threshold ``>= error`` for each error (``len(thresholds)`` if above all).

    ``error <= thresholds[j]`` holds exactly when ``bin <= j``.

    Args:
        errors: (N, K) per-point errors, same unit as ``thresholds``.
        thresholds: (T,) strictly increasing.

    Returns:
        (N, K) uint8 (uint16 when T >= 255).
    """
    grid = _check_grid(thresholds)
    errors = as_float_array(errors, "errors", (None, None), copy=False)
    bins = np.empty(errors.shape, dtype=np.uint8 if len(grid) < np.iinfo(np.uint8).max else np.uint16)
    _first_threshold_at_or_above(errors, grid, bins)
    return bins


@njit(cache=True)
def _first_threshold_at_or_above(errors, grid, out):
    """``out[...] = np.searchsorted(grid, errors, side="left")`` (NaN -> ``len(grid)``): a uniform lookup table
    over ``[grid[0], grid[-1]]`` gives a starting index, which a short walk corrects to the exact one."""
    size = len(grid)
    num_slots = 4 * size
    inv = num_slots / (grid[-1] - grid[0])
    start = np.searchsorted(grid, grid[0] + np.arange(num_slots) / inv)
    for n in range(errors.shape[0]):
        for k in range(errors.shape[1]):
            e = errors[n, k]
            if not e == e:
                out[n, k] = size
                continue
            slot = (e - grid[0]) * inv
            i = 0 if not slot > 0.0 else (size if slot >= num_slots else start[np.int64(slot)])
            while i > 0 and grid[i - 1] >= e:
                i -= 1
            while i < size and grid[i] < e:
                i += 1
            out[n, k] = i


def pck_from_bins(bins, num_thresholds):
    """PCK curve (T,) averaged over keypoints from (N, K) threshold bins; all-NaN when N == 0."""
    bins = np.asarray(bins)
    if bins.size == 0:
        return np.full(num_thresholds, np.nan)
    counts = np.bincount(bins.ravel().astype(np.int64), minlength=num_thresholds + 1)
    return np.cumsum(counts)[:num_thresholds] / bins.size


def pck_curve(errors, thresholds=PCK_THRESHOLDS_M):
    """PCK curve (T,) of (N, K) errors at ``thresholds`` (``error <= t``), averaged over keypoints."""
    return pck_from_bins(threshold_bins(errors, thresholds), len(thresholds))


def auc(pck, thresholds=PCK_THRESHOLDS_M):
    """Normalised area under a PCK curve: ``trapezoid(pck, t) / trapezoid(ones, t)``, in [0, 1]."""
    grid = _check_grid(thresholds)
    pck = np.asarray(pck, dtype=np.float64)
    if pck.shape != grid.shape:
        raise ValueError(f"pck has shape {pck.shape} but there are {len(grid)} thresholds")
    return float(np.trapezoid(pck, grid) / np.trapezoid(np.ones_like(grid), grid))
