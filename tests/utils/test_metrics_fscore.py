"""Mesh F-score: the compiled grid search must give exactly what per-sample scipy KD-trees give."""
import numpy as np
import pytest
from scipy.spatial import cKDTree

from utils.evaluation import HandEvaluator
from utils.metrics.fscore import _CELL_SIZE, F_SCORE_THRESHOLDS_M, _squared_limit, f_scores
from utils.metrics.hand import procrustes_align, root_align


def kdtree_f_scores(pred, gt, thresholds=F_SCORE_THRESHOLDS_M):
    """Reference: the official definition per sample with cKDTree nearest-neighbour distances."""
    out = np.empty((len(pred), len(thresholds)))
    for b, (p, g) in enumerate(zip(pred, gt)):
        gt_to_pred, pred_to_gt = cKDTree(p).query(g)[0], cKDTree(g).query(p)[0]
        for k, t in enumerate(thresholds):
            precision, recall = np.mean(gt_to_pred < t), np.mean(pred_to_gt < t)
            out[b, k] = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return out


def kdtree_distance(a, b):
    """(N, 3), (N, 3) -> (N,) distances computed by cKDTree, one pair at a time."""
    return np.array([cKDTree(y[None]).query(x)[0] for x, y in zip(a, b)])


def test_f_score_constructed_point_sets():
    far = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    pred = far + np.array([[0.004, 0, 0], [0.010, 0, 0], [0.020, 0, 0], [0.0, 0, 0]])
    clustered = far[[0, 0, 0, 1]]  # every pred point on a GT point, two GT points uncovered
    scores = f_scores(np.stack([pred, clustered, far]), np.stack([far, far, far]))
    np.testing.assert_allclose(scores[0], [0.5, 0.75])  # P = R = 2/4 at 5 mm, 3/4 at 15 mm
    np.testing.assert_allclose(scores[1], [2 / 3, 2 / 3])  # P = 1/2, R = 1 -> 2PR/(P+R)
    np.testing.assert_allclose(scores[2], [1.0, 1.0])


def test_f_score_is_strict_and_zero_when_nothing_matches():
    gt = np.zeros((2, 1, 3))
    pred = np.array([[[0.005, 0.0, 0.0]], [[0.5, 0.0, 0.0]]])
    np.testing.assert_array_equal(f_scores(pred, gt), [[0.0, 1.0], [0.0, 0.0]])


@pytest.mark.parametrize("seed", range(6))
def test_random_batches_equal_kdtree(seed):
    """Unrelated sets of different sizes and spreads, and noisy copies (where corresponding points match)."""
    rng = np.random.default_rng(seed)
    for _ in range(8):
        batch, num_pred, num_gt = rng.integers(1, 6), rng.integers(1, 400), rng.integers(1, 400)
        spread = rng.choice([0.002, 0.01, 0.04, 0.3])
        gt = rng.normal(size=(batch, num_gt, 3)) * spread + rng.normal(size=(batch, 1, 3))
        unrelated = rng.normal(size=(batch, num_pred, 3)) * spread + gt.mean(axis=1, keepdims=True)
        noisy = gt + rng.normal(size=gt.shape) * rng.choice([0.001, 0.003, 0.01])
        for pred in (unrelated, noisy):
            np.testing.assert_array_equal(f_scores(pred, gt), kdtree_f_scores(pred, gt))


@pytest.mark.parametrize("thresholds", [(0.015, 0.005), (0.01,), (0.001, 0.004, 0.01, 0.02), (0.005, 0.005)])
def test_other_thresholds_and_orders_equal_kdtree(thresholds):
    rng = np.random.default_rng(7)
    gt = rng.normal(size=(4, 300, 3)) * 0.04
    pred = gt + rng.normal(size=gt.shape) * 0.006
    pred[1] = rng.normal(size=(300, 3)) * 0.04
    np.testing.assert_array_equal(f_scores(pred, gt, thresholds), kdtree_f_scores(pred, gt, thresholds))


