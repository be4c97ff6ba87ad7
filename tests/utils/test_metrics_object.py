"""Object pose from voting maps, REP / ADD / ADD-S, success rates, YCB table and box keypoints, grasp metrics."""
import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from utils.metrics.classification import grasp_classification_metrics
from utils.metrics.object_pose import (
    add_error,
    add_s_error,
    decode_voting_keypoints,
    object_pose_from_voting,
    object_success_rates,
    reprojection_error_px,
)
from utils.ycb import BBOX21_NAMES, DEXYCB_SYMMETRIC_IDS, YCB_CLASSES, bbox21_from_points, box_diameter, ycb_class_name

K = np.array([[600.0, 0.0, 320.0], [0.0, 600.0, 240.0], [0.0, 0.0, 1.0]])


def test_ycb_table_and_symmetric_set():
    assert len(YCB_CLASSES) == 21 and YCB_CLASSES[1] == "002_master_chef_can" and YCB_CLASSES[21] == "061_foam_brick"
    assert [YCB_CLASSES[i] for i in sorted(DEXYCB_SYMMETRIC_IDS)] == [
        "024_bowl", "036_wood_block", "052_extra_large_clamp", "061_foam_brick"]
    with pytest.raises(KeyError, match="unknown DexYCB object class id 22"):
        ycb_class_name(22)


def test_bbox21_official_order_and_diameter():
    points = np.array([[0.0, 0.0, 0.0], [2.0, 4.0, 6.0], [1.0, 1.0, 1.0]])
    box = bbox21_from_points(points)
    assert box.shape == (21, 3) and len(BBOX21_NAMES) == 21
    expected = {  # x: l/r = 0/2, y: b/f = 0/4, z: bottom/top = 0/6
        "blb": (0, 0, 0), "brb": (2, 0, 0), "blf": (0, 4, 0), "brf": (2, 4, 0),
        "tlb": (0, 0, 6), "trb": (2, 0, 6), "tlf": (0, 4, 6), "trf": (2, 4, 6),
        "ble": (0, 2, 0), "bre": (2, 2, 0), "bfe": (1, 4, 0), "bbe": (1, 0, 0),
        "tle": (0, 2, 6), "tre": (2, 2, 6), "tfe": (1, 4, 6), "tbe": (1, 0, 6),
        "lfe": (0, 4, 3), "lbe": (0, 0, 3), "rfe": (2, 4, 3), "rbe": (2, 0, 3), "centre": (1, 2, 3),
    }
    for name, row in zip(BBOX21_NAMES, box):
        np.testing.assert_array_equal(row, expected[name], err_msg=name)
    assert box_diameter(points) == pytest.approx(math.sqrt(4 + 16 + 36))
    with pytest.raises(ValueError, match=r"shape \(P, 3\)"):
        bbox21_from_points(np.zeros((4, 2)))


def naive_decode(px, py, conf, box, top_k=10, threshold=0.5):
    """Reference: the official loop (argmax over the map, keep if conf > threshold, zero it; top_k rounds)."""
    conf = conf.copy()
    points, ids = [], []
    for _ in range(top_k):
        for k in range(conf.shape[-1]):
            row, col = np.unravel_index(np.argmax(conf[:, :, k]), conf.shape[:2])
            if conf[row, col, k] > threshold:
                points.append((px[row, col, k] * (box[2] - box[0]) + box[0],
                               py[row, col, k] * (box[3] - box[1]) + box[1]))
                ids.append(k)
            conf[row, col, k] = 0
    return np.array(points), np.array(ids)


def test_decode_matches_iterated_argmax_including_ties():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0, 1, size=(2, 8, 8, 21)).round(1)  # many ties
    px, py = rng.uniform(size=conf.shape), rng.uniform(size=conf.shape)
    boxes = np.array([[10.0, 20.0, 50.0, 90.0], [0.0, 0.0, 128.0, 128.0]])
    points, ids, valid = decode_voting_keypoints(px, py, conf, boxes)
    for b in range(2):
        ref_points, ref_ids = naive_decode(px[b], py[b], conf[b], boxes[b])
        np.testing.assert_allclose(points[b][valid[b]], ref_points)
        np.testing.assert_array_equal(ids[valid[b]], ref_ids)


def make_voting_maps(uv_crop, box, strong=range(21)):
    """(1, 32, 32, 21) maps: one confident cell per keypoint in ``strong`` voting for its crop position."""
    px, py = np.zeros((1, 32, 32, 21)), np.zeros((1, 32, 32, 21))
    conf = np.full((1, 32, 32, 21), 0.1)
    for k in strong:
        row, col = 3 + k % 20, 5 + k % 17
        conf[0, row, col, k] = 0.95
        px[0, row, col, k] = (uv_crop[k, 0] - box[0]) / (box[2] - box[0])
        py[0, row, col, k] = (uv_crop[k, 1] - box[1]) / (box[3] - box[1])
    return px, py, conf


def project(points_cam):
    uvw = points_cam @ K.T
    return uvw[:, :2] / uvw[:, 2:]


