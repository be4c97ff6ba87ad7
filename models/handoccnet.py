"""HandOccNet (CVPR'22) as used in the UniHOPE comparisons (official ``HandOccNet``, model name ``hand_occ_net``).

Spec: docs/official-baselines.md §3. A single-trunk FPN whose P2 map is pooled to 32 x 32 and split by a
spatial gate into a primary (hand) and a secondary (occluder) part; the Feature Injecting Transformer (FIT)
injects the secondary features into the primary ones, the Self-Enhancing Transformer (SET) refines the
result, and the regressor (hand joint head, hand encoder, MANO head of HFL-Net) predicts the MANO mesh.

Input: ``img_1`` if present else ``img``, (B, 3, 256, 256) RGB in [0, 1]: the learned 32 x 32 embeddings fix
the size. ``img_1`` is the loader's 256-px copy of the crop (``data.input_img_shape_1``): the DexYCB A+B
configs crop at 128 px for the classifier and HFL-Net, and the official code fed those 128-px crops to
HandOccNet, which crashes (docs/official-baselines.md §10, §15.1); reading ``img_1`` gives the intended input.
Optional GT: ``mano_param`` (B, 58) (else the official ``mano_pose`` (B, 48) + ``mano_shape`` (B, 10)).

Outputs (train and eval mode alike), meshes in the MANO frame (no translation), metres:
``pred_joints3d_cam`` (B, 21, 3), ``pred_verts3d_cam`` (B, 778, 3), ``pred_mano_pose`` (B, 16, 3, 3) rotation
matrices, ``pred_mano_pose_aa`` (B, 48) the same as axis-angle, ``pred_mano_shape`` (B, 10),
``pred_joints_img`` (B, 21, 2) joints normalised to the whole 256-px crop, the official aliases
``pred_joints3d_w_gr`` / ``pred_verts3d_w_gr``; with GT ``gt_joints3d_cam``, ``gt_verts3d_cam``,
``gt_mano_pose`` (rotation matrices), ``gt_mano_shape`` and the aliases ``gt_joints3d_w_gr`` /
``gt_verts3d_w_gr``; ``joints_img`` (the input, copied) when given.

Differences from the official code: the discarded ``smooth2(P3)`` is not computed; the two official MANO
layers (``regressor.mano_regHead.mano_layer`` and ``mano_layer``) are one shared module registered under both
names (the official instances hold identical buffers); the GT meshes come from ``mano_param``, and
``joints_img`` is not required alongside it. Like the official model, no weight init is applied beyond the
PyTorch defaults (``init_weights`` is never called there, §3.1).
"""
import torch
from torch import nn

from models.blocks.fpn import configured_backbone
from models.blocks.gt_mesh import gt_pose_and_betas
from models.blocks.hand_encoder import HandEncoder
from models.blocks.hand_head import HandRegHead
from models.blocks.mano_head import ManoRegHead
from models.blocks.occlusion_attention import FeatureInjectingTransformer, SpatialGate
from models.blocks.single_fpn import ResNetFPN
from models.blocks.transformer import CRTransformer
from models.hflnet import mano_layer_from_config
from models.registry import register_model
from utils.hand_conventions import NUM_HAND_JOINTS

__all__ = ["HandOccNet", "HandOccBackbone", "Regressor", "build_hand_occ_net", "check_input_shape",
           "gt_mano_params", "mano_outputs", "INPUT_SIZE"]

INPUT_SIZE = 256
FEATURE_RES = 32  # side of the pooled P2 map (INPUT_SIZE / 8) = side of the learned embeddings
CHANNELS = 256
TRANSFORMER_DEPTH = 2
TRANSFORMER_HEADS = 4
IMAGE_KEYS = ("img_1", "img")  # first present is the network input


def gt_mano_params(batch):
    """GT MANO parameters (B, 58) = [pose 48 axis-angle (flat-hand-mean convention), betas 10], or None.

    From ``mano_param`` if present, else from the official pair ``mano_pose`` (B, 48) + ``mano_shape`` (B, 10).
    """
    gt = gt_pose_and_betas(batch)
    return None if gt is None else torch.cat(gt, dim=1)


def mano_outputs(pred, gt, joints_uv, batch):
    """Official output dict of the MANO-regressing baselines from :class:`ManoRegHead` results.

    ``pred`` / ``gt`` (None without GT) are ManoRegHead dicts; ``joints_uv`` (B, 21, 2) the 2D joint head output.
    """
    out = {"pred_joints3d_cam": pred["joints3d"], "pred_verts3d_cam": pred["verts3d"],
           "pred_mano_pose": pred["mano_pose"], "pred_mano_pose_aa": pred["mano_pose_aa"],
           "pred_mano_shape": pred["mano_shape"], "pred_joints_img": joints_uv,
           "pred_joints3d_w_gr": pred["joints3d"], "pred_verts3d_w_gr": pred["verts3d"]}
    if gt is not None:
        out.update(gt_joints3d_cam=gt["joints3d"], gt_verts3d_cam=gt["verts3d"], gt_mano_pose=gt["mano_pose"],
                   gt_mano_shape=gt["mano_shape"], gt_joints3d_w_gr=gt["joints3d"], gt_verts3d_w_gr=gt["verts3d"])
    if "joints_img" in batch:
        out["joints_img"] = batch["joints_img"]
    return out


