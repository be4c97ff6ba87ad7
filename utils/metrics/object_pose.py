"""Object pose from the dense keypoint voting maps, and the object pose errors REP / ADD / ADD-S.

HFL-Net protocol as in the official ``common/utils/metric.py`` (docs/official-data.md §4.4, docs/official-model.md
§1.8). Poses are (R (3, 3), t (3,)) mapping object-frame points (metres) to the camera frame: ``X = R p + t``.
"""
import cv2
import numpy as np
from scipy.spatial import cKDTree

from utils.hand_conventions import MM_PER_M
from utils.metrics.arrays import as_float_array, as_points, to_numpy
from utils.ycb import YCB_CLASSES

__all__ = [
    "FALLBACK_TRANSLATION",
    "decode_voting_keypoints",
    "to_original_image",
    "solve_object_pose",
    "object_pose_from_voting",
    "transform_points",
    "reprojection_error_px",
    "add_error",
    "add_s_error",
    "object_pose_errors",
    "object_success_rates",
]

FALLBACK_TRANSLATION = (0.0, 0.0, 1.0)  # pose used (with R = I) when PnP has too few points or fails


def decode_voting_keypoints(pred_x, pred_y, pred_conf, bbox_obj, top_k=10, conf_threshold=0.5):
    """2D keypoint candidates from the voting maps (``preds_obj_0/1/2`` of the object head).

    For each keypoint, the ``top_k`` cells of highest confidence are taken (equivalent to the official
    "argmax, then zero it" repeated ``top_k`` times; ties go to the first cell in row-major order) and kept
    when ``conf > conf_threshold``. Coordinates normalised to ``bbox_obj`` are mapped to crop pixels
    (``x * w + x1``, ``y * h + y1``). Candidates are ordered like the official loop: round 0 of keypoints
    0..20, then round 1, ...

    Args:
        pred_x, pred_y, pred_conf: (B, H, W, K) maps laid out (batch, row, col, keypoint).
        bbox_obj: (B, 4) object box ``x1, y1, x2, y2`` in crop px.

    Returns:
        points_2d (B, top_k*K, 2) crop px, keypoint_ids (top_k*K,) int, valid (B, top_k*K) bool.
    """
    conf = as_float_array(pred_conf, "pred_conf", (None, None, None, None))
    batch, height, width, num_kp = conf.shape
    maps = [as_float_array(m, name, conf.shape).reshape(batch, height * width, num_kp)
            for m, name in ((pred_x, "pred_x"), (pred_y, "pred_y"))]
    box = as_float_array(bbox_obj, "bbox_obj", (batch, 4))
    conf = conf.reshape(batch, height * width, num_kp)
    cells = np.argsort(-conf, axis=1, kind="stable")[:, :top_k]  # (B, top_k, K)
    x, y, c = (np.take_along_axis(m, cells, axis=1) for m in (*maps, conf))  # (B, top_k, K) each
    size = box[:, 2:] - box[:, :2]  # (B, 2) w, h
    points = np.stack([x * size[:, 0, None, None] + box[:, 0, None, None],
                       y * size[:, 1, None, None] + box[:, 1, None, None]], axis=-1)  # (B, top_k, K, 2)
    keypoint_ids = np.tile(np.arange(num_kp), cells.shape[1])
    return points.reshape(batch, -1, 2), keypoint_ids, (c > conf_threshold).reshape(batch, -1)


def to_original_image(points_2d, affinetrans, do_flip=None, image_width=640):
    """Map crop pixels back to the original image (DexYCB): ``inv(affinetrans)``, then un-mirror left hands.

    Args:
        points_2d: (B, N, 2) crop px. affinetrans: (B, 3, 3) crop affine (original -> crop).
        do_flip: (B,) bool or None; where True, ``u = image_width - u - 1``.

    Returns:
        (B, N, 2) original-image px (new array).
    """
    points = as_float_array(points_2d, "points_2d", (None, None, 2))
    inverse = np.linalg.inv(as_float_array(affinetrans, "affinetrans", (points.shape[0], 3, 3)))
    mapped = np.einsum("bij,bnj->bni", inverse[:, :2, :2], points) + inverse[:, None, :2, 2]
    if do_flip is not None:
        flip = np.asarray(to_numpy(do_flip), dtype=bool).reshape(-1)
        mapped[flip, :, 0] = image_width - mapped[flip, :, 0] - 1
    return mapped


