"""SimpleHand ("A Simple Baseline for Efficient Hand Mesh Reconstruction", CVPR'24) as in UniHOPE's baselines.

Spec: docs/official-baselines.md §8 (model ``simple_hand``), §2.2-§2.3 (MANO layer, J21 regressor), §15.
Image (B, 3, 224, 224) RGB in [0, 1] -> ``img - 0.5`` -> timm FastViT-MA36 features (B, 1216, 7, 7) ->
(a) global average -> 21 2D joints ``uv`` normalised to the crop; (b) :class:`MeshHead`: deconvolved features
sampled at those joints -> 21 tokens -> three attention stages upsampling the tokens 21 -> 84 -> 336 -> 778
-> vertices; joints = J21 @ vertices.

Batch keys read: ``img``; optional ``mano_param`` (B, 58) = [48 axis-angle pose (flat-hand-mean, right hand),
10 betas] for the GT meshes. Outputs (train and test alike, metres):
    ``uv`` (B, 42)                 2D joints (u0, v0, u1, ...) in [0, 1] of the crop, manopth order;
    ``pred_verts3d_cam`` (B, 778, 3), ``pred_joints3d_cam`` (B, 21, 3)  camera-aligned axes, translation-free:
        the network is trained to put the mesh relative to a root (models/simplehand_loss.py), and the
        evaluation root-aligns predictions (docs/official-data.md §4.1), so only the relative shape counts;
    ``gt_verts3d_cam`` / ``gt_joints3d_cam`` with ``mano_param``: the MANO layer's mesh (MANO frame, no
        translation), as every model of the project reports it.
The output key ``uv`` is the official name; it shadows the batch's GT ``uv`` (B, 21, 2) when the two dicts are
merged for metrics (no metric reads it).

Parameter names and the state_dict order follow tests/official_keys/keys_simplehand.txt (1,334 entries): timm's
un-reparameterised ``fastvit_ma36`` under ``backbone.*`` (with its unused ImageNet ``head.fc``), ``avg_pool``,
``keypoints_2d_head``, ``mesh_head.*`` and the 9 MANO buffers ``mano_layer.*``. The J21 regressor
``mano_joint_reg`` is a non-persistent buffer (a plain tensor, not in checkpoints, as official).

Differences from the official code: no weights are downloaded (``BACKBONE.pretrain`` is ignored; a local timm
weight file is loaded from ``model.backbone_weights``), and only timm backbones are built (the unused ``hiera``
branch of the official constructor is refused with an error).
"""
from __future__ import annotations

import inspect
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from models.blocks.gt_mesh import gt_mesh_outputs
from models.blocks.mano_head import right_hand_mano_layer
from models.registry import register_model
from utils.checkpoint import load_checkpoint, load_weights
from utils.errors import ConfigKeyError
from utils.hand_conventions import NUM_HAND_JOINTS, NUM_MANO_VERTS, OFFICIAL_J21_TIP_VERTS, j21_regressor
from utils.mano_io import resolve_mano_root

__all__ = ["SimpleHand", "MeshHead", "AttentionBlock", "mesh_joint_regressor", "sine_position_map",
           "build_simple_hand", "OFFICIAL_J21_TIP_VERTS", "INPUT_SIZE"]

INPUT_SIZE = 224           # the 7x7 average pool after the stride-32 backbone fixes the input size
IMAGE_OFFSET = 0.5         # the network sees img - 0.5
POOL_SIZE = INPUT_SIZE // 32

ATTENTION_HEADS = 4
MLP_RATIO = 4
POSITION_TEMPERATURE = 1e4
POSITION_EPS = 1e-6        # DETR's PositionEmbeddingSine normalisation epsilon


def mesh_joint_regressor(mano_joint_regressor: torch.Tensor, tip_verts=OFFICIAL_J21_TIP_VERTS) -> torch.Tensor:
    """The 21-joint regressor from mesh vertices (official ``MANO.joint_regressor``).

    Args:
        mano_joint_regressor: (16, 778) MANO joint regressor (MANO's native joint order).
        tip_verts: 5 fingertip vertex ids, thumb to little.
    Returns:
        (21, 778): the 16 MANO rows plus one-hot tip rows, in manopth order (wrist, thumb1-4, ..., little1-4).
    """
    regressor = j21_regressor(mano_joint_regressor.detach().cpu().numpy(), tip_verts)
    return torch.from_numpy(regressor).to(device=mano_joint_regressor.device, dtype=mano_joint_regressor.dtype)


