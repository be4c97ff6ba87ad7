"""Baseline for benchmarks/bench_mano.py: manopth's batched torch forward, re-stated step by step.

The steps and tensor layouts follow manopth's ``ManoLayer.forward`` as docs/libraries.md B.2 and
docs/official-model.md §3 describe it (axis-angle root and finger rotations, ``use_pca=False``): one
quaternion Rodrigues call per joint, ``posedirs @ (R - I)``, the kinematic chain in three levels of 5
joints with 4x4 homogeneous matrices repeated per child, then skinning as one product of the (B, 4, 4, 16)
joint transforms with the transposed (16, 778) weights and a multiply-and-sum with homogeneous vertices.
It is kept here, apart from the project's layer, so the benchmark measures the project against the
official algorithm as manopth runs it (float32, batched, same device), not against a loop.
"""
from __future__ import annotations

import torch

from utils.hand_conventions import MANO_TO_MANOPTH_ORDER, fingertip_verts

LEVELS = ([1, 4, 7, 10, 13], [2, 5, 8, 11, 14], [3, 6, 9, 12, 15])
# level-major order (root, lev1, lev2, lev3) -> MANO joint order
LEVEL_TO_MANO_ORDER = [0, 1, 6, 11, 2, 7, 12, 3, 8, 13, 4, 9, 14, 5, 10, 15]


def _rodrigues(axisang: torch.Tensor) -> torch.Tensor:
    """(N, 3) axis-angle -> (N, 9) row-major matrices, via a normalised half-angle quaternion."""
    angle = torch.norm(axisang + 1e-8, p=2, dim=1).unsqueeze(-1)
    normalized = axisang / angle
    half = angle * 0.5
    quat = torch.cat([torch.cos(half), torch.sin(half) * normalized], dim=1)
    quat = quat / quat.norm(p=2, dim=1, keepdim=True)
    w, x, y, z = quat[:, 0], quat[:, 1], quat[:, 2], quat[:, 3]
    w2, x2, y2, z2 = w.pow(2), x.pow(2), y.pow(2), z.pow(2)
    wx, wy, wz, xy, xz, yz = w * x, w * y, w * z, x * y, x * z, y * z
    return torch.stack([w2 + x2 - y2 - z2, 2 * xy - 2 * wz, 2 * wy + 2 * xz,
                        2 * wz + 2 * xy, w2 - x2 + y2 - z2, 2 * yz - 2 * wx,
                        2 * xz - 2 * wy, 2 * wx + 2 * yz, w2 - x2 - y2 + z2], dim=1)


def _with_zeros(top: torch.Tensor) -> torch.Tensor:
    """(N, 3, 4) -> (N, 4, 4) by appending the row [0, 0, 0, 1]."""
    row = top.new_tensor([0.0, 0.0, 0.0, 1.0]).view(1, 1, 4).repeat(top.shape[0], 1, 1)
    return torch.cat([top, row], dim=1)


class ManopthForward:
    """manopth's forward over the layer's buffers (right or left hand, axis-angle, 45 finger values).

    Args:
        layer: a ``models.mano.ManoLayer`` built with ``use_pca=False``; only its buffers are read.
    """

    def __init__(self, layer):
        self.layer = layer
        self.tips = list(fingertip_verts(layer.side))

    def __call__(self, pose: torch.Tensor, betas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """pose (B, 48) axis-angle, betas (B, 10) -> verts (B, 778, 3) and joints (B, 21, 3) in millimetres."""
        m = self.layer
        batch = pose.shape[0]
        full_pose = torch.cat([pose[:, :3], m.th_hands_mean + pose[:, 3:48]], dim=1)
        rot_map = torch.cat([_rodrigues(full_pose[:, 3 * j:3 * j + 3]) for j in range(16)], dim=1)  # (B, 144)
        pose_map = rot_map - torch.eye(3, dtype=rot_map.dtype, device=rot_map.device).view(1, 9).repeat(1, 16)
        root_rot, pose_map = rot_map[:, :9].view(batch, 3, 3), pose_map[:, 9:]

        v_shaped = torch.matmul(m.th_shapedirs, betas.transpose(1, 0)).permute(2, 0, 1) + m.th_v_template
        joints = torch.matmul(m.th_J_regressor, v_shaped)  # (B, 16, 3)
        v_posed = v_shaped + torch.matmul(m.th_posedirs, pose_map.transpose(0, 1).unsqueeze(0)).permute(2, 0, 1)

        root_trans = _with_zeros(torch.cat([root_rot, joints[:, 0].contiguous().view(batch, 3, 1)], dim=2))
        all_rots = rot_map.view(batch, 16, 3, 3)
        parent_flt, parent_j = root_trans.unsqueeze(1).repeat(1, 5, 1, 1).view(-1, 4, 4), joints[:, [0] * 5]
        level_transforms = []
        for level in LEVELS:
            level_j = joints[:, level]
            rel = torch.cat([all_rots[:, level], (level_j - parent_j).unsqueeze(3)], dim=3).view(-1, 3, 4)
            parent_flt = torch.matmul(parent_flt, _with_zeros(rel))
            parent_j = level_j
            level_transforms.append(parent_flt.view(batch, 5, 4, 4))
        transforms = torch.cat([root_trans.unsqueeze(1)] + level_transforms, dim=1)[:, LEVEL_TO_MANO_ORDER]

        joint_h = torch.cat([joints, joints.new_zeros(batch, 16, 1)], dim=2)
        moved = torch.matmul(transforms, joint_h.unsqueeze(3))  # (B, 16, 4, 1)
        rel_transforms = transforms - torch.cat([moved.new_zeros(batch, 16, 4, 3), moved], dim=3)
        per_vertex = torch.matmul(rel_transforms.permute(0, 2, 3, 1), m.th_weights.transpose(0, 1))  # (B,4,4,V)
        rest_h = torch.cat([v_posed.transpose(2, 1), torch.ones((batch, 1, v_posed.shape[1]),
                                                                dtype=v_posed.dtype, device=v_posed.device)], 1)
        verts = (per_vertex * rest_h.unsqueeze(1)).sum(2).transpose(2, 1)[:, :, :3]

        jtr = torch.cat([transforms[:, :, :3, 3], verts[:, self.tips]], dim=1)[:, list(MANO_TO_MANOPTH_ORDER)]
        return verts * 1000, jtr * 1000