@pytest.mark.parametrize("do_flip", [False, True])
def test_pnp_recovers_pose_from_synthetic_voting_maps(do_flip):
    rng = np.random.default_rng(1)
    keypoints = bbox21_from_points(rng.uniform(-0.05, 0.05, size=(200, 3)))
    rot = Rotation.from_rotvec([0.3, -0.2, 0.5]).as_matrix()
    trans = np.array([0.05, -0.02, 0.6])
    uv = project(keypoints @ rot.T + trans)  # original (un-mirrored) image px
    shown = uv.copy()
    if do_flip:
        shown[:, 0] = 640 - shown[:, 0] - 1  # left hands are mirrored before cropping
    affine = np.array([[0.5, 0.0, -100.0], [0.0, 0.5, -60.0], [0.0, 0.0, 1.0]])
    uv_crop = shown @ affine[:2, :2].T + affine[:2, 2]
    box = np.concatenate([uv_crop.min(0) - 2, uv_crop.max(0) + 2])
    px, py, conf = make_voting_maps(uv_crop, box)
    rot_est, t_est = object_pose_from_voting(px, py, conf, box[None], keypoints[None], K[None],
                                             affinetrans=affine[None], do_flip=np.array([do_flip]))
    np.testing.assert_allclose(rot_est[0], rot, atol=1e-6)
    np.testing.assert_allclose(t_est[0], trans, atol=1e-6)


def test_pnp_falls_back_with_fewer_than_six_points():
    keypoints = bbox21_from_points(np.array([[-0.05, -0.04, -0.03], [0.05, 0.04, 0.03]]))
    uv = project(keypoints + np.array([0.0, 0.0, 0.5]))
    box = np.concatenate([uv.min(0), uv.max(0)])
    px, py, conf = make_voting_maps(uv, box, strong=range(5))
    rot_est, t_est = object_pose_from_voting(px, py, conf, box[None], keypoints[None], K[None])
    np.testing.assert_array_equal(rot_est[0], np.eye(3))
    np.testing.assert_array_equal(t_est[0], [0.0, 0.0, 1.0])


def test_add_vs_add_s_on_symmetric_object():
    a, b, c = 0.03, 0.04, 0.02
    corners = np.array([[x, y, z] for x in (-a, a) for y in (-b, b) for z in (-c, c)])
    gt = (np.eye(3)[None], np.array([[0.0, 0.0, 0.5]]))
    flipped = (Rotation.from_rotvec([0, 0, np.pi]).as_matrix()[None], gt[1])  # 180 deg about object z
    assert add_error(corners, flipped, gt)[0] == pytest.approx(2 * math.hypot(a, b))
    assert add_s_error(corners, flipped, gt)[0] == pytest.approx(0.0, abs=1e-12)
    shifted = (gt[0], gt[1] + np.array([0.01, 0.0, 0.0]))
    assert add_error(corners, shifted, gt)[0] == pytest.approx(0.01)


def test_reprojection_error_of_a_lateral_shift():
    points = np.array([[0.0, 0.0, 0.0], [0.01, 0.0, 0.0]])
    gt = (np.eye(3)[None], np.array([[0.0, 0.0, 0.6]]))
    shifted = (gt[0], np.array([[0.001, 0.0, 0.6]]))  # 1 mm at 0.6 m depth, f = 600 px -> 1 px
    assert reprojection_error_px(points, shifted, gt, K[None])[0] == pytest.approx(1.0)


def test_success_rates_per_class_and_sample_weighted():
    result = object_success_rates(rep_px=[1.0, 6.0, 3.0], add_m=[0.001, 0.05, 0.02], class_ids=[1, 1, 13],
                                  diameters={1: 0.2, 13: 0.1})
    assert result["REP"]["002_master_chef_can"] == 0.5 and result["REP"]["024_bowl"] == 1.0
    assert result["REP"]["average"] == pytest.approx(2 / 3)
    assert result["ADD"]["002_master_chef_can"] == 0.5 and result["ADD"]["024_bowl"] == 0.0
    assert result["ADD"]["average"] == pytest.approx(1 / 3)
    assert math.isnan(result["ADD"]["025_mug"]) and result["num_samples"] == 3
    assert result["median_rep_px"] == pytest.approx(3.0) and result["median_add_mm"] == pytest.approx(20.0)
    failed_pnp = object_success_rates([1.0, 2.0, 4e20], [0.001, 0.003, 1e20], [1, 1, 1], {1: 0.2})
    assert failed_pnp["median_rep_px"] == pytest.approx(2.0) and failed_pnp["median_add_mm"] == pytest.approx(3.0)
    loose = object_success_rates([19.0], [0.04], [13], {13: 0.1}, rep_threshold=20, add_threshold=0.5)
    assert loose["REP"]["average"] == 1.0 and loose["ADD"]["average"] == 1.0
    with pytest.raises(KeyError, match=r"no entry for class ids \[2\]"):
        object_success_rates([1.0], [0.0], [2], {1: 0.1})


def test_grasp_metrics_from_logits_and_labels():
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [1.0, 5.0], [4.0, 0.0]])  # predicted 0, 1, 1, 0
    gt = np.array([False, True, False, True])
    expected = {"grasp_accuracy": 0.5, "grasp_precision": 0.5, "grasp_recall": 0.5, "grasp_num_samples": 4}
    assert grasp_classification_metrics(logits, gt) == expected
    assert grasp_classification_metrics(np.array([0, 1, 1, 0]), gt.astype(int)) == expected
    none_predicted = grasp_classification_metrics(np.zeros(2, dtype=bool), [1, 0])
    assert none_predicted["grasp_accuracy"] == 0.5 and math.isnan(none_predicted["grasp_precision"])
    assert none_predicted["grasp_recall"] == 0.0
    with pytest.raises(ValueError, match=r"logits \(B, 2\) or labels \(B,\)"):
        grasp_classification_metrics(np.zeros((2, 3)), [0, 1])
