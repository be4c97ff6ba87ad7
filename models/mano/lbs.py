"""Linear blend skinning for MANO, as pure batched functions (no python loop over the batch).

Frames and units: everything in the MANO template frame, in the unit of the model arrays (metres).
Notation: B batch, V vertices (778), J joints (16), K shape coefficients (10), P = 9 (J - 1) pose-blend
features (135).
The maths is manopth's (docs/libraries.md B.2, docs/official-model.md §3): rest joints are regressed from
the shaped (not pose-corrected) vertices; joint j's local transform is ``[R_j | J_j - J_parent(j)]``;
vertices are skinned with ``T_j @ [I | -J_j]``.

For speed the model arrays are first repacked once by :func:`pack_skinning_arrays` (a
:class:`SkinningArrays`): shape and pose blend shapes stacked into one coordinate-major basis, so the
posed rest vertices are one matrix product; the joint regressor folded into the shape basis (joints are
linear in the betas); joints kept in kinematic-level order, so each tree level is a contiguous slice.
Skinning is then one (B * 12, J) x (J, V) product of the blended 3x4 transforms (as manopth does it)
followed by three multiply-adds.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch

from utils.rotations import axis_angle_to_matrix as batch_rodrigues  # manopth's quaternion Rodrigues

__all__ = ["batch_rodrigues", "kinematic_levels", "SkinningArrays", "pack_skinning_arrays", "lbs"]


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


class SkinningArrays(NamedTuple):
    """MANO arrays repacked for :func:`lbs` (all float, on the model's device).

    Joints are in *level order* (root, then the joints of each :func:`kinematic_levels` level in turn).
    """
    blend_basis: torch.Tensor  # (K + P, 3 V): rows = shape then pose blend shapes, columns x-block, y, z
    template: torch.Tensor  # (3 V,) template vertices, same column layout
    joint_basis: torch.Tensor  # (K, 2 J 3): rest joints then local offsets (joint - parent), per beta
    joint_template: torch.Tensor  # (2 J 3,) the same for the template
    weights: torch.Tensor  # (V, J) skinning weights, columns in level order
    level_order: tuple[int, ...]  # MANO joint id of each level-order position
    mano_order: tuple[int, ...]  # level-order position of each MANO joint
    level_slices: tuple[tuple[int, int], ...]  # [start, stop) of each level in level order
    parent_slots: tuple[tuple[int, ...] | None, ...]  # parent positions inside the previous level; None = same


def pack_skinning_arrays(v_template: torch.Tensor, shapedirs: torch.Tensor, posedirs: torch.Tensor,
                         J_regressor: torch.Tensor, weights: torch.Tensor, parents: Sequence[int]) -> SkinningArrays:
    """Repack the model arrays for :func:`lbs` (products folded in float64, stored in the input dtype).

    Args:
        v_template (V, 3) or (1, V, 3), shapedirs (V, 3, K), posedirs (V, 3, P), J_regressor (J, V),
        weights (V, J): model arrays; parents (J,): parent of each joint, -1 for the root.
    """
    dtype, num_verts = shapedirs.dtype, shapedirs.shape[0]
    levels = kinematic_levels(parents)
    level_order = [0] + [j for level in levels for j in level]
    position = {joint: i for i, joint in enumerate(level_order)}
    basis = torch.cat([shapedirs, posedirs], dim=-1).permute(2, 1, 0).reshape(-1, 3 * num_verts)
    template = v_template.reshape(num_verts, 3).double()
    # joints and local offsets are linear in the shaped vertices: fold the regressor into the bases
    parent_pick = torch.zeros(len(parents), len(parents), dtype=torch.float64)
    for joint, parent in enumerate(parents):
        if parent >= 0:
            parent_pick[joint, parent] = 1.0
    regressor = J_regressor.double()[level_order]  # (J, V) level order
    to_offsets = torch.eye(len(parents), dtype=torch.float64) - parent_pick[level_order][:, level_order]
    regressors = torch.cat([regressor, to_offsets @ regressor])  # (2 J, V)
    joint_basis = torch.einsum("jv,vck->kjc", regressors, shapedirs.double()).reshape(shapedirs.shape[-1], -1)
    joint_template = (regressors @ template).reshape(-1)
    slices, parent_slots, start = [], [], 1
    previous = [0]
    for level in levels:
        slices.append((start, start + len(level)))
        slots = tuple(previous.index(parents[j]) for j in level)
        same = slots == tuple(range(len(level))) or len(previous) == 1
        parent_slots.append(None if same else slots)
        previous, start = level, start + len(level)
    return SkinningArrays(
        blend_basis=basis.contiguous(), template=template.T.reshape(-1).to(dtype),
        joint_basis=joint_basis.to(dtype), joint_template=joint_template.to(dtype),
        weights=weights[:, level_order].contiguous(), level_order=tuple(level_order),
        mano_order=tuple(position[j] for j in range(len(parents))), level_slices=tuple(slices),
        parent_slots=tuple(parent_slots))


def _chain(local: torch.Tensor, arrays: SkinningArrays) -> torch.Tensor:
    """World 3x4 transforms from local ones, one batched product per tree level.

    Args:
        local: (B, J, 3, 4) ``[R_j | J_j - J_parent]`` in level order (root: ``[R_0 | J_0]``).
    Returns:
        (B, J, 3, 4) ``[R_world | posed joint]`` in level order.
    """
    world = [local[:, :1]]
    for (start, stop), slots in zip(arrays.level_slices, arrays.parent_slots):
        parent = world[-1] if slots is None else world[-1][:, list(slots)]
        level = torch.matmul(parent[..., :3], local[:, start:stop])  # (B, L, 3, 4)
        level[..., 3] += parent[..., 3]
        world.append(level)
    return torch.cat(world, dim=1)


def lbs(betas: torch.Tensor, rotmats: torch.Tensor, arrays: SkinningArrays) -> tuple[torch.Tensor, torch.Tensor]:
    """Full MANO skinning: shape and pose blend, joint regression, kinematic chain, skinning.

    Args:
        betas: (B, K) or (1, K) (broadcast over the batch).
        rotmats: (B, J, 3, 3) local joint rotations in MANO joint order, joint 0 = global rotation.
        arrays: the model's :func:`pack_skinning_arrays`.
    Returns:
        verts (B, V, 3) and posed joints (B, J, 3, MANO order), both in the model's unit and template frame.
    """
    batch, num_joints = rotmats.shape[:2]
    eye = torch.eye(3, dtype=rotmats.dtype, device=rotmats.device)
    features = torch.cat([betas.expand(batch, -1), (rotmats[:, 1:] - eye).reshape(batch, -1)], dim=1)
    v_posed = torch.addmm(arrays.template, features, arrays.blend_basis).view(batch, 3, -1)  # (B, 3, V)
    rest = torch.addmm(arrays.joint_template, betas, arrays.joint_basis).view(-1, 2, num_joints, 3)
    joints, offsets = rest.expand(batch, -1, -1, -1).unbind(1)  # (B, J, 3) each, level order
    local = torch.cat([rotmats[:, list(arrays.level_order)], offsets.unsqueeze(-1)], dim=-1)  # (B, J, 3, 4)
    world = _chain(local, arrays)
    # T_j @ [I | -J_j]: rotation kept, translation = posed joint - R_world J_j
    shift = world[..., 3] - torch.matmul(world[..., :3], joints.unsqueeze(-1)).squeeze(-1)
    skin = torch.cat([world[..., :3], shift.unsqueeze(-1)], dim=-1)  # (B, J, 3, 4)
    skin = skin.reshape(batch, num_joints, 12).transpose(1, 2).reshape(batch * 12, num_joints)
    per_vertex = torch.mm(skin, arrays.weights.T).view(batch, 3, 4, -1)  # (B, 3 rows, 4 columns, V)
    verts = per_vertex[:, :, 3]
    for axis in range(3):
        verts = torch.addcmul(verts, per_vertex[:, :, axis], v_posed[:, axis:axis + 1])
    posed_joints = world[:, list(arrays.mano_order), :, 3]
    return verts.transpose(1, 2), posed_joints
