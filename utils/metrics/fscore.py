"""Nearest-neighbour distances between point sets and the mesh F-score (FreiHAND / HO3D definition).

For one sample with thresholds t: ``P = frac(gt points whose nearest pred point is at distance < t)``,
``R = frac(pred points whose nearest gt point is at distance < t)`` (strict ``<`` as the official code),
``F = 2PR / (P + R)`` and ``F = 0`` when ``P + R = 0``. (The official code swaps the names precision and
recall; F is symmetric, so the value is the same.)

Nearest neighbours come from a KD-tree per sample (scipy ``cKDTree``; the official code uses Open3D's
KD-tree), vectorised over the points. A batched dense ``torch.cdist`` over all samples of a chunk was
measured 2-2.5x slower for 778 x 778 points on 2 CPU cores (``benchmarks/bench_metrics.py`` prints both),
so the per-sample tree is used.
"""
import numpy as np
from scipy.spatial import cKDTree

from utils.metrics.arrays import as_points

__all__ = ["F_SCORE_THRESHOLDS_M", "nearest_neighbour_distances", "f_scores"]

F_SCORE_THRESHOLDS_M = (0.005, 0.015)  # metres: F@5mm, F@15mm


def nearest_neighbour_distances(points_a, points_b):
    """Distance from every point of one set to its nearest neighbour in the other, per sample.

    Args:
        points_a: (B, Pa, 3). points_b: (B, Pb, 3). Same units out as in.

    Returns:
        a_to_b (B, Pa) float64: distance from each point of ``a`` to the nearest point of ``b``;
        b_to_a (B, Pb) float64: the other direction.
    """
    a = as_points(points_a, "points_a")
    b = as_points(points_b, "points_b", batch=a.shape[0])
    a_to_b = np.empty(a.shape[:2])
    b_to_a = np.empty(b.shape[:2])
    for i, (sample_a, sample_b) in enumerate(zip(a, b)):
        a_to_b[i] = cKDTree(sample_b).query(sample_a)[0]
        b_to_a[i] = cKDTree(sample_a).query(sample_b)[0]
    return a_to_b, b_to_a


def f_scores(pred, gt, thresholds=F_SCORE_THRESHOLDS_M):
    """Per-sample F-scores of predicted vs GT point sets (e.g. the 778 MANO vertices).

    Args:
        pred: (B, Pp, 3) metres. gt: (B, Pg, 3) metres.
        thresholds: distances in metres (default 5 mm and 15 mm).

    Returns:
        (B, T) float64 in [0, 1], one column per threshold.
    """
    pred_to_gt, gt_to_pred = nearest_neighbour_distances(pred, gt)
    limits = np.asarray(thresholds, dtype=np.float64)[None, :, None]  # (1, T, 1)
    gt_covered = (gt_to_pred[:, None] < limits).mean(axis=2)  # (B, T)
    pred_covered = (pred_to_gt[:, None] < limits).mean(axis=2)
    total = gt_covered + pred_covered
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = np.where(total > 0, 2 * gt_covered * pred_covered / total, 0.0)
    return scores