def solve_object_pose(points_2d, keypoint_ids, valid, keypoints_3d, cam_intr, min_points=6):
    """Per-sample ``cv2.solvePnPRansac(..., SOLVEPNP_EPNP)`` on the valid 2D-3D keypoint pairs.

    Samples with fewer than ``min_points`` valid pairs (or where RANSAC finds no model) get the official
    fallback pose R = I, t = (0, 0, 1).

    Args:
        points_2d: (B, N, 2) px in the image that ``cam_intr`` describes. keypoint_ids: (N,) int.
        valid: (B, N) bool. keypoints_3d: (B, K, 3) object-frame box keypoints, metres.
        cam_intr: (B, 3, 3).

    Returns:
        rotation (B, 3, 3), translation (B, 3) metres.
    """
    points_2d = as_float_array(points_2d, "points_2d", (None, None, 2))
    batch = points_2d.shape[0]
    keypoints_3d = as_points(keypoints_3d, "keypoints_3d", batch=batch)
    cam_intr = as_float_array(cam_intr, "cam_intr", (batch, 3, 3))
    valid = np.asarray(to_numpy(valid), dtype=bool)
    rotation = np.tile(np.eye(3), (batch, 1, 1))
    translation = np.tile(np.asarray(FALLBACK_TRANSLATION), (batch, 1))
    for i in range(batch):
        if valid[i].sum() < min_points:
            continue
        found, rvec, tvec, _ = cv2.solvePnPRansac(
            np.ascontiguousarray(keypoints_3d[i, keypoint_ids[valid[i]]]),
            np.ascontiguousarray(points_2d[i, valid[i]]), cam_intr[i], None, flags=cv2.SOLVEPNP_EPNP)
        if found:
            rotation[i] = cv2.Rodrigues(rvec)[0]
            translation[i] = tvec.reshape(3)
    return rotation, translation


def object_pose_from_voting(pred_x, pred_y, pred_conf, bbox_obj, keypoints_3d, cam_intr, affinetrans=None,
                            do_flip=None, image_width=640, top_k=10, conf_threshold=0.5, min_points=6):
    """Object poses from the voting maps: decode, optionally map to the original image, PnP.

    DexYCB: pass ``affinetrans`` and ``do_flip`` with the original ``cam_intr``; HO3D: leave them None and
    pass the cropped intrinsics (points stay in crop px). Shapes as in ``decode_voting_keypoints`` and
    ``solve_object_pose``. Returns rotation (B, 3, 3), translation (B, 3) metres.
    """
    points_2d, keypoint_ids, valid = decode_voting_keypoints(pred_x, pred_y, pred_conf, bbox_obj, top_k,
                                                             conf_threshold)
    if affinetrans is not None:
        points_2d = to_original_image(points_2d, affinetrans, do_flip, image_width)
    return solve_object_pose(points_2d, keypoint_ids, valid, keypoints_3d, cam_intr, min_points)


def transform_points(points, rotation, translation):
    """Object points (P, 3) under poses (B, 3, 3), (B, 3) -> (B, P, 3) camera frame."""
    points = as_float_array(points, "object points", (None, 3))
    rotation = as_float_array(rotation, "rotation", (None, 3, 3))
    translation = as_float_array(translation, "translation", (rotation.shape[0], 3))
    return np.einsum("bij,pj->bpi", rotation, points) + translation[:, None]


