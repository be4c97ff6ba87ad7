"""Hand metrics: root alignment, MPJPE/MPVPE, similarity Procrustes, validation score, PCK/AUC (F-score: test_metrics_fscore)."""
import numpy as np
import pytest
import torch
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.transform import Rotation

from utils.metrics.hand import (
    mean_point_error_mm,
    procrustes_align,
    root_align,
    similarity_procrustes,
    validation_scores,
)
from utils.metrics.pck import PCK_20_50_THRESHOLDS_M, PCK_THRESHOLDS_M, auc, pck_curve, threshold_bins


def official_align_w_scale(gt, pred):
    """Per-sample reference: the official align_w_scale written with scipy (no reflection fix)."""
    t1, t2 = gt.mean(0), pred.mean(0)
    gt_t, pred_t = gt - t1, pred - t2
    s1, s2 = np.linalg.norm(gt_t) + 1e-8, np.linalg.norm(pred_t) + 1e-8
    gt_t, pred_t = gt_t / s1, pred_t / s2
    rot, s = orthogonal_procrustes(gt_t, pred_t)
    return (pred_t @ rot.T) * s * s1 + t1


def random_hands(rng, batch, points):
    return rng.normal(size=(batch, points, 3)) * 0.05


def test_root_align_moves_pred_wrist_onto_gt_root_and_keeps_inputs():
    joints = np.arange(2 * 21 * 3, dtype=np.float64).reshape(2, 21, 3) / 100
    verts = np.ones((2, 778, 3))
    gt_root = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    joints_before, verts_before = joints.copy(), verts.copy()
    new_joints, new_verts = root_align(joints, verts, gt_root)
    np.testing.assert_array_equal(joints, joints_before)
    np.testing.assert_array_equal(verts, verts_before)
    np.testing.assert_allclose(new_joints[:, 0], gt_root)
    offset = gt_root - joints[:, 0]
    np.testing.assert_allclose(new_joints, joints + offset[:, None])
    np.testing.assert_allclose(new_verts, verts + offset[:, None])


def test_root_align_accepts_torch_and_rejects_bad_root_shape():
    joints = torch.zeros(3, 21, 3, requires_grad=True)
    new_joints, verts = root_align(joints, None, torch.ones(3, 3))
    assert verts is None and isinstance(new_joints, np.ndarray)
    np.testing.assert_array_equal(new_joints, np.ones((3, 21, 3)))
    with pytest.raises(ValueError, match=r"gt_root: expected shape \(3, 3\)"):
        root_align(np.zeros((3, 21, 3)), None, np.zeros((2, 3)))


def test_mean_point_error_mm_hand_computed():
    gt = np.zeros((2, 4, 3))
    pred = gt.copy()
    pred[0, :, 0] = 0.003  # 3 mm on every point
    pred[1, 0] = [0.0, 0.004, 0.003]  # 5 mm on one of 4 points
    np.testing.assert_allclose(mean_point_error_mm(pred, gt, per_sample=True), [3.0, 1.25])
    assert mean_point_error_mm(pred, gt) == pytest.approx(2.125)


def test_procrustes_matches_scipy_per_sample():
    rng = np.random.default_rng(0)
    gt = random_hands(rng, 20, 21)
    pred = gt + rng.normal(size=gt.shape) * 0.02
    pred[3] = gt[3] * np.array([-1.0, 1.0, 1.0])  # a mirrored sample: reflection needed
    expected = np.stack([official_align_w_scale(g, p) for g, p in zip(gt, pred)])
    np.testing.assert_allclose(procrustes_align(pred, gt), expected, atol=1e-12)


def test_procrustes_recovers_known_similarity_transform():
    rng = np.random.default_rng(1)
    gt = random_hands(rng, 5, 778)
    rot = Rotation.random(5, random_state=2).as_matrix()
    scale = np.array([0.5, 1.0, 1.3, 2.0, 3.0])
    shift = rng.normal(size=(5, 3))
    # pred = inverse similarity of gt, so the pred -> gt transform is (1/scale, rot, ...)
    pred = np.einsum("bij,bpj->bpi", rot.transpose(0, 2, 1), (gt - shift[:, None])) / scale[:, None, None]
    got_scale, got_rot, got_shift = similarity_procrustes(pred, gt)
    np.testing.assert_allclose(got_scale, scale, rtol=1e-7)
    np.testing.assert_allclose(got_rot, rot, atol=1e-7)
    np.testing.assert_allclose(got_shift, shift, atol=1e-7)
    assert mean_point_error_mm(procrustes_align(pred, gt), gt) < 1e-4  # mm; the official 1e-8 norm epsilon


def test_reflection_is_kept_by_default_and_removed_on_request():
    rng = np.random.default_rng(3)
    gt = random_hands(rng, 1, 21)
    mirrored = gt * np.array([1.0, 1.0, -1.0])
    assert mean_point_error_mm(procrustes_align(mirrored, gt), gt) < 1e-4
    _, rot, _ = similarity_procrustes(mirrored, gt)
    assert np.linalg.det(rot[0]) == pytest.approx(-1.0)
    _, proper, _ = similarity_procrustes(mirrored, gt, allow_reflection=False)
    assert np.linalg.det(proper[0]) == pytest.approx(1.0)
    assert mean_point_error_mm(procrustes_align(mirrored, gt, allow_reflection=False), gt) > 1.0


