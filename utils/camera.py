"""Placing a root-relative hand in a pinhole camera: default intrinsics and the root-translation solves.

Frames and units: 3D points are metres in the OpenCV camera frame (x right, y down, z forward); 2D points are
pixels ``(u, v)``; intrinsics ``K`` are (3, 3) pixel matrices ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]``.
"""
from __future__ import annotations

import numpy as np

from utils.render import look_at_intrinsics

# HaMeR's demo rule for photos of unknown intrinsics: its 5000 px focal at a 256 px input, scaled to the image.
HAMER_FOCAL_PX = 5000.0
HAMER_INPUT_PX = 256.0


def default_focal(width: int, height: int) -> float:
    """Focal length (px) of an image without known intrinsics: ``5000 / 256 * max(width, height)`` (HaMeR)."""
    return HAMER_FOCAL_PX / HAMER_INPUT_PX * float(max(width, height))


def pinhole_intrinsics(width: int, height: int, focal: float | None = None) -> np.ndarray:
    """(3, 3) intrinsics with ``fx = fy = focal`` (default :func:`default_focal`) and the centre at ``(W/2, H/2)``."""
    return look_at_intrinsics(width, height, default_focal(width, height) if focal is None else float(focal))


def solve_root_translation(joints_2d: np.ndarray, joints_rel: np.ndarray, intrinsics: np.ndarray,
                           weights: np.ndarray | None = None) -> np.ndarray:
    """Translation ``t`` (3,) metres such that ``project(joints_rel + t)`` lands on ``joints_2d``.

    Each joint gives two equations linear in ``t`` (the projection equations multiplied by the depth):
    ``fx (X + tx) - (u - cx)(Z + tz) = 0`` and ``fy (Y + ty) - (v - cy)(Z + tz) = 0``, also with a skew-free
    ``K``; they are solved in the least-squares sense.

    Args:
        joints_2d: (N, 2) px, N >= 2.
        joints_rel: (N, 3) metres, any origin (e.g. the wrist), camera-aligned axes.
        intrinsics: (3, 3) px.
        weights: optional (N,) non-negative per-joint weights (e.g. 2D confidences).
    Returns:
        (3,) float64 metres; the placed joints are ``joints_rel + t``.
    """
    uv = np.asarray(joints_2d, dtype=np.float64).reshape(-1, 2)
    xyz = np.asarray(joints_rel, dtype=np.float64).reshape(-1, 3)
    if len(uv) != len(xyz) or len(uv) < 2:
        raise ValueError(f"need matching (N, 2) and (N, 3) joints with N >= 2, got {uv.shape} and {xyz.shape}")
    k = np.asarray(intrinsics, dtype=np.float64)
    focal, centre = np.array([k[0, 0], k[1, 1]]), k[:2, 2]
    offset = uv - centre  # (N, 2) px from the principal point
    rows = np.zeros((len(uv), 2, 3))
    rows[:, 0, 0], rows[:, 1, 1] = focal[0], focal[1]
    rows[:, :, 2] = -offset
    rhs = offset * xyz[:, 2:3] - focal * xyz[:, :2]  # (N, 2)
    if weights is not None:
        w = np.sqrt(np.clip(np.asarray(weights, dtype=np.float64).reshape(-1), 0.0, None))
        rows, rhs = rows * w[:, None, None], rhs * w[:, None]
    solution, *_ = np.linalg.lstsq(rows.reshape(-1, 3), rhs.reshape(-1), rcond=None)
    return solution


def box_fit_translation(joints_rel: np.ndarray, hand_box: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """Translation (3,) metres placing root-relative joints (N, 3) inside a hand box ``[x1, y1, x2, y2]`` px.

    For models without 2D joints: the depth makes the joints' larger 3D extent (x or y) as wide as the box's
    larger side in pixels, and x / y put the joints' 3D centre on the ray through the box centre.
    """
    xyz = np.asarray(joints_rel, dtype=np.float64).reshape(-1, 3)
    box = np.asarray(hand_box, dtype=np.float64)
    k = np.asarray(intrinsics, dtype=np.float64)
    extent_m = float(max(np.ptp(xyz[:, 0]), np.ptp(xyz[:, 1]), 1e-6))
    extent_px = float(max(box[2] - box[0], box[3] - box[1], 1e-6))
    depth = float(k[0, 0]) * extent_m / extent_px
    centre_3d = (xyz.min(0) + xyz.max(0)) / 2.0
    box_centre = (box[:2] + box[2:]) / 2.0
    target = np.array([(box_centre[0] - k[0, 2]) / k[0, 0] * depth, (box_centre[1] - k[1, 2]) / k[1, 1] * depth,
                       depth])
    return target - centre_3d
