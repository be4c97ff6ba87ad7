"""Rotation conversions: axis-angle, 3x3 matrix, 6D (two matrix columns), quaternion.

Every function takes a torch tensor (any float dtype/device, leading batch dims ``...``) or a numpy array
(computed in float64 through torch, returned as numpy). The algorithms follow the official code where
bit-compatibility matters (reference: docs/official-model.md §1.7, §3):

* axis-angle -> matrix: manopth's quaternion Rodrigues, angle = ``|aa + 1e-8|``.
* 6D -> matrix: Gram-Schmidt on the two 3-vectors, result columns ``b1, b2, b3 = b1 x b2``.
* matrix -> axis-angle: the old torchgeometry/kornia path (matrix -> quaternion with the 4-case mask
  selection on the transposed matrix, eps 1e-6; quaternion -> axis-angle with atan2), NaN -> 0.
"""
from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F


def _accepts_numpy(fn):
    """Let ``fn(tensor, ...)`` also take a numpy array: run in float64 torch, return numpy."""

    @functools.wraps(fn)
    def wrapper(x, *args, **kwargs):
        if isinstance(x, np.ndarray):
            return fn(torch.from_numpy(np.asarray(x, dtype=np.float64)), *args, **kwargs).numpy()
        return fn(x, *args, **kwargs)

    return wrapper


def _check_last_dims(x: torch.Tensor, dims: tuple, name: str) -> None:
    if tuple(x.shape[-len(dims):]) != dims:
        raise ValueError(f"{name}: expected shape (..., {', '.join(map(str, dims))}), got {tuple(x.shape)}")


def quaternion_to_matrix(quat: torch.Tensor) -> torch.Tensor:
    """(..., 4) quaternion (w, x, y, z), normalised here -> (..., 3, 3) rotation matrix (manopth ``quat2mat``)."""
    _check_last_dims(quat, (4,), "quaternion_to_matrix")
    q = quat / quat.norm(p=2, dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    w2, x2, y2, z2 = w * w, x * x, y * y, z * z
    wx, wy, wz = w * x, w * y, w * z
    xy, xz, yz = x * y, x * z, y * z
    rows = torch.stack([
        w2 + x2 - y2 - z2, 2 * xy - 2 * wz, 2 * wy + 2 * xz,
        2 * wz + 2 * xy, w2 - x2 + y2 - z2, 2 * yz - 2 * wx,
        2 * xz - 2 * wy, 2 * wx + 2 * yz, w2 - x2 - y2 + z2,
    ], dim=-1)
    return rows.reshape(*quat.shape[:-1], 3, 3)


@_accepts_numpy
def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """(..., 3) axis-angle (radians) -> (..., 3, 3) rotation matrix, manopth's ``batch_rodrigues``.

    The angle is ``|aa + 1e-8|`` (a zero vector gives the identity, finite gradients).
    """
    _check_last_dims(axis_angle, (3,), "axis_angle_to_matrix")
    angle = torch.norm(axis_angle + 1e-8, p=2, dim=-1, keepdim=True)
    axis = axis_angle / angle
    half = angle * 0.5
    quat = torch.cat([torch.cos(half), torch.sin(half) * axis], dim=-1)
    return quaternion_to_matrix(quat)


@_accepts_numpy
def rot6d_to_matrix(rot6d: torch.Tensor) -> torch.Tensor:
    """(..., 6) 6D rotation -> (..., 3, 3) matrix whose columns are b1, b2, b3 (docs/official-model.md §1.7).

    a1, a2 = first / last 3 values; b1 = a1/|a1|; b2 = normalised (a2 - (b1.a2) b1); b3 = b1 x b2.
    (manopth's ``compute_rotation_matrix_from_ortho6d`` builds the same matrix via cross products.)
    """
    _check_last_dims(rot6d, (6,), "rot6d_to_matrix")
    a1, a2 = rot6d[..., :3], rot6d[..., 3:]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


@_accepts_numpy
def robust_rot6d_to_matrix(rot6d: torch.Tensor) -> torch.Tensor:
    """(..., 6) -> (..., 3, 3), manopth's ``robust_compute_rotation_matrix_from_ortho6d``.

    Both input directions are treated symmetrically: x, y are rebuilt from the normalised bisector and
    its orthogonal, z = x cross y; columns x, y, z. Vector norms are clamped at 1e-8 as in manopth.
    """
    _check_last_dims(rot6d, (6,), "robust_rot6d_to_matrix")

    def normalize(v):
        return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-8)

    x, y = normalize(rot6d[..., :3]), normalize(rot6d[..., 3:])
    middle, orthmid = normalize(x + y), normalize(x - y)
    x, y = normalize(middle + orthmid), normalize(middle - orthmid)
    z = normalize(torch.cross(x, y, dim=-1))
    return torch.stack([x, y, z], dim=-1)