def near_threshold_pairs(rng, threshold, centres):
    """Point pairs ``(p, q)`` around ``centres`` (N, 3), ``q`` at ``threshold`` from ``p`` in a random direction
    up to rounding; returns p, q and their distance as the KD-tree computes it."""
    p = centres + rng.uniform(-threshold, threshold, size=centres.shape)
    direction = rng.normal(size=centres.shape)
    q = p + direction / np.linalg.norm(direction, axis=1, keepdims=True) * threshold
    diff = p - q
    assert np.all(diff != 0.0)  # every coordinate contributes to the rounding
    dist = np.sqrt(diff[:, 0] * diff[:, 0] + diff[:, 1] * diff[:, 1] + diff[:, 2] * diff[:, 2])
    np.testing.assert_array_equal(kdtree_distance(p, q), dist)  # the KD-tree computes the same float
    return p, q, dist


@pytest.mark.parametrize("threshold", F_SCORE_THRESHOLDS_M)
def test_distances_exactly_at_and_one_float_around_the_thresholds(threshold):
    rng = np.random.default_rng(8)
    around = [np.nextafter(threshold, 0.0), threshold, np.nextafter(threshold, 1.0)]
    column = F_SCORE_THRESHOLDS_M.index(threshold)
    # one pair per sample, the partner at the same index and, with decoys far away, at the other index
    p, q, dist = near_threshold_pairs(rng, threshold, np.zeros((3000, 3)))
    keep = np.isin(dist, around)
    p, q, dist = p[keep], q[keep], dist[keep]
    assert set(around) == set(dist)
    below = dist < threshold
    np.testing.assert_array_equal(f_scores(p[:, None], q[:, None])[:, column], below)
    decoys = np.broadcast_to([10.0, 0.0, 0.0], p.shape)
    swapped_pred, swapped_gt = np.stack([p, decoys], axis=1), np.stack([-decoys, q], axis=1)
    np.testing.assert_array_equal(f_scores(swapped_pred, swapped_gt)[:, column], 0.5 * below)
    # 1728 pairs 10 cm apart in one sample, in shuffled order (the grid search, not the same-index shortcut),
    # all within a few floats of the threshold
    lattice = np.stack(np.meshgrid(*[np.arange(12) * 0.1] * 3), axis=-1).reshape(-1, 3)
    p, q, dist = near_threshold_pairs(rng, threshold, lattice)
    assert np.all(np.abs(dist - threshold) < 256 * np.spacing(threshold)) and np.any(dist == threshold)
    order = rng.permutation(len(q))
    got = f_scores(p[None], q[order][None])
    np.testing.assert_array_equal(got, kdtree_f_scores(p[None], q[order][None]))
    assert got[0, column] == np.mean(dist < threshold) and 0.1 < np.mean(dist < threshold) < 0.9


@pytest.mark.parametrize("axis", range(3))
def test_partners_just_across_a_cell_boundary_are_found(axis):
    """Pairs along one axis, just under 15 mm apart, the GT point just past a grid cell boundary (the grid
    starts at the anchor pair on the origin; cells are ``_CELL_SIZE`` times the largest threshold)."""
    threshold = max(F_SCORE_THRESHOLDS_M)
    cell = _CELL_SIZE[axis] * threshold
    boundaries = np.ceil(np.arange(1, 41) * 4 * threshold / cell) * cell  # pairs >= 3 thresholds apart
    gt = np.zeros((41, 3))
    gt[1:, axis] = boundaries + 1e-9
    pred = gt.copy()
    pred[1:, axis] -= threshold * (1 - 1e-9)
    gt = gt[::-1]  # no pair shares an index: only the grid search can find the partners
    np.testing.assert_array_equal(f_scores(pred[None], gt[None]), [[1 / 41, 1.0]])


