"""Nearest-neighbour coverage between point sets and the mesh F-score (FreiHAND / HO3D definition).

For one sample with thresholds t: ``P = frac(gt points whose nearest pred point is at distance < t)``,
``R = frac(pred points whose nearest gt point is at distance < t)`` (strict ``<`` as the official code),
``F = 2PR / (P + R)`` and ``F = 0`` when ``P + R = 0``. (The official code swaps the names precision and
recall; F is symmetric, so the value is the same.)

Only "is the nearest neighbour closer than t" is needed, so no exact nearest-neighbour search is run
(the official code builds an Open3D KD-tree per sample). For a chunk of samples all squared distances come
from one batched float32 product of lifted points ``[a, |a|^2, 1] . [-2b, 1, |b|^2]`` (points centred
first), reduced by ``min`` in both directions. A point is decided from that minimum when it lies farther than a rounding margin from
every ``t^2``; the few points inside the margin are decided again from exact float64 distances
``sqrt(sum((a - b)^2))`` to all points of the other set. The result equals the exact test: every
decision is either beyond the float32 error bound or made in float64 (tests/utils/test_metrics_hand.py
checks it against brute force, benchmarks/bench_metrics.py against per-sample KD-trees).
"""
import numpy as np
import torch

from utils.metrics.arrays import as_points

__all__ = ["F_SCORE_THRESHOLDS_M", "neighbours_within", "f_scores"]

F_SCORE_THRESHOLDS_M = (0.005, 0.015)  # metres: F@5mm, F@15mm
# float32 error bound of |a|^2 + |b|^2 - 2 a.b relative to (|a|max + |b|max)^2: 64 units of roundoff
_FLOAT32_MARGIN = 64 * np.finfo(np.float32).eps
_CHUNK = 4  # samples per batched product: 4 x 778 x 778 float32 = 9.7 MB, near cache size (measured best)


def _decide(approx_min, margin, limits, points, others):
    """(n, P, T) bool: is the nearest of ``others`` (n, Q, 3) closer than each limit (T,) to each of
    ``points`` (n, P, 3)? ``approx_min`` (n, P) are float32 squared minimum distances, good to ``margin`` (n,)."""
    squared = limits ** 2  # (T,)
    gap = approx_min[..., None] - squared  # (n, P, T)
    band = margin[:, None, None]
    inside = gap < -band
    unsure = np.nonzero((np.abs(gap) <= band).any(axis=-1))  # (sample, point) pairs to decide exactly
    if len(unsure[0]):
        exact = np.sqrt(((points[unsure][:, None] - others[unsure[0]]) ** 2).sum(-1)).min(axis=1)  # (N,)
        inside[unsure] = exact[:, None] < limits
    return inside


def _lifted(points_a, points_b):
    """float32 (n, Pa, 5) and (n, 5, Pb) factors whose product is ``|a|^2 + |b|^2 - 2 a.b`` (n, Pa, Pb)."""
    a, b = points_a.astype(np.float32), points_b.astype(np.float32)
    ones_a, ones_b = np.ones(a.shape[:2] + (1,), np.float32), np.ones(b.shape[:2] + (1,), np.float32)
    lifted_a = np.concatenate([a, np.square(a).sum(-1, keepdims=True), ones_a], axis=-1)
    lifted_b = np.concatenate([-2 * b, ones_b, np.square(b).sum(-1, keepdims=True)], axis=-1)
    return torch.from_numpy(lifted_a), torch.from_numpy(lifted_b).transpose(1, 2).contiguous()  # (n, 5, Pb)


def neighbours_within(points_a, points_b, thresholds=F_SCORE_THRESHOLDS_M):
    """Per point, whether its nearest neighbour in the other set is closer than each threshold (strict).

    Args:
        points_a: (B, Pa, 3). points_b: (B, Pb, 3). thresholds: (T,) distances, same unit as the points.

    Returns:
        a_within (B, Pa, T) bool: ``min_j |a_i - b_j| < t``; b_within (B, Pb, T) bool: the other direction.
    """
    a = as_points(points_a, "points_a")
    b = as_points(points_b, "points_b", batch=a.shape[0])
    limits = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    a_within = np.empty(a.shape[:2] + limits.shape, dtype=bool)
    b_within = np.empty(b.shape[:2] + limits.shape, dtype=bool)
    for start in range(0, len(a), _CHUNK):
        part = slice(start, start + _CHUNK)
        centre = b[part].mean(axis=1, keepdims=True)
        sample_a, sample_b = a[part] - centre, b[part] - centre  # (n, Pa, 3), (n, Pb, 3)
        squared = torch.bmm(*_lifted(sample_a, sample_b))  # (n, Pa, Pb) float32 squared distances
        radius = np.linalg.norm(sample_a, axis=-1).max(axis=1) + np.linalg.norm(sample_b, axis=-1).max(axis=1)
        margin = _FLOAT32_MARGIN * radius ** 2  # (n,)
        a_within[part] = _decide(squared.amin(dim=2).double().numpy(), margin, limits, sample_a, sample_b)
        b_within[part] = _decide(squared.amin(dim=1).double().numpy(), margin, limits, sample_b, sample_a)
    return a_within, b_within


def f_scores(pred, gt, thresholds=F_SCORE_THRESHOLDS_M):
    """Per-sample F-scores of predicted vs GT point sets (e.g. the 778 MANO vertices).

    Args:
        pred: (B, Pp, 3) metres. gt: (B, Pg, 3) metres.
        thresholds: distances in metres (default 5 mm and 15 mm).

    Returns:
        (B, T) float64 in [0, 1], one column per threshold.
    """
    pred_within, gt_within = neighbours_within(pred, gt, thresholds)
    gt_covered, pred_covered = gt_within.mean(axis=1), pred_within.mean(axis=1)  # (B, T)
    total = gt_covered + pred_covered
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = np.where(total > 0, 2 * gt_covered * pred_covered / total, 0.0)
    return scores