def test_known_scale_gives_known_unaligned_error_and_zero_pa_error():
    rng = np.random.default_rng(4)
    directions = rng.normal(size=(3, 21, 3))
    directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
    root = rng.normal(size=(3, 1, 3))
    gt = root + 0.01 * directions  # every joint 10 mm from the root point
    gt[:, 0] = root[:, 0]  # the wrist is the root
    pred = root + 2.0 * (gt - root) + np.array([0.1, -0.2, 0.3])  # scaled about the wrist, then shifted
    scores = validation_scores(pred, pred[:, :4], gt, gt[:, :4])
    assert scores["mpjpe"] == pytest.approx(10.0 * 20 / 21)  # wrist 0 mm, the 20 others 10 mm
    assert scores["mpvpe"] == pytest.approx(10.0 * 3 / 4)
    assert scores["pa_mpjpe"] == pytest.approx(0.0, abs=1e-4)  # mm; the official 1e-8 norm epsilon
    assert scores["pa_mpvpe"] == pytest.approx(0.0, abs=1e-4)
    assert scores["score"] == pytest.approx(scores["mpjpe"] + scores["mpvpe"])


def test_validation_score_centres_every_joint_and_w_gr_variant():
    rng = np.random.default_rng(5)
    gt_j, gt_v = random_hands(rng, 4, 21), random_hands(rng, 4, 778)
    pred_j = gt_j + rng.normal(size=gt_j.shape) * 0.01
    pred_v = gt_v + rng.normal(size=gt_v.shape) * 0.01
    base = validation_scores(pred_j, pred_v, gt_j, gt_v)
    # translating a whole hand changes nothing once all joints are wrist-relative (official CPU bug: it did)
    moved = validation_scores(pred_j + 0.3, pred_v + 0.3, gt_j - 0.2, gt_v - 0.2)
    for key in base:
        assert moved[key] == pytest.approx(base[key], rel=1e-9)
    expected_pa = np.mean([np.linalg.norm(official_align_w_scale(g, p) - g, axis=-1).mean()
                           for g, p in zip(gt_j, pred_j - pred_j[:, :1] + gt_j[:, :1])]) * 1000
    assert base["pa_mpjpe"] == pytest.approx(expected_pa, rel=1e-9)
    no_global = validation_scores(pred_j, pred_v, gt_j, gt_v, with_global=False)
    assert no_global["score"] == pytest.approx(base["pa_mpjpe"] + base["pa_mpvpe"])


def test_pck_and_auc_on_grid_errors_hand_computed():
    grid = PCK_THRESHOLDS_M  # t_i = i * h, h = 0.05 / 99
    errors = np.array([[grid[0]], [grid[10]], [grid[50]], [0.06]])  # (N=4, K=1)
    pck = pck_curve(errors)
    assert pck[0] == 0.25 and pck[9] == 0.25 and pck[10] == 0.5  # error == threshold counts (<=)
    assert pck[49] == 0.5 and pck[50] == 0.75 and pck[-1] == 0.75
    # trapezoid of the step [i >= k] over 99 intervals = (99 - k + 0.5) h for k >= 1, 99 h for k = 0
    expected = (1.0 + 89.5 / 99 + 49.5 / 99 + 0.0) / 4
    assert auc(pck) == pytest.approx(expected, rel=1e-12)


def test_pck_averages_over_keypoints_and_20_50_range():
    grid = PCK_20_50_THRESHOLDS_M
    errors = np.array([[0.001, grid[33]], [0.1, grid[33]]])  # keypoint 0: one below 20 mm, one above 50 mm
    pck = pck_curve(errors, grid)
    # keypoint 0 has PCK 0.5 everywhere; keypoint 1 the step at index 33
    expected_auc = (0.5 + (99 - 33 + 0.5) / 99) / 2
    assert auc(pck, grid) == pytest.approx(expected_auc, rel=1e-12)
    bins = threshold_bins(errors, grid)
    assert bins.dtype == np.uint8 and bins.tolist() == [[0, 33], [100, 33]]


@pytest.mark.parametrize("grid", [np.union1d(PCK_THRESHOLDS_M, PCK_20_50_THRESHOLDS_M), PCK_THRESHOLDS_M,
                                  np.array([0.0, 1.0]), np.array([1.0, 1.0 + 1e-12, 5.0]),
                                  np.cumsum(np.random.default_rng(12).uniform(0.0, 1.0, 300))])
def test_threshold_bins_equal_searchsorted(grid):
    """The evaluator's grid (two merged ranges), uneven and near-duplicate thresholds, > 255 thresholds."""
    rng = np.random.default_rng(13)
    values = np.concatenate([rng.uniform(-0.1, 1.2, 3000) * grid[-1], grid])
    values = np.concatenate([values, np.nextafter(values, np.inf), np.nextafter(values, -np.inf),
                             [np.nan, np.inf, -np.inf]])
    errors = values[:len(values) // 3 * 3].reshape(-1, 3)
    bins = threshold_bins(errors, grid)
    assert bins.dtype == (np.uint8 if len(grid) < 255 else np.uint16)
    np.testing.assert_array_equal(bins, np.searchsorted(grid, errors, side="left"))


def test_auc_rejects_mismatched_curve():
    with pytest.raises(ValueError, match="3 thresholds"):
        auc(np.ones(4), np.array([0.0, 1.0, 2.0]))