def reprojection_error_px(points, pose_pred, pose_gt, cam_intr):
    """REP: mean 2D distance (px) between the projections of ``points`` (P, 3) under the two poses.

    ``pose_pred`` / ``pose_gt`` are (rotation (B, 3, 3), translation (B, 3)); ``cam_intr`` (B, 3, 3). -> (B,)
    """
    cam_intr = as_float_array(cam_intr, "cam_intr", (None, 3, 3))
    projected = []
    for pose in (pose_pred, pose_gt):
        homogeneous = np.einsum("bij,bpj->bpi", cam_intr, transform_points(points, *pose))
        projected.append(homogeneous[..., :2] / homogeneous[..., 2:])
    return np.linalg.norm(projected[0] - projected[1], axis=-1).mean(axis=1)


def add_error(points, pose_pred, pose_gt):
    """ADD: mean distance (metres) between ``points`` (P, 3) under the predicted and GT poses -> (B,)."""
    return np.linalg.norm(transform_points(points, *pose_pred) - transform_points(points, *pose_gt),
                          axis=-1).mean(axis=1)


def add_s_error(points, pose_pred, pose_gt):
    """ADD-S: mean over GT-posed points of the distance to the closest predicted-posed point (m) -> (B,)."""
    pred, gt = transform_points(points, *pose_pred), transform_points(points, *pose_gt)
    return np.array([cKDTree(p).query(g)[0].mean() for p, g in zip(pred, gt)])


def object_pose_errors(points, pose_pred, pose_gt, cam_intr, symmetric):
    """REP (px) and ADD or ADD-S (metres, ADD-S when ``symmetric``) of samples of one object class -> (B,), (B,)."""
    distance = add_s_error if symmetric else add_error
    return reprojection_error_px(points, pose_pred, pose_gt, cam_intr), distance(points, pose_pred, pose_gt)


def object_success_rates(rep_px, add_m, class_ids, diameters, rep_threshold=5.0, add_threshold=0.1,
                         class_names=YCB_CLASSES):
    """Success rates of the official object metric, per class and sample-weighted.

    A sample succeeds on REP when ``rep <= rep_threshold`` px and on ADD when
    ``add <= add_threshold * diameter[class]``.

    Args:
        rep_px, add_m: (N,) per-sample REP (px) and ADD/ADD-S (metres).
        class_ids: (N,) class keys (DexYCB ints; HO3D object names).
        diameters: {class_id: diameter in metres} for every class present.
        class_names: {class_id: name}; every class gets an entry (NaN when it has no sample).

    Returns:
        ``{"REP": {name: rate, ..., "average": rate}, "ADD": {...}, "median_rep_px",
        "median_add_mm", "num_samples"}``; rates in [0, 1], "average" = successes / samples over all classes. The
        typical errors are medians: a failed PnP can return a translation of 1e20 m, which would swamp a mean.
    """
    rep_px, add_m = np.asarray(rep_px, dtype=np.float64), np.asarray(add_m, dtype=np.float64)
    class_ids = np.asarray(class_ids).reshape(-1)
    missing = sorted(set(class_ids.tolist()) - set(diameters))
    if missing:
        raise KeyError(f"object diameters: no entry for class ids {missing}")
    limit = np.array([add_threshold * diameters[c] for c in class_ids.tolist()])
    success = {"REP": rep_px <= rep_threshold, "ADD": add_m <= limit}
    result = {}
    for metric, ok in success.items():
        per_class = {name: float(ok[class_ids == cid].mean()) if np.any(class_ids == cid) else float("nan")
                     for cid, name in class_names.items()}
        per_class["average"] = float(ok.mean()) if len(ok) else float("nan")
        result[metric] = per_class
    result["median_rep_px"] = float(np.median(rep_px)) if len(rep_px) else float("nan")
    result["median_add_mm"] = float(np.median(add_m) * MM_PER_M) if len(add_m) else float("nan")
    result["num_samples"] = int(len(class_ids))
    return result
