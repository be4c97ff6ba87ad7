"""SimpleHand training loss (``loss.name = "simple_hand"``). Spec: docs/official-baselines.md §11, §8.2.

Three L1 terms, each "per point: sum over coordinates of |difference|", weighted, averaged over points and batch:
    uv_loss       = w_uv       * mean_{b,j} uv_valid[b, j] * sum_c |uv_pred - uv|          (crop-normalised 2D)
    joints_loss   = w_joints   * mean_{b,j} xyz_valid[b]   * sum_c |J_pred - J_target|     (metres)
    vertices_loss = w_vertices * mean_{b,v} xyz_valid[b]   * sum_c |V_pred - V_target|     (metres)
    total = their sum; official weights 1, 10, 10 (hard-coded officially; ``cfg.model.LOSSES`` is not read).

Batch keys: ``uv`` (B, 21, 2), ``uv_valid`` (B, 21), ``xyz_valid`` (B,), and for the official target origin
``root_joint_flip`` (B, 3). Model outputs: ``uv`` (B, 42), ``pred_joints3d_cam`` (B, 21, 3),
``pred_verts3d_cam`` (B, 778, 3), ``gt_joints3d_cam`` (B, 21, 3), ``gt_verts3d_cam`` (B, 778, 3) (MANO frame).

3D target origin (where the network is asked to put the mesh), ``target_origin``:
    ``"gt_wrist"`` (default, the intended behaviour): root-relative GT, ``gt - gt_joints3d_cam[:, 0]``;
    ``"root_joint_flip"`` (official quirk, §8.2 / §15 item 7): ``gt - root_joint_flip``, i.e. the MANO-frame GT
        shifted by the camera-space wrist, which asks the network for an image-dependent absolute offset.
The evaluation root-aligns predictions, so both train the same relative shape; the default spares the network
the offset.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from models.losses import register_loss
from utils.hand_conventions import NUM_HAND_JOINTS

__all__ = ["SimpleHandLoss", "SimpleHandLossWeights", "weighted_l1", "TARGET_ORIGINS"]

TARGET_ORIGINS = ("gt_wrist", "root_joint_flip")


@dataclass(frozen=True)
class SimpleHandLossWeights:
    """Term weights (official values)."""
    uv: float = 1.0
    joints: float = 10.0
    vertices: float = 10.0


def weighted_l1(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """mean over (batch, points) of ``weight * sum_c |pred - target|``.

    pred, target: (B, N, C); weight: broadcastable to (B, N) (per point (B, N) or per sample (B, 1)).
    """
    return ((pred - target).abs().sum(-1) * weight).mean()


class SimpleHandLoss:
    """``simple_hand``: 2D joints, 3D joints and vertices, L1 (see the module docstring)."""

    def __init__(self, weights: SimpleHandLossWeights = SimpleHandLossWeights(), target_origin: str = "gt_wrist"):
        if target_origin not in TARGET_ORIGINS:
            raise ValueError(f"target_origin must be one of {TARGET_ORIGINS}, got {target_origin!r}")
        self.w, self.target_origin = weights, target_origin

    def origin(self, batch: dict, outputs: dict) -> torch.Tensor:
        """(B, 1, 3) point subtracted from the GT joints and vertices."""
        if self.target_origin == "gt_wrist":
            return outputs["gt_joints3d_cam"][:, :1]
        return batch["root_joint_flip"].reshape(-1, 1, 3).to(outputs["gt_joints3d_cam"].dtype)

    def __call__(self, batch: dict, outputs: dict) -> dict:
        if "gt_joints3d_cam" not in outputs:
            raise KeyError("simple_hand loss needs the GT meshes: the batch must carry 'mano_param'")
        pred_uv = outputs["uv"].reshape(-1, NUM_HAND_JOINTS, 2)
        uv_valid = batch["uv_valid"].to(pred_uv.dtype)
        xyz_valid = batch["xyz_valid"].reshape(-1, 1).to(pred_uv.dtype)
        origin = self.origin(batch, outputs)
        losses = {
            "uv_loss": self.w.uv * weighted_l1(pred_uv, batch["uv"].to(pred_uv.dtype), uv_valid),
            "joints_loss": self.w.joints * weighted_l1(outputs["pred_joints3d_cam"],
                                                       outputs["gt_joints3d_cam"] - origin, xyz_valid),
            "vertices_loss": self.w.vertices * weighted_l1(outputs["pred_verts3d_cam"],
                                                           outputs["gt_verts3d_cam"] - origin, xyz_valid),
        }
        losses["total"] = sum(losses.values())
        return losses


@register_loss("simple_hand")
def build_simple_hand_loss(cfg):
    """Official weights; the intended root-relative target (``target_origin="gt_wrist"``)."""
    return SimpleHandLoss()
