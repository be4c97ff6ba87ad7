"""Small pure geometry functions for building crops: boxes, crop affines, projection, mirroring.

Conventions (reference: official-data-eval.md §2.2):
    * 2D points are pixel coordinates ``(u, v)`` in an image of ``width x height`` pixels, arrays ``(N, 2)``.
    * 3D points are metres in the OpenCV camera frame (x right, y down, z forward), arrays ``(N, 3)``.
    * Boxes are ``[x1, y1, x2, y2]`` (float32, pixels).
    * ``res`` is the side of the square network input; "crop px" are pixel coordinates inside it.
    * Affines are 3x3 matrices acting on homogeneous 2D points ``[u, v, 1]``.
"""
from __future__ import annotations

import numpy as np


def bbox_from_points(points: np.ndarray, factor: float) -> np.ndarray:
    """Box around ``points`` (N, 2) expanded by ``factor`` about its integer-truncated centre.

    The centre is ``trunc((min + max) / 2)`` per axis and the half size ``(max - min) * factor / 2``,
    exactly like the official helper. Returns ``[x1, y1, x2, y2]`` float32.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    low, high = points.min(axis=0), points.max(axis=0)
    centre = np.trunc((low + high) / 2.0)
    half = (high - low) * factor / 2.0
    return np.concatenate([centre - half, centre + half]).astype(np.float32)


def union_box(box_a: np.ndarray, box_b: np.ndarray) -> np.ndarray:
    """Smallest box containing both boxes ``[x1, y1, x2, y2]``."""
    return np.concatenate([np.minimum(box_a[:2], box_b[:2]), np.maximum(box_a[2:], box_b[2:])]).astype(np.float32)


def clip_box(box: np.ndarray, width: int, height: int) -> np.ndarray:
    """Clip a box to ``[0, width] x [0, height]``."""
    limits = np.array([width, height, width, height], dtype=np.float32)
    return np.clip(np.asarray(box, dtype=np.float32), 0.0, limits)


def square_region(box: np.ndarray) -> tuple[np.ndarray, float]:
    """Crop region of a box: (integer-truncated centre (2,), side = max(width, height))."""
    centre = np.trunc((box[:2] + box[2:]) / 2.0)
    return centre.astype(np.float64), float(max(box[2] - box[0], box[3] - box[1]))


def crop_affine(centre: np.ndarray, scale: float, res: int) -> np.ndarray:
    """Affine mapping the square of side ``scale`` centred at ``centre`` (px) onto ``[0, res]^2`` (3, 3)."""
    k = res / scale
    return np.array([[k, 0.0, res * (0.5 - centre[0] / scale)],
                     [0.0, k, res * (0.5 - centre[1] / scale)],
                     [0.0, 0.0, 1.0]])


def rotation_z(theta: float) -> np.ndarray:
    """In-plane rotation by ``theta`` radians about the camera z axis / the image origin (3, 3)."""
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def crop_transform(centre: np.ndarray, scale: float, theta: float, res: int) -> np.ndarray:
    """Image-to-crop affine with rotation: ``A(R c, s) @ R`` (3, 3); equals ``crop_affine`` for theta 0."""
    rot = rotation_z(theta)
    rotated_centre = rot[:2, :2] @ np.asarray(centre, dtype=np.float64)
    return crop_affine(rotated_centre, scale, res) @ rot


def crop_intrinsics(intrinsics: np.ndarray, centre: np.ndarray, scale: float, theta: float, res: int) -> np.ndarray:
    """Intrinsics of the rotated crop: ``A(c_pp, s) @ K`` with ``c_pp`` = centre rotated about the principal point.

    With the 3D points rotated by ``rotation_z(theta)``, ``K' @ (R X)`` lands where ``crop_transform`` maps
    ``K @ X`` (exactly when fx == fy).
    """
    principal = intrinsics[:2, 2]
    rot = rotation_z(theta)[:2, :2]
    centre_pp = rot @ (np.asarray(centre, dtype=np.float64) - principal) + principal
    return crop_affine(centre_pp, scale, res) @ intrinsics


def apply_affine(transform: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map 2D points (N, 2) through a 3x3 affine; returns (N, 2) float32."""
    points = np.asarray(points, dtype=np.float64)
    return (points @ transform[:2, :2].T + transform[:2, 2]).astype(np.float32)