class HandOccBackbone(ResNetFPN):
    """FPN (no ``smooth1``) + 2x2 average pooling + spatial gate.

    img (B, 3, 256, 256) -> (primary, secondary), each (B, 256, 32, 32): P * gate and P * (1 - gate) with
    P = AvgPool2(smooth3(P2)) and gate (B, 1, 32, 32) from ``attention_module``.
    """

    def __init__(self, weights_path=None, backbone="resnet50"):
        super().__init__(smooth_levels=(2, 3), weights_path=weights_path, backbone=backbone)
        self.attention_module = SpatialGate()
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)

    def forward(self, img):
        features = self.pool(super().forward(img))
        gate = self.attention_module(features)
        return features * gate, features * (1.0 - gate)


class Regressor(nn.Module):
    """Hand joint head + hand encoder + MANO head on the whole feature map (official ``Regressor``).

    forward(features (B, 256, 32, 32), mano_params (B, 58) or None) -> (pred, gt, joints_uv): ManoRegHead dicts
    and the soft-argmax joints (B, 21, 2) normalised to the map, i.e. to the whole input crop.
    """

    def __init__(self, mano_layer, roi_res=FEATURE_RES, joint_nb=NUM_HAND_JOINTS, channels=CHANNELS):
        super().__init__()
        self.hand_regHead = HandRegHead(roi_res=roi_res, joint_nb=joint_nb, channels=channels)
        self.hand_Encoder = HandEncoder(num_heatmap_chan=joint_nb, num_feat_chan=channels,
                                        size_input_feature=(roi_res, roi_res))
        self.mano_regHead = ManoRegHead(mano_layer, feature_size=self.hand_Encoder.num_feat_out)

    def forward(self, features, mano_params=None):
        heatmaps, encoding, joints_uv = self.hand_regHead(features)
        pred, gt, _ = self.mano_regHead(self.hand_Encoder(heatmaps, encoding), mano_params)
        return pred, gt, joints_uv


class HandOccNet(nn.Module):
    """Backbone -> FIT(secondary, primary) -> SET -> regressor; see the module docstring.

    Args:
        mano_layer: right-hand MANO layer (axis-angle, no PCA, flat mean); registered as
            ``regressor.mano_regHead.mano_layer`` and as ``mano_layer``.
        backbone_weights: optional local torchvision ImageNet file of the trunk (None: random init).
        backbone: ResNet trunk of the FPN (``model.backbone``; official ``resnet50``).
    """

    input_size = INPUT_SIZE

    def __init__(self, mano_layer, backbone_weights=None, backbone="resnet50"):
        super().__init__()
        self.backbone = HandOccBackbone(backbone_weights, backbone)
        self.FIT = FeatureInjectingTransformer(FEATURE_RES, CHANNELS, TRANSFORMER_DEPTH, TRANSFORMER_HEADS)
        self.SET = CRTransformer(FEATURE_RES, CHANNELS, TRANSFORMER_DEPTH, TRANSFORMER_HEADS,
                                 learned_embedding=True)
        self.regressor = Regressor(mano_layer)
        self.mano_layer = mano_layer  # official second MANO copy (GT meshes); shared with the regressor

    def forward(self, batch):
        key = next(k for k in IMAGE_KEYS if k in batch)
        img = batch[key]
        if tuple(img.shape[-2:]) != (INPUT_SIZE, INPUT_SIZE):
            raise ValueError(f"HandOccNet needs {INPUT_SIZE}x{INPUT_SIZE} images, got {tuple(img.shape[-2:])} "
                             f"(batch key {key}; set data.input_img_shape or data.input_img_shape_1 to "
                             f"[{INPUT_SIZE}, {INPUT_SIZE}])")
        primary, secondary = self.backbone(img)
        injected = self.FIT(secondary, primary)
        enhanced = self.SET(injected, injected)
        pred, gt, joints_uv = self.regressor(enhanced, gt_mano_params(batch))
        return mano_outputs(pred, gt, joints_uv, batch)


def check_input_shape(cfg):
    """Raise unless the loader of ``cfg`` gives HandOccNet 256 x 256 images: ``data.input_img_shape_1`` (the
    ``img_1`` copy) when set, else ``data.input_img_shape``; the error names the key."""
    key = "input_img_shape_1" if cfg.data.input_img_shape_1 else "input_img_shape"
    shape = list(getattr(cfg.data, key))
    if shape != [INPUT_SIZE, INPUT_SIZE]:
        raise ValueError(f"{cfg.source}: hand_occ_net needs {INPUT_SIZE}x{INPUT_SIZE} input images, "
                         f"data.{key} is {shape}")


@register_model("hand_occ_net")
def build_hand_occ_net(cfg):
    """HandOccNet from an official config (checks the input size; reads base.mano_root, model.backbone /
    backbone_weights; the official ``model.pretrain`` is not read, as in the official code)."""
    check_input_shape(cfg)
    return HandOccNet(mano_layer_from_config(cfg), backbone_weights=cfg.model.backbone_weights,
                      backbone=configured_backbone(cfg))
