"""Linear blend skinning for MANO, as pure batched functions (no python loop over the batch).

Frames and units: everything in the MANO template frame, in the unit of the model arrays (metres).
Notation: B batch, V vertices (778), J joints (16), P = 9 * (J - 1) pose-blend features (135).
The maths is manopth's (reference: docs/libraries.md B.2, docs/official-model.md §3): rest joints are regressed from
the shaped (not pose-corrected) vertices; joint j's local transform is ``[R_j | J_j - J_parent(j)]``;
vertices are skinned with ``T_j @ [I | -J_j]``.
"""
from __future__ import annotations

from typing import Sequence

import torch

from utils.rotations import axis_angle_to_matrix as batch_rodrigues  # manopth's quaternion Rodrigues

__all__ = ["batch_rodrigues", "shape_blend", "pose_blend", "kinematic_levels", "forward_kinematics",
           "skin_vertices", "lbs"]


def shape_blend(betas: torch.Tensor, shapedirs: torch.Tensor, v_template: torch.Tensor) -> torch.Tensor:
    """Shaped rest vertices ``v_template + shapedirs . betas``.

    Args:
        betas: (B, K) shape coefficients.
        shapedirs: (V, 3, K) shape blend shapes.
        v_template: (V, 3) or (1, V, 3) template vertices.
    Returns:
        (B, V, 3).
    """
    offsets = betas @ shapedirs.reshape(-1, shapedirs.shape[-1]).T  # (B, V * 3)
    return offsets.reshape(betas.shape[0], -1, 3) + v_template.reshape(1, -1, 3)


def pose_blend(rotmats: torch.Tensor, posedirs: torch.Tensor) -> torch.Tensor:
    """Pose-corrective vertex offsets from the non-root joint rotations.

    Args:
        rotmats: (B, J - 1, 3, 3) rotations of joints 1..J-1.
        posedirs: (V, 3, 9 (J - 1)) pose blend shapes, feature = row-major flattened ``R - I`` per joint.
    Returns:
        (B, V, 3) offsets.
    """
    eye = torch.eye(3, dtype=rotmats.dtype, device=rotmats.device)
    pose_feature = (rotmats - eye).reshape(rotmats.shape[0], -1)  # (B, P)
    offsets = pose_feature @ posedirs.reshape(-1, posedirs.shape[-1]).T  # (B, V * 3)
    return offsets.reshape(rotmats.shape[0], -1, 3)


def kinematic_levels(parents: Sequence[int]) -> list[list[int]]:
    """Group the non-root joints by depth in the tree: ``[[depth-1 joints], [depth-2 joints], ...]``.

    For MANO this gives manopth's levels ``[1,4,7,10,13], [2,5,8,11,14], [3,6,9,12,15]``.
    """
    depth = {}
    for joint, parent in enumerate(parents):
        if parent < 0:
            depth[joint] = 0
        elif parent in depth:
            depth[joint] = depth[parent] + 1
        else:
            raise ValueError(f"kinematic tree: parent {parent} of joint {joint} must come before it")
    levels = [[j for j in range(len(parents)) if depth[j] == d] for d in range(1, max(depth.values()) + 1)]
    return levels


def _homogeneous(rot: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotation and (..., 3) translation -> (..., 4, 4) rigid transform."""
    top = torch.cat([rot, trans.unsqueeze(-1)], dim=-1)  # (..., 3, 4)
    bottom = torch.zeros_like(top[..., :1, :])
    bottom[..., 0, 3] = 1.0
    return torch.cat([top, bottom], dim=-2)


def forward_kinematics(rotmats: torch.Tensor, joints: torch.Tensor, parents: Sequence[int],
                       levels: Sequence[Sequence[int]]) -> torch.Tensor:
    """World transforms of all joints, computed level by level (one batched matmul per tree level).

    Args:
        rotmats: (B, J, 3, 3) local rotations (joint 0 = global rotation).
        joints: (B, J, 3) rest-pose joint positions.
        parents: (J,) parent of each joint, -1 for the root (joint 0).
        levels: :func:`kinematic_levels` of ``parents``.
    Returns:
        (B, J, 4, 4) transforms; ``[..., :3, 3]`` are the posed joint positions.
    """
    num_joints = joints.shape[1]
    transforms = {0: _homogeneous(rotmats[:, 0], joints[:, 0])}
    for level in levels:
        parent_ids = [parents[j] for j in level]
        local = _homogeneous(rotmats[:, level], joints[:, level] - joints[:, parent_ids])  # (B, L, 4, 4)
        parent_transforms = torch.stack([transforms[p] for p in parent_ids], dim=1)  # (B, L, 4, 4)
        for j, transform in zip(level, (parent_transforms @ local).unbind(1)):
            transforms[j] = transform
    return torch.stack([transforms[j] for j in range(num_joints)], dim=1)


def skin_vertices(v_posed: torch.Tensor, joints: torch.Tensor, transforms: torch.Tensor,
                  weights: torch.Tensor) -> torch.Tensor:
    """Linear blend skinning.

    Args:
        v_posed: (B, V, 3) rest vertices with shape and pose corrections.
        joints: (B, J, 3) rest joint positions.
        transforms: (B, J, 4, 4) world joint transforms from :func:`forward_kinematics`.
        weights: (V, J) skinning weights.
    Returns:
        (B, V, 3) posed vertices.
    """
    rot = transforms[..., :3, :3]  # (B, J, 3, 3)
    trans = transforms[..., :3, 3] - (rot @ joints.unsqueeze(-1)).squeeze(-1)  # (B, J, 3): T_j @ [I | -J_j]
    batch, num_joints = rot.shape[:2]
    vert_rot = (weights @ rot.reshape(batch, num_joints, 9)).reshape(batch, -1, 3, 3)  # (B, V, 3, 3)
    vert_trans = weights @ trans  # (B, V, 3)
    return (vert_rot * v_posed.unsqueeze(-2)).sum(-1) + vert_trans


def lbs(betas: torch.Tensor, rotmats: torch.Tensor, v_template: torch.Tensor, shapedirs: torch.Tensor,
        posedirs: torch.Tensor, J_regressor: torch.Tensor, weights: torch.Tensor, parents: Sequence[int],
        levels: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Full MANO skinning: shape blend, joint regression, pose blend, kinematic chain, skinning.

    Args:
        betas: (B, K) or (1, K) (broadcast over the batch).
        rotmats: (B, J, 3, 3) local joint rotations, joint 0 = global rotation.
        v_template (V, 3) or (1, V, 3), shapedirs (V, 3, K), posedirs (V, 3, 9 (J-1)), J_regressor (J, V),
        weights (V, J): model arrays.
        parents, levels: kinematic tree and its :func:`kinematic_levels`.
    Returns:
        verts (B, V, 3) and posed joints (B, J, 3), both in the model's unit and template frame.
    """
    batch = rotmats.shape[0]
    v_shaped = shape_blend(betas, shapedirs, v_template)  # (B or 1, V, 3)
    joints_rest = (J_regressor @ v_shaped).expand(batch, -1, -1)  # (B, J, 3)
    v_posed = v_shaped + pose_blend(rotmats[:, 1:], posedirs)  # (B, V, 3)
    transforms = forward_kinematics(rotmats, joints_rest, parents, levels)
    verts = skin_vertices(v_posed, joints_rest, transforms, weights)
    return verts, transforms[..., :3, 3]
