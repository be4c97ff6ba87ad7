"""MANO pose-parameter conversions used by the datasets (numpy, float64).

Pose convention of the project (and of every official network): 48 axis-angle values = 3 global
rotation + 15 finger joints x 3, for a RIGHT hand, in the "flat hand mean" convention (zero finger pose =
flat hand; the file's ``hands_mean`` is already added in). Reference: docs/official-data.md §2.1.
"""
from __future__ import annotations

import numpy as np

from utils.hand_conventions import MANO_SIDES, NUM_POSE_PARAMS
from utils.rotations import axis_angle_to_matrix, matrix_to_axis_angle

NUM_PCA_COMPONENTS = 45
DEXYCB_POSE_M_SIZE = 51  # 3 global axis-angle + 45 PCA coefficients + 3 translation (metres)


def mirror_pose(pose: np.ndarray) -> np.ndarray:
    """Mirror axis-angle triplets across the x = 0 plane (left <-> right hand): negate each triplet's y, z.

    Args:
        pose: (..., 3k) axis-angle values (e.g. 48 for a full MANO pose or 45 for the fingers).
    Returns:
        a new array of the same shape.
    """
    pose = np.asarray(pose, dtype=np.float64)
    if pose.shape[-1] % 3:
        raise ValueError(f"mirror_pose: last dimension must hold axis-angle triplets, got shape {pose.shape}")
    triplets = pose.reshape(*pose.shape[:-1], -1, 3) * np.array([1.0, -1.0, -1.0])
    return triplets.reshape(pose.shape)


def pca_to_axis_angle(pca_coeffs: np.ndarray, hands_components: np.ndarray) -> np.ndarray:
    """(..., n) PCA coefficients -> (..., 45) finger axis-angles: ``coeffs @ hands_components[:n]``.

    The file's ``hands_mean`` is NOT added (callers choose the convention).
    """
    pca_coeffs = np.asarray(pca_coeffs, dtype=np.float64)
    n = pca_coeffs.shape[-1]
    if n > NUM_PCA_COMPONENTS or hands_components.shape != (NUM_PCA_COMPONENTS, NUM_PCA_COMPONENTS):
        raise ValueError(f"pca_to_axis_angle: got {n} coefficients and components of shape "
                         f"{hands_components.shape}; expected <= 45 and (45, 45)")
    return pca_coeffs @ hands_components[:n]


def dexycb_pose_to_right_flat(pose_m: np.ndarray, side: str, side_hands_components: np.ndarray,
                              right_hands_mean: np.ndarray) -> np.ndarray:
    """DexYCB ``pose_m`` -> 48-value flat-hand-mean axis-angle pose of a RIGHT hand (left hands mirrored).

    Steps (docs/official-data.md §2.1): finger axis-angles = 45 PCA coefficients @ the side's
    ``hands_components``; for a left hand negate the 2nd and 3rd value of all 16 triplets (global
    included); add the RIGHT model's ``hands_mean`` to the 45 finger values; drop the translation.

    Args:
        pose_m: (..., 51) = [3 global axis-angle, 45 PCA coefficients, 3 translation (m)].
        side: 'right' or 'left' (DexYCB ``mano_side``).
        side_hands_components: (45, 45) ``hands_components`` of the side's MANO file.
        right_hands_mean: (45,) ``hands_mean`` of MANO_RIGHT.pkl.
    Returns:
        (..., 48) float64 pose for ``ManoLayer(side='right', flat_hand_mean=True, use_pca=False)``.
    """
    pose_m = np.asarray(pose_m, dtype=np.float64)
    if pose_m.shape[-1] != DEXYCB_POSE_M_SIZE:
        raise ValueError(f"DexYCB pose_m must have {DEXYCB_POSE_M_SIZE} values on its last axis, "
                         f"got shape {pose_m.shape}")
    if side not in MANO_SIDES:
        raise ValueError(f"side must be one of {MANO_SIDES}, got {side!r}")
    fingers = pca_to_axis_angle(pose_m[..., 3:48], side_hands_components)
    pose = np.concatenate([pose_m[..., :3], fingers], axis=-1)
    if side == "left":
        pose = mirror_pose(pose)
    pose[..., 3:] += np.asarray(right_hands_mean, dtype=np.float64)
    return pose


def rotate_global_orient(pose: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """Left-multiply the global rotation of a MANO pose by ``rotation``: aa' = log(rotation @ exp(aa)).

    Used when an image is rotated about the camera z axis (docs/official-data.md §2.2).

    Args:
        pose: (48,) axis-angle MANO pose (only the first 3 values change).
        rotation: (3, 3) rotation matrix.
    Returns:
        a new (48,) array.
    """
    pose = np.array(pose, dtype=np.float64)
    if pose.shape != (NUM_POSE_PARAMS,) or np.shape(rotation) != (3, 3):
        raise ValueError(f"rotate_global_orient: expected pose (48,) and rotation (3, 3), "
                         f"got {pose.shape} and {np.shape(rotation)}")
    pose[:3] = matrix_to_axis_angle(np.asarray(rotation, dtype=np.float64) @ axis_angle_to_matrix(pose[:3]))
    return pose
