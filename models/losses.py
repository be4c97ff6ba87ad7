"""Training losses: UniHOPE (``hflnet_grasping_objconf``), HFL-Net (``hflnet``), grasp classifier.

Reference: docs/official-model.md §4. Each loss returns a dict of named scalar terms (float tensors) plus
``total`` = their sum. Paired (contrastive) batches stack sub-sample ``i`` ("part", 0 = original image,
1 = de-occluded partner or duplicate) along dim 1: e.g. ``pred verts (B, 778*P, 3)``, ``gt_grasping (B, P)``.

Fixes of official latent bugs (documented here, tested in tests/test_losses.py):
- a batch without any grasping sample gives a zero float object / distillation loss, not an integer tensor;
- term-weight overrides (``mano_lambda_verts3d``, ...) in ``cfg.loss.weight`` set the term weight and are not
  mistaken for distillation feature names; every other key of ``cfg.loss.weight`` is a distillation feature.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from models.blocks.object_head import NUM_OBJECT_KEYPOINTS
from utils.errors import ConfigKeyError
from utils.hand_conventions import NUM_BETAS, NUM_HAND_JOINTS, NUM_MANO_JOINTS, NUM_MANO_VERTS
from utils.registry import registering

LOSSES: dict = {}


def register_loss(name: str):
    """Decorator registering ``builder(cfg) -> loss module`` under ``name``; a duplicate name is an error."""
    return registering(LOSSES, "loss", name)


@dataclass(frozen=True)
class LossWeights:
    """Term weights (official defaults) and the distillation feature weights."""
    mano_lambda_verts3d: float = 1e4
    mano_lambda_joints3d: float = 1e4
    mano_lambda_manopose: float = 10.0
    mano_lambda_manoshape: float = 0.1
    lambda_joints2d: float = 100.0
    lambda_objects: float = 500.0  # regression weight; confidence weight = lambda_objects / 5
    out_obj_conf_weight: float = 10.0
    hand_occ_cls_weight: float = 1.0
    distillation: dict = field(default_factory=dict)

    @classmethod
    def from_config_weights(cls, weights: dict) -> "LossWeights":
        term_names = {f for f in cls.__dataclass_fields__ if f != "distillation"}
        terms = {k: float(v) for k, v in weights.items() if k in term_names}
        features = {k: float(v) for k, v in weights.items() if k not in term_names and k != "obj_cls_weight"}
        return cls(**terms, distillation=features)


def part(tensor: torch.Tensor, index: int, size: int) -> torch.Tensor:
    """Sub-sample ``index`` of a paired tensor stacked along dim 1 in blocks of ``size``."""
    return tensor[:, index * size:(index + 1) * size]


def zero_like(reference: torch.Tensor) -> torch.Tensor:
    """A float zero on the device of ``reference`` that still connects to the graph (for DDP)."""
    return reference.sum() * 0.0


def mano_loss(pred: dict, gt: dict, parts: list[int], w: LossWeights) -> torch.Tensor:
    """MSE on vertices, joints (m), rotation matrices and betas, averaged over the training parts."""
    total = 0.0
    for i in parts:
        total = total + (
            w.mano_lambda_verts3d * F.mse_loss(part(pred["verts3d"], i, NUM_MANO_VERTS),
                                               part(gt["verts3d"], i, NUM_MANO_VERTS))
            + w.mano_lambda_joints3d * F.mse_loss(part(pred["joints3d"], i, NUM_HAND_JOINTS),
                                                  part(gt["joints3d"], i, NUM_HAND_JOINTS))
            + w.mano_lambda_manopose * F.mse_loss(part(pred["mano_pose"], i, NUM_MANO_JOINTS),
                                                  part(gt["mano_pose"], i, NUM_MANO_JOINTS))
            + w.mano_lambda_manoshape * F.mse_loss(part(pred["mano_shape"], i, NUM_BETAS),
                                                   part(gt["mano_shape"], i, NUM_BETAS)))
    return total / len(parts)


def joint2d_loss(pred_uv: torch.Tensor, gt_uv: torch.Tensor, parts: list[int], w: LossWeights) -> torch.Tensor:
    """MSE of hand-box-normalised 2D joints ``(B, 21P, 2)``, averaged over the training parts."""
    total = sum(F.mse_loss(part(pred_uv, i, NUM_HAND_JOINTS), part(gt_uv, i, NUM_HAND_JOINTS)) for i in parts)
    return w.lambda_joints2d * total / len(parts)


def object_voting_loss(preds_obj: list, obj_p2d: torch.Tensor, obj_mask: torch.Tensor, sample_mask: torch.Tensor,
                       w: LossWeights) -> torch.Tensor:
    """Dense voting loss of part 0 on the selected samples.

    Args:
        preds_obj: ``[px, py, conf]``, each ``(B, R*P, R, 21)`` (R = 32 officially): keypoint x, y normalised to
            bbox_obj per cell, and the cell's confidence.
        obj_p2d: ``(B, 21P, 2)`` GT keypoints normalised to bbox_obj.
        obj_mask: ``(B, 32P, 32)`` object mask inside bbox_obj (resampled to R x R by nearest neighbour).
        sample_mask: ``(B,)`` bool, samples that contribute.
    Returns:
        ``lambda_objects * reg + lambda_objects / 5 * conf`` (zero float when no sample is selected).
    """
    grid = preds_obj[0].shape[2]  # R: side of the voting grid (32 in the official models)
    px, py, conf = (part(p, 0, grid)[sample_mask] for p in preds_obj)
    if px.shape[0] == 0:
        return zero_like(preds_obj[0])
    mask = part(obj_mask, 0, obj_mask.shape[2])[sample_mask].to(px.dtype)     # (N, M, M)
    if mask.shape[-1] != grid:  # dataset masks are 32 x 32; a smaller ROI (model.roi_res) votes on a coarser grid
        mask = F.interpolate(mask[:, None], size=(grid, grid), mode="nearest")[:, 0]
    mask = mask[..., None]                                                      # (N, R, R, 1)
    label = part(obj_p2d, 0, NUM_OBJECT_KEYPOINTS)[sample_mask].to(px.dtype)              # (N, 21, 2)
    lx, ly = label[:, None, None, :, 0] * mask, label[:, None, None, :, 1] * mask  # (N, 32, 32, 21)
    px, py = px * mask, py * mask
    reg = (px - lx).abs().mean() + (py - ly).abs().mean()
    target = (torch.exp(-torch.sqrt((py - ly) ** 2 + (px - lx) ** 2)) * mask).detach()
    conf_loss = (conf - target).abs().mean()
    return w.lambda_objects * reg + w.lambda_objects / 5.0 * conf_loss


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, weight: float) -> torch.Tensor:
    """Cross-entropy of part 0: ``logits (B, 2P)``, ``labels (B, P)`` or ``(B,)`` bool/int."""
    labels = labels[:, 0] if labels.dim() == 2 else labels
    return weight * F.cross_entropy(logits[:, :2], labels.long())


FEATURE_LOSSES = {"l1_loss": F.l1_loss, "mse_loss": F.mse_loss, "smooth_l1_loss": F.smooth_l1_loss}


def distillation_loss(features: torch.Tensor, sample_mask: torch.Tensor, weight: float, loss_func: str):
    """Self-distillation of the original-image features towards the de-occluded partner's.

    ``features (B, 2C, ...)`` holds [original | partner] along dim 1; the partner half is detached, so the
    gradient reaches only the original-image branch.
    """
    selected = features[sample_mask]
    if selected.shape[0] == 0:
        return zero_like(features)
    half = selected.shape[1] // 2
    return weight * FEATURE_LOSSES[loss_func](selected[:, :half], selected[:, half:].detach())


def _parts(cfg_train_part, paired: bool) -> list[int]:
    return list(cfg_train_part) if paired else [0]


def _is_paired(outputs: dict) -> bool:
    return outputs["pred_mano_results"]["verts3d"].shape[1] == 2 * NUM_MANO_VERTS


class HandObjectLoss:
    """``hflnet_grasping_objconf`` (UniHOPE) and, with ``switches=False``, ``hflnet`` (HFL-Net)."""

    def __init__(self, weights: LossWeights, train_part=(0, 1), loss_func: str = "l1_loss", switches: bool = True):
        if loss_func not in FEATURE_LOSSES:
            raise ConfigKeyError(f"unknown loss.loss_func {loss_func!r}; known: {sorted(FEATURE_LOSSES)}")
        self.w, self.train_part, self.loss_func, self.switches = weights, list(train_part), loss_func, switches

    def __call__(self, batch: dict, outputs: dict) -> dict:
        paired = _is_paired(outputs)
        parts = _parts(self.train_part, paired)
        grasp = batch["gt_grasping"]
        grasp0 = (grasp[:, 0] if grasp.dim() == 2 else grasp).bool()
        losses = {
            "mano_total_loss": mano_loss(outputs["pred_mano_results"], outputs["gt_mano_results"], parts, self.w),
            "joint2d_loss": joint2d_loss(outputs["preds_joints2d"][0], batch["joints_img"], parts, self.w),
        }
        obj_samples = grasp0 if self.switches else torch.ones_like(grasp0)
        losses["obj_total_loss"] = object_voting_loss(outputs["preds_obj"], batch["obj_p2d"], batch["obj_mask"],
                                                      obj_samples, self.w)
        if self.switches:
            losses["out_obj_conf_loss"] = classification_loss(outputs["pred_obj_conf"], grasp,
                                                              self.w.out_obj_conf_weight)
            losses["hand_occ_cls_loss"] = classification_loss(outputs["pred_hand_occ"], batch["gt_occ_cls"],
                                                              self.w.hand_occ_cls_weight)
            if paired:
                distill_samples = grasp0 & ~batch["is_filtered"].bool().reshape(-1)
                for name, weight in self.w.distillation.items():
                    if name not in outputs:
                        available = sorted(k for k in outputs if not k.startswith(("pred", "gt")))
                        raise ConfigKeyError(f"distillation feature '{name}' (from cfg.loss.weight) is not a model "
                                             f"output; available: {available}")
                    losses[name] = distillation_loss(outputs[name], distill_samples, weight, self.loss_func)
        losses["total"] = sum(losses.values())
        return losses


class GraspClassifierLoss:
    """``grasp_vit_classifier``: cross-entropy of the grasp logits against the GT grasp label."""

    def __call__(self, batch: dict, outputs: dict) -> dict:
        loss = classification_loss(outputs["pred_obj_conf"], batch["gt_grasping"], 1.0)
        return {"grasp_cls_loss": loss, "total": loss}


@register_loss("hflnet_grasping_objconf")
def build_unihope_loss(cfg):
    return HandObjectLoss(LossWeights.from_config_weights(cfg.loss.weight), cfg.train.train_part, cfg.loss.loss_func)


@register_loss("hflnet")
def build_hflnet_loss(cfg):
    return HandObjectLoss(LossWeights.from_config_weights(cfg.loss.weight), cfg.train.train_part, cfg.loss.loss_func,
                          switches=False)


@register_loss("grasp_vit_classifier")
def build_classifier_loss(cfg):
    return GraspClassifierLoss()


class EvaluationOnlyLoss:
    """``placeholder``: the loss name of the official A+B configs (classifier + hand-only + hand-object model),
    which are evaluation-only. Building it works (so every official config builds); calling it is an error that
    names the config and says where the sub-models are trained."""

    def __init__(self, source: str):
        self.source = source

    def __call__(self, batch: dict, outputs: dict) -> dict:
        raise RuntimeError(f"{self.source}: loss.name 'placeholder' marks an evaluation-only A+B config; train its "
                           "sub-models from their own experiment folders (classifier.*, h2onet.*, handoccnet.*, "
                           "hflnet.*) and evaluate with --resume_cls / --resume_h / --resume_ho")


@register_loss("placeholder")
def build_placeholder_loss(cfg):
    return EvaluationOnlyLoss(cfg.source)


def build_loss(cfg):
    """The loss named by ``cfg.loss.name``; a miss lists the known names."""
    name = cfg.loss.name
    if name not in LOSSES:
        raise ConfigKeyError(f"unknown loss.name {name!r} in {cfg.source}; known: {sorted(LOSSES)}")
    return LOSSES[name](cfg)
