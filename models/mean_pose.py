"""The trivial baseline ``mean_pose``: the mean root-relative training hand mesh, predicted for every sample.

It learns nothing from images; its two buffers are set by ``engine/mean_pose_fit.py`` from the GT meshes
of a training split. Evaluated with the same scripts as every model, it gives the error any image model has to
beat (the evaluation root-aligns predictions to the GT wrist, so only the hand's articulation, shape and global
orientation count).
"""
from __future__ import annotations

import torch
from torch import nn

from models.blocks.gt_mesh import mano_mesh_m, split_mano_param
from models.blocks.mano_head import right_hand_mano_layer
from models.registry import register_model
from utils.hand_conventions import MANO_PARAM_DIM, NUM_HAND_JOINTS, NUM_MANO_VERTS
from utils.mano_io import resolve_mano_root

WRIST = 0


class MeanPose(nn.Module):
    """Predicts ``mean_verts`` (778, 3) and ``mean_joints`` (21, 3), metres, wrist at the origin.

    Args:
        mano_layer: right-hand flat-mean MANO layer, used for the GT meshes of ``mano_param`` (B, 58).
    """

    def __init__(self, mano_layer):
        super().__init__()
        self.mano_layer = mano_layer
        self.register_buffer("mean_verts", torch.zeros(NUM_MANO_VERTS, 3))
        self.register_buffer("mean_joints", torch.zeros(NUM_HAND_JOINTS, 3))

    def gt_meshes(self, mano_param: torch.Tensor):
        """GT (verts (B, 778, 3), joints (B, 21, 3)) in metres from ``mano_param`` (B, 58): pose 48, betas 10."""
        return mano_mesh_m(self.mano_layer, *split_mano_param(mano_param))

    def forward(self, batch: dict) -> dict:
        size = batch["img"].shape[0]
        out = {"pred_verts3d_cam": self.mean_verts.expand(size, -1, -1),
               "pred_joints3d_cam": self.mean_joints.expand(size, -1, -1)}
        if "mano_param" in batch:
            out["gt_verts3d_cam"], out["gt_joints3d_cam"] = self.gt_meshes(batch["mano_param"][:, :MANO_PARAM_DIM])
        return out

    @torch.no_grad()
    def set_mean(self, verts: torch.Tensor, joints: torch.Tensor) -> None:
        """Set the prediction from training meshes (N, 778, 3) / (N, 21, 3): each is made wrist-relative
        (joint 0) and averaged."""
        wrist = joints[:, WRIST:WRIST + 1]
        self.mean_verts.copy_((verts - wrist).mean(0))
        self.mean_joints.copy_((joints - wrist).mean(0))


@register_model("mean_pose")
def build_mean_pose(cfg):
    """The trivial baseline (reads base.mano_root)."""
    return MeanPose(right_hand_mano_layer(resolve_mano_root(cfg.base.mano_root)))
