"""MobRecon (CVPR'22) as in UniHOPE's comparison: DenseStack backbone + DSConv spiral mesh decoder
(official ``MobRecon_DS``, model name ``mobrecon``, 128 px crops).

Spec: docs/official-baselines.md §2.3-§2.4, §5, §7. The mesh decoder's assets (spirals, up-sampling
matrices) are derived from the MANO template by :mod:`models.mesh_assets` in the builder and passed in; the
model reads no file. Predictions are a mesh regressed directly in the MANO frame (metres); 21 joints =
J21 @ vertices with the official fixed regressor (not in the state_dict).

Batch keys read: ``img`` (B, 3, 128, 128) RGB in [0, 1]; optional ``mano_pose`` (B, 48) + ``mano_shape``
(B, 10) or ``mano_param`` (B, 58) (GT mesh), ``val_mano_pose`` (B, 48), ``joints_img`` (B, 21, 2).
Outputs: ``pred_verts3d_cam`` (B, 778, 3) m, ``pred_joints3d_cam`` (B, 21, 3) m, ``pred_joints_img``
(B, 21, 2) crop-normalised uv, aliases ``pred_verts3d_w_gr`` / ``pred_joints3d_w_gr``; with GT
``gt_verts3d_cam`` / ``gt_joints3d_cam`` (MANO of the GT parameters, m), ``gt_*_w_gr`` from ``val_mano_pose``
and ``joints_img`` (copied input).
Not reproduced: the official 6-channel (contrastive) input path, which concatenates incompatible shapes.
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models.blocks.gt_mesh import gt_mesh_outputs, gt_pose_and_betas, mano_mesh_m
from models.blocks.mano_head import right_hand_mano_layer
from models.blocks.mobile import DenseStackBackbone
from models.blocks.spiral import DSConv, SpiralMeshDecoder
from models.mesh_assets import load_or_build_mesh_hierarchy
from models.registry import register_model
from utils.checkpoint import load_checkpoint
from utils.errors import CheckpointError
from utils.hand_conventions import OFFICIAL_J21_TIP_VERTS, j21_regressor
from utils.mano_io import load_mano_assets, resolve_mano_root

__all__ = ["MobRecon", "build_mobrecon", "j21_regressor", "MeshDecoderAssets", "mesh_decoder_assets",
           "mano_gt_outputs", "load_backbone_weights", "check_input_image", "decoder_inputs_from_config",
           "J21_TIP_VERTS"]

J21_TIP_VERTS = OFFICIAL_J21_TIP_VERTS
DECODER_CHANNELS = (32, 64, 128, 256)
INPUT_SIZE = 128


@dataclass(frozen=True)
class MeshDecoderAssets:
    """Arrays a MobRecon / H2ONet model is built from: ``spirals`` per level 0..3 (N_k, 9) int64 tensors,
    ``up_matrices`` per step (N_k, N_{k+1}) float32 tensors, ``joint_regressor`` (21, 778) float32 tensor."""

    spirals: list
    up_matrices: list
    joint_regressor: torch.Tensor


def mesh_decoder_assets(mano_root, cache_dir=None):
    """Decoder assets from the right-hand MANO file in ``mano_root`` (hierarchy cached in ``cache_dir``)."""
    mano = load_mano_assets(mano_root, "right")
    hierarchy, _ = load_or_build_mesh_hierarchy(mano.v_template, mano.faces, cache_dir)
    return MeshDecoderAssets(
        spirals=[torch.from_numpy(np.ascontiguousarray(s)) for s in hierarchy.spirals],
        up_matrices=[torch.from_numpy(u) for u in hierarchy.dense_up_matrices(np.float32)],
        joint_regressor=torch.from_numpy(j21_regressor(mano.J_regressor)))


def mano_gt_outputs(mano_layer, batch):
    """GT meshes from the batch's MANO parameters (metres, MANO frame): ``gt_verts3d_cam`` (B, 778, 3),
    ``gt_joints3d_cam`` (B, 21, 3) (the official ``mano_pose`` + ``mano_shape`` first, else ``mano_param``), and
    ``gt_verts3d_w_gr`` / ``gt_joints3d_w_gr`` from ``val_mano_pose`` when present. Empty without GT parameters."""
    out = gt_mesh_outputs(mano_layer, batch, prefer_official_pair=True)
    if out and "val_mano_pose" in batch:
        shape = gt_pose_and_betas(batch, prefer_official_pair=True)[1]
        verts, joints = mano_mesh_m(mano_layer, batch["val_mano_pose"], shape)
        out.update(gt_verts3d_w_gr=verts, gt_joints3d_w_gr=joints)
    return out


def check_input_image(img):
    """The DenseStack models take one 3-channel 128x128 crop per sample."""
    if img.dim() != 4 or img.shape[1] != 3 or tuple(img.shape[-2:]) != (INPUT_SIZE, INPUT_SIZE):
        raise ValueError(f"batch['img'] must be (B, 3, {INPUT_SIZE}, {INPUT_SIZE}) for MobRecon / H2ONet, "
                         f"got {tuple(img.shape)}")


class MobRecon(nn.Module):
    """Official ``MobRecon_DS``: children ``backbone``, ``decoder3d``, ``mano_layer`` (GT only).

    Args: mano_layer (right hand, flat mean, no PCA; forward -> mm), assets (:class:`MeshDecoderAssets`).
    """

    def __init__(self, mano_layer, assets):
        super().__init__()
        self.backbone = DenseStackBackbone()
        self.decoder3d = SpiralMeshDecoder(DSConv, assets.spirals, assets.up_matrices,
                                           out_channels=DECODER_CHANNELS)
        self.mano_layer = mano_layer
        self.register_buffer("mano_joint_reg", assets.joint_regressor, persistent=False)

    def forward(self, batch):
        check_input_image(batch["img"])
        features = self.backbone(batch["img"])
        verts = self.decoder3d(features["uv"], features["latent"])
        joints = torch.matmul(self.mano_joint_reg, verts)
        out = {"pred_verts3d_cam": verts, "pred_joints3d_cam": joints, "pred_verts3d_w_gr": verts,
               "pred_joints3d_w_gr": joints, "pred_joints_img": features["uv"]}
        out.update(mano_gt_outputs(self.mano_layer, batch))
        if "joints_img" in batch:
            out["joints_img"] = batch["joints_img"]
        return out


def load_backbone_weights(backbone, path):
    """Load a DenseStack checkpoint (official ``densestack.pth``) non-strictly into ``backbone``, as the
    official constructor does; a ``state_dict`` wrapper and ``module.`` / ``backbone.`` prefixes are
    stripped. Raises if the file is missing or shares no tensor name and shape with the backbone."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"DenseStack weights {path} do not exist (model.backbone_weights)")
    state = load_checkpoint(path)["state_dict"]
    own = backbone.state_dict()
    matched = {}
    for key, value in state.items():
        for prefix in ("module.", "backbone."):
            key = key[len(prefix):] if key.startswith(prefix) else key
        if key in own and own[key].shape == value.shape:
            matched[key] = value
    if not matched:
        raise CheckpointError(f"{path}: no tensor matches the DenseStack backbone (model.backbone_weights); "
                              f"first keys in the file: {list(state)[:5]}")
    backbone.load_state_dict(matched, strict=False)
    return sorted(matched)


def decoder_inputs_from_config(cfg):
    """(mano_layer, MeshDecoderAssets) for a config: MANO folder from ``cfg.base.mano_root`` (None ->
    $MANO_ROOT); mesh-hierarchy cache folder $UNIHOPE_CACHE_DIR (default ~/.cache/unihope)."""
    mano_root = resolve_mano_root(cfg.base.mano_root)
    return right_hand_mano_layer(mano_root), mesh_decoder_assets(mano_root)


@register_model("mobrecon")
def build_mobrecon(cfg):
    """MobRecon from an official config (reads base.mano_root, model.backbone_weights; ``model.pretrain``
    names the official densestack.pth, which is loaded only when given as ``model.backbone_weights``)."""
    model = MobRecon(*decoder_inputs_from_config(cfg))
    if cfg.model.backbone_weights is not None:
        load_backbone_weights(model.backbone, cfg.model.backbone_weights)
    return model