def map_box(transform: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Map the two corners of a box ``[x1, y1, x2, y2]`` through a 3x3 affine (no rotation); returns (4,) float32."""
    return apply_affine(transform, np.asarray(box, np.float64).reshape(2, 2)).reshape(4)


def project_points(points_cam: np.ndarray, intrinsics: np.ndarray, dtype=np.float32) -> np.ndarray:
    """Pinhole projection of camera-frame points (N, 3) metres with ``K`` (3, 3) -> pixels (N, 2) of ``dtype``.

    Computed in float64; the object keypoints of a sample stay float64, as the official loaders keep them.
    """
    points_cam = np.asarray(points_cam, dtype=np.float64)
    uvw = points_cam @ np.asarray(intrinsics, dtype=np.float64).T
    return (uvw[:, :2] / uvw[:, 2:3]).astype(dtype)


def transform_points(pose: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a rigid pose (3, 4) or (4, 4) ``[R | t]`` to points (N, 3)."""
    pose = np.asarray(pose, dtype=np.float64)
    return np.asarray(points, dtype=np.float64) @ pose[:3, :3].T + pose[:3, 3]


def normalize_to_box(points: np.ndarray, box: np.ndarray) -> np.ndarray:
    """``(p - box.min) / (box.max - box.min)`` for points (N, 2) and a box ``[x1, y1, x2, y2]``."""
    return ((np.asarray(points) - box[:2]) / (box[2:] - box[:2])).astype(np.float32)


def mirror_points_2d(points: np.ndarray, width: int) -> np.ndarray:
    """Horizontal mirror of pixel coordinates: ``u' = (width - u) - 1``, in the precision of the input
    (float32 at least; evaluated in the official order, so float32 joints round exactly as there)."""
    points = np.asarray(points)
    out = np.array(points, dtype=np.result_type(points.dtype, np.float32), copy=True)
    out[:, 0] = (width - out[:, 0]) - 1
    return out


def mirror_points_3d(points: np.ndarray) -> np.ndarray:
    """Mirror camera-frame points through the y-z plane: ``x' = -x``."""
    out = np.array(points, dtype=np.float32, copy=True)
    out[..., 0] = -out[..., 0]
    return out


def mirror_intrinsics(intrinsics: np.ndarray, width: int) -> np.ndarray:
    """Intrinsics of the mirrored image: ``cx' = width - 1 - cx`` (so mirrored 3D projects onto mirrored 2D)."""
    out = np.array(intrinsics, dtype=np.float64, copy=True)
    out[0, 2] = width - 1 - out[0, 2]
    return out


def rotation_angle_deg(rotation: np.ndarray) -> float:
    """Angle (degrees) of a 3x3 rotation matrix: ``acos(clip((trace - 1) / 2, -1, 1))``."""
    cos = np.clip((np.trace(rotation) - 1.0) / 2.0, -1.0, 1.0)
    return float(np.degrees(np.arccos(cos)))


def mesh_silhouette(verts_cam: np.ndarray, faces: np.ndarray, intrinsics: np.ndarray, width: int,
                    height: int) -> np.ndarray:
    """Exact silhouette of a triangle mesh under pinhole projection: every projected triangle filled.

    Args:
        verts_cam: (V, 3) camera-frame vertices (metres, in front of the camera).
        faces: (F, 3) vertex ids.
    Returns:
        (height, width) bool mask. Rasterised with ``cv2.fillConvexPoly`` at 1/16 px precision (no GL).
    """
    import cv2

    mask = np.zeros((height, width), dtype=np.uint8)
    fixed = np.round(project_points(verts_cam, intrinsics).astype(np.float64) * 16).astype(np.int32)
    for triangle in fixed[np.asarray(faces)]:
        cv2.fillConvexPoly(mask, triangle, 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(bool)


def convex_silhouette(points_cam: np.ndarray, intrinsics: np.ndarray, width: int, height: int) -> np.ndarray:
    """Filled convex hull of projected points (N, 3) -> (height, width) bool mask (an object's outline)."""
    import cv2

    mask = np.zeros((height, width), dtype=np.uint8)
    hull = cv2.convexHull(np.round(project_points(points_cam, intrinsics).astype(np.float64) * 16).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(bool)