@_accepts_numpy
def matrix_to_rot6d(matrix: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotation -> (..., 6) = [first column, second column] (inverse of :func:`rot6d_to_matrix`)."""
    _check_last_dims(matrix, (3, 3), "matrix_to_rot6d")
    return torch.cat([matrix[..., :, 0], matrix[..., :, 1]], dim=-1)


@_accepts_numpy
def matrix_to_quaternion(matrix: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """(..., 3, 3) rotation -> (..., 4) quaternion (w, x, y, z), old torchgeometry/kornia algorithm.

    Works on the transposed matrix and picks one of four formulas by masks on its diagonal (kept for
    bit-compatibility with the official ``mat2aa``).
    """
    _check_last_dims(matrix, (3, 3), "matrix_to_quaternion")
    m = matrix.transpose(-1, -2)
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]

    mask_d2 = m22 < eps
    mask_d0_d1 = m00 > m11
    mask_d0_nd1 = m00 < -m11

    t0 = 1 + m00 - m11 - m22
    q0 = torch.stack([m12 - m21, t0, m01 + m10, m20 + m02], dim=-1)
    t1 = 1 - m00 + m11 - m22
    q1 = torch.stack([m20 - m02, m01 + m10, t1, m12 + m21], dim=-1)
    t2 = 1 - m00 - m11 + m22
    q2 = torch.stack([m01 - m10, m20 + m02, m12 + m21, t2], dim=-1)
    t3 = 1 + m00 + m11 + m22
    q3 = torch.stack([t3, m12 - m21, m20 - m02, m01 - m10], dim=-1)

    c0 = (mask_d2 & mask_d0_d1).to(matrix.dtype).unsqueeze(-1)
    c1 = (mask_d2 & ~mask_d0_d1).to(matrix.dtype).unsqueeze(-1)
    c2 = (~mask_d2 & mask_d0_nd1).to(matrix.dtype).unsqueeze(-1)
    c3 = (~mask_d2 & ~mask_d0_nd1).to(matrix.dtype).unsqueeze(-1)

    q = q0 * c0 + q1 * c1 + q2 * c2 + q3 * c3
    t = t0.unsqueeze(-1) * c0 + t1.unsqueeze(-1) * c1 + t2.unsqueeze(-1) * c2 + t3.unsqueeze(-1) * c3
    return q / torch.sqrt(t) * 0.5


@_accepts_numpy
def quaternion_to_axis_angle(quat: torch.Tensor) -> torch.Tensor:
    """(..., 4) quaternion (w, x, y, z) -> (..., 3) axis-angle, old torchgeometry/kornia algorithm."""
    _check_last_dims(quat, (4,), "quaternion_to_axis_angle")
    q_vec = quat[..., 1:]
    cos_theta = quat[..., 0]
    sin_sq = (q_vec * q_vec).sum(-1)
    sin_theta = torch.sqrt(sin_sq)
    two_theta = 2.0 * torch.where(cos_theta < 0.0,
                                  torch.atan2(-sin_theta, -cos_theta),
                                  torch.atan2(sin_theta, cos_theta))
    k = torch.where(sin_sq > 0.0, two_theta / sin_theta, torch.full_like(sin_theta, 2.0))
    return q_vec * k.unsqueeze(-1)


@_accepts_numpy
def matrix_to_axis_angle(matrix: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotation -> (..., 3) axis-angle (radians), official ``mat2aa``: kornia path, NaN -> 0.

    The NaN -> 0 replacement (official) covers NaNs the algorithm itself produces from a finite matrix; a matrix
    holding NaN or infinity gives NaN, so bad input is not silently turned into the identity rotation.
    """
    axis_angle = torch.nan_to_num(quaternion_to_axis_angle(matrix_to_quaternion(matrix)), nan=0.0)
    finite = torch.isfinite(matrix).flatten(-2).all(-1, keepdim=True)
    return torch.where(finite, axis_angle, torch.full_like(axis_angle, float("nan")))


@_accepts_numpy
def project_to_rotation(matrix: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) near-rotation -> nearest rotation ``U V^T`` (SVD); a reflection gets its 3rd column negated.

    This is manopth's ``batch_rotprojs`` (used by its ``joint_rot_mode='rotmat'``), vectorised.
    """
    _check_last_dims(matrix, (3, 3), "project_to_rotation")
    u, _, vh = torch.linalg.svd(matrix)
    rot = u @ vh
    flip = torch.ones_like(rot[..., 0, :])
    flip[..., 2] = torch.where(torch.linalg.det(rot) < 0, -1.0, 1.0).to(rot.dtype)
    return rot * flip.unsqueeze(-2)


@_accepts_numpy
def rot6d_to_axis_angle(rot6d: torch.Tensor) -> torch.Tensor:
    """(..., 6) 6D rotation -> (..., 3) axis-angle (the official mano head's 6D -> R -> ``mat2aa``)."""
    return matrix_to_axis_angle(rot6d_to_matrix(rot6d))