def sine_position_map(height: int, width: int, num_feats: int, like: torch.Tensor) -> torch.Tensor:
    """DETR-style absolute sine position map (normalised cumulative coordinates x 2 pi, temperature 1e4).

    Returns (1, 2 * num_feats, height, width) with the device/dtype of ``like``: channels [y-part | x-part],
    each interleaving sin (even frequencies) and cos (odd frequencies).
    """
    ones = torch.ones(1, height, width, device=like.device, dtype=like.dtype)
    y = ones.cumsum(1)
    x = ones.cumsum(2)
    y = y / (y[:, -1:, :] + POSITION_EPS) * 2 * math.pi
    x = x / (x[:, :, -1:] + POSITION_EPS) * 2 * math.pi
    index = torch.arange(num_feats, device=like.device, dtype=like.dtype)
    frequencies = POSITION_TEMPERATURE ** (2 * torch.div(index, 2, rounding_mode="floor") / num_feats)

    def encode(coordinate):  # (1, H, W) -> (1, H, W, num_feats)
        angles = coordinate[..., None] / frequencies
        return torch.stack((angles[..., 0::2].sin(), angles[..., 1::2].cos()), dim=4).flatten(3)

    return torch.cat((encode(y), encode(x)), dim=3).permute(0, 3, 1, 2)