def test_far_apart_and_huge_coordinates_equal_kdtree():
    rng = np.random.default_rng(9)
    gt = rng.normal(size=(5, 200, 3)) * 0.05
    pred = gt + rng.normal(size=gt.shape) * 0.005
    pred[0, :100] += 1000.0  # half a prediction a kilometre away: coarse cells
    pred[1] += rng.normal(size=(200, 3)) * 1e4  # spread over tens of kilometres
    pred[2, 0] = 1e9  # one point far beyond the grid's range: one cell, brute force
    gt[3] *= 1e150  # distances whose squares overflow
    pred[4, 0], gt[4, 0] = 1.7e308, -1.7e308  # the bounding box overflows
    np.testing.assert_array_equal(f_scores(pred, gt), kdtree_f_scores(pred, gt))


def test_single_point_and_empty_batch():
    one = np.zeros((1, 1, 3))
    np.testing.assert_array_equal(f_scores(one, one + [0.0, 0.0, 0.0049]), [[1.0, 1.0]])
    np.testing.assert_array_equal(f_scores(one, one + [0.0, 0.0, 0.01]), [[0.0, 1.0]])
    assert f_scores(np.zeros((0, 5, 3)), np.zeros((0, 7, 3))).shape == (0, 2)


def test_bad_input_raises_naming_the_array():
    good = np.zeros((3, 4, 3))
    bad = good.copy()
    bad[1, 2, 0] = np.nan
    with pytest.raises(ValueError, match=r"pred: non-finite coordinates \(NaN or inf\) in sample\(s\) \[1\]"):
        f_scores(bad, good)
    bad[1, 2, 0] = np.inf
    with pytest.raises(ValueError, match=r"gt: non-finite .* \[1\]"):
        f_scores(good, bad)
    with pytest.raises(ValueError, match="gt: no points"):
        f_scores(good, np.zeros((3, 0, 3)))
    with pytest.raises(ValueError, match="thresholds"):
        f_scores(good, good, (0.005, 0.0))
    with pytest.raises(ValueError, match=r"gt: expected shape \(3, \*, 3\)"):
        f_scores(good, np.zeros((2, 4, 3)))


def test_hand_evaluator_f_scores_equal_kdtree_on_hand_meshes():
    """Smooth hand-like surfaces (778 points on ellipsoids), pred = GT moved, rescaled and jittered."""
    rng = np.random.default_rng(10)
    batch = 6
    unit = rng.normal(size=(batch, 778, 3))
    unit /= np.linalg.norm(unit, axis=-1, keepdims=True)
    gt_v = unit * [0.09, 0.04, 0.015] + rng.normal(size=(batch, 1, 3)) * 0.1 + [0.0, 0.0, 0.6]
    gt_j = gt_v[:, :21].copy()
    pred_v = 1.03 * gt_v + rng.normal(size=gt_v.shape) * 0.003 + 0.01
    pred_j = pred_v[:, :21].copy()
    evaluator = HandEvaluator()
    evaluator.add(pred_j, pred_v, gt_j, gt_v, gt_j[:, 0])
    scores = evaluator.results().scores
    _, moved = root_align(pred_j, pred_v, gt_j[:, 0])  # the evaluator's root alignment (GT is on its root)
    raw = kdtree_f_scores(moved, gt_v).mean(axis=0) * 100
    aligned = kdtree_f_scores(procrustes_align(moved, gt_v), gt_v).mean(axis=0) * 100
    assert (scores["f5"], scores["f15"]) == tuple(raw)
    assert (scores["f5_aligned"], scores["f15_aligned"]) == tuple(aligned)
    assert 0 < scores["f5"] < scores["f5_aligned"] < 100


def test_squared_limits_decide_exactly_as_the_square_root():
    rng = np.random.default_rng(11)
    for threshold in [*F_SCORE_THRESHOLDS_M, 1e-300, 1e-10, 1.0, 3e153, *rng.uniform(1e-4, 0.1, 50)]:
        limit = _squared_limit(threshold)
        near = [limit]
        for _ in range(4):
            near = [np.nextafter(near[0], 0.0), *near, np.nextafter(near[-1], np.inf)]
        near = np.array(near)
        np.testing.assert_array_equal(near < limit, np.sqrt(near) < threshold)
        assert np.sqrt(np.nextafter(limit, 0.0)) < threshold <= np.sqrt(limit)