class AttentionBlock(nn.Module):
    """Pre-norm transformer block on tokens (B, N, dim): x += MHA(LN(x)); x += MLP(LN(x)), each with DropPath."""

    def __init__(self, dim: int, dropout: float = 0.1, drop_path: float = 0.1):
        super().__init__()
        from timm.layers import DropPath, Mlp  # optional package, needed by SimpleHand only

        self.norm1 = nn.LayerNorm(dim)
        self.token_mixer = nn.MultiheadAttention(dim, ATTENTION_HEADS, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(in_features=dim, hidden_features=MLP_RATIO * dim)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        normed = self.norm1(tokens)
        tokens = tokens + self.drop_path(self.token_mixer(normed, normed, normed, need_weights=False)[0])
        return tokens + self.drop_path(self.mlp(self.norm2(tokens)))


class TokenUpsample(nn.Module):
    """Linear map along the token axis: (B, N_in, C) -> (B, N_out, C)."""

    def __init__(self, in_tokens: int, out_tokens: int):
        super().__init__()
        self.upsample = nn.Linear(in_tokens, out_tokens)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.upsample(tokens.transpose(1, 2)).transpose(1, 2)


class MeshHead(nn.Module):
    """Backbone features + 2D joints -> 778 mesh vertices (official ``MeshHead``; arguments = ``MESH_HEAD``).

    Args:
        in_channels: backbone feature channels (1216).
        depths: attention blocks per stage ([1, 1, 1]).
        token_nums: tokens entering each stage ([21, 84, 336]); the last stage upsamples to 778 vertices.
        dims: token width of each stage ([256, 128, 64]); the deconvolution outputs ``dims[0]`` channels.
        dropout: attention dropout and block DropPath probability (0.1).
        first_prenorms, block_types: official options; only pre-norm ``"attention"`` blocks exist here.
    forward(features (B, in_channels, 7, 7), uv (B, 21, 2) in [0, 1] of the crop) -> vertices (B, 778, 3).
    """

    def __init__(self, in_channels=1216, depths=(1, 1, 1), token_nums=(21, 84, 336), dims=(256, 128, 64),
                 dropout=0.1, first_prenorms=(True, True, True), block_types=("attention",) * 3):
        super().__init__()
        stages = len(dims)
        for name, values in (("depths", depths), ("token_nums", token_nums), ("first_prenorms", first_prenorms),
                             ("block_types", block_types)):
            if len(values) != stages:
                raise ValueError(f"MESH_HEAD.{name} must have {stages} entries (one per stage), got {list(values)}")
        if any(kind != "attention" for kind in block_types):
            raise ValueError(f"MESH_HEAD.block_types: only 'attention' blocks are implemented, got {list(block_types)}")
        if not all(first_prenorms):
            raise ValueError(f"MESH_HEAD.first_prenorms: only pre-norm blocks are implemented, got {first_prenorms}")
        if dims[0] % 2:
            raise ValueError(f"MESH_HEAD.dims[0] must be even (sine position map halves), got {dims[0]}")
        in_dims = [dims[0]] + list(dims[:-1])  # token width entering each stage
        out_tokens = list(token_nums[1:]) + [NUM_MANO_VERTS]
        for k in range(stages):
            embedding = nn.Parameter(torch.empty(1, token_nums[k], in_dims[k]))
            nn.init.trunc_normal_(embedding, std=0.02)
            self.register_parameter(f"pos_emb_{k + 1}", embedding)
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(in_channels, dims[0], kernel_size=4, stride=4, padding=0, bias=False),
            nn.BatchNorm2d(dims[0]), nn.ReLU(inplace=True))
        for k in range(stages):
            setattr(self, f"proj_{k + 1}", nn.Linear(in_dims[k], dims[k]))
            setattr(self, f"encoder_{k + 1}", nn.Sequential(
                *[AttentionBlock(dims[k], dropout=dropout, drop_path=dropout) for _ in range(depths[k])]))
            setattr(self, f"upsample_{k + 1}", TokenUpsample(token_nums[k], out_tokens[k]))
        self.pred_final = nn.Linear(dims[-1], 3)
        self.num_stages = stages
        self.position_feats = dims[0] // 2

    def forward(self, features: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
        grid_features = self.deconv(features)                                  # (B, dims[0], 28, 28)
        height, width = grid_features.shape[-2:]
        grid_features = grid_features + sine_position_map(height, width, self.position_feats, grid_features)
        grid = ((uv - 0.5) * 2).clamp(-1, 1).unsqueeze(2)                       # (B, 21, 1, 2) as (x, y)
        tokens = F.grid_sample(grid_features, grid, align_corners=True)        # (B, dims[0], 21, 1)
        tokens = tokens.squeeze(-1).transpose(1, 2)                             # (B, 21, dims[0])
        for k in range(1, self.num_stages + 1):
            tokens = tokens + getattr(self, f"pos_emb_{k}")
            tokens = getattr(self, f"proj_{k}")(tokens)
            tokens = getattr(self, f"encoder_{k}")(tokens)
            tokens = getattr(self, f"upsample_{k}")(tokens)                     # (B, next token count, dims[k-1])
        return self.pred_final(tokens)                                          # (B, 778, 3)


class SimpleHand(nn.Module):
    """FastViT backbone + 2D-joint head + :class:`MeshHead` (see the module docstring for inputs/outputs).

    Args:
        backbone: a timm model with ``forward_features`` -> (B, C, 7, 7) for 224 px input (``fastvit_ma36``).
        mano_layer: right-hand MANO layer (axis-angle, no PCA, flat mean) for the GT mesh and the J21 regressor.
        uv_in_features, uv_out_features: the ``keypoints_2d_head`` Linear (1216 -> 42).
        mesh_head: keyword arguments of :class:`MeshHead` (the official ``MESH_HEAD`` block).
        tip_verts: fingertip vertices of the J21 regressor (official quirk by default).
    """

    def __init__(self, backbone: nn.Module, mano_layer: nn.Module, uv_in_features=1216, uv_out_features=42,
                 mesh_head: dict | None = None, tip_verts=OFFICIAL_J21_TIP_VERTS):
        super().__init__()
        if uv_out_features != 2 * NUM_HAND_JOINTS:
            raise ValueError(f"UV_HEAD.out_features must be {2 * NUM_HAND_JOINTS} (21 joints x 2), "
                             f"got {uv_out_features}")
        self.backbone = backbone
        self.avg_pool = nn.AvgPool2d(POOL_SIZE, stride=1)
        self.keypoints_2d_head = nn.Linear(uv_in_features, uv_out_features)
        self.mesh_head = MeshHead(**(mesh_head or {}))
        self.mano_layer = mano_layer
        self.register_buffer("mano_joint_reg", mesh_joint_regressor(mano_layer.th_J_regressor, tip_verts),
                             persistent=False)

    def forward(self, batch: dict) -> dict:
        img = batch["img"]
        if img.dim() != 4 or tuple(img.shape[1:]) != (3, INPUT_SIZE, INPUT_SIZE):
            raise ValueError(f"SimpleHand needs batch['img'] of shape (B, 3, {INPUT_SIZE}, {INPUT_SIZE}) "
                             f"(data.input_img_shape = [{INPUT_SIZE}, {INPUT_SIZE}]), got {tuple(img.shape)}")
        features = self.backbone.forward_features(img - IMAGE_OFFSET)           # (B, 1216, 7, 7)
        uv = self.keypoints_2d_head(self.avg_pool(features).flatten(1))         # (B, 42)
        verts = self.mesh_head(features, uv.view(-1, NUM_HAND_JOINTS, 2))       # (B, 778, 3) m
        joints = torch.einsum("jv,bvc->bjc", self.mano_joint_reg.to(verts.dtype), verts)  # (B, 21, 3) m
        output = {"uv": uv, "pred_joints3d_cam": joints, "pred_verts3d_cam": verts}
        if "mano_param" in batch:
            output.update(gt_mesh_outputs(self.mano_layer, batch))
        return output


def build_backbone(model_name: str, drop_path_rate: float) -> nn.Module:
    """A randomly initialised timm backbone (never downloads weights)."""
    if "hiera" in model_name:
        raise ValueError(f"model.BACKBONE.model_name {model_name!r}: hiera backbones (official, unused by the "
                         "released configs) are not supported; use a timm model such as 'fastvit_ma36'")
    import timm  # optional package, needed by SimpleHand only

    return timm.create_model(model_name, pretrained=False, drop_path_rate=drop_path_rate)


def load_backbone_weights(backbone: nn.Module, path) -> None:
    """Strictly load a local timm state dict (``.pth`` / ``.bin`` / ``.safetensors``) into ``backbone``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"backbone weights file {path} does not exist (model.backbone_weights)")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file  # only for .safetensors weight files

        state_dict = load_file(str(path))
    else:
        state_dict = load_checkpoint(path)["state_dict"]
    load_weights(backbone, state_dict, strict=True, source=f"{path} (model.backbone_weights)")


def _required_block(cfg, name: str) -> dict:
    block = getattr(cfg.model, name)
    if not isinstance(block, dict):
        raise ConfigKeyError(f"{cfg.source}: model '{cfg.model.name}' needs the block model.{name} (see "
                       "experiment/simplehand.dexycb_s0.h-ho_train/cfg.json)")
    return block


@register_model("simple_hand")
def build_simple_hand(cfg) -> SimpleHand:
    """SimpleHand from an official config: ``model.BACKBONE`` (model_name, drop_path_rate), ``model.UV_HEAD``
    (in_features, out_features), ``model.MESH_HEAD`` (MeshHead arguments), ``model.backbone_weights``,
    ``base.mano_root``. ``BACKBONE.pretrain``, ``out_feature_channel``, ``DEPTH_HEAD`` and ``LOSSES`` are not
    read (the official code does not use them either, except ``pretrain`` which downloaded weights)."""
    backbone_cfg, uv_cfg = _required_block(cfg, "BACKBONE"), _required_block(cfg, "UV_HEAD")
    mesh_cfg = _required_block(cfg, "MESH_HEAD")
    try:
        backbone = build_backbone(backbone_cfg["model_name"], float(backbone_cfg["drop_path_rate"]))
        uv_in, uv_out = uv_cfg["in_features"], uv_cfg["out_features"]
    except KeyError as err:
        raise ConfigKeyError(f"{cfg.source}: missing key {err} in model.BACKBONE / model.UV_HEAD") from None
    if cfg.model.backbone_weights:
        load_backbone_weights(backbone, cfg.model.backbone_weights)
    known = set(inspect.signature(MeshHead).parameters)
    if set(mesh_cfg) - known:
        raise ConfigKeyError(f"{cfg.source}: unknown key(s) {sorted(set(mesh_cfg) - known)} in model.MESH_HEAD; "
                       f"known: {sorted(known)}")
    mano_layer = right_hand_mano_layer(resolve_mano_root(cfg.base.mano_root))
    return SimpleHand(backbone, mano_layer, uv_in, uv_out, mesh_head=mesh_cfg)
