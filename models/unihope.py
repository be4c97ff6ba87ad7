"""UniHOPE (CVPR 2025): HFL-Net with a grasp-aware switch on the hand-object feature fusion, plus feature
mappers for self-distillation against a de-occluded partner image.

Spec: docs/official-model.md §1 (model name ``unihope_net``). On top of :class:`models.hflnet.HFLNet`:
``obj_conf_layer`` (grasp classifier on P2_o; legacy two-Linear layout for the DexYCB checkpoints),
``occ_cls_layer`` (hand-occlusion classifier on P2_h), and the mappers ``fpn_feature_mapper``,
``hand_feature_mapper``, ``mano_feature_mapper``.

Fusion rule: object-stream features enter the hand path only for samples predicted *grasping* and *not
occluded* (argmax of the two 2-way heads, ties -> class 0); the other samples pair the hand ROI with itself.

The mappers only produce distillation features (training); they never influence a prediction, so the test
forward skips them (the official code computes and discards them). Extra test outputs: ``pred_obj_conf``
(B, 2) and ``pred_hand_occ`` (B, 2) logits, ``pred_grasping`` (B,) int64 = argmax of ``pred_obj_conf``.
Training with image pairs also exports ``joint_base_feat`` (B, 1024, 21) and ``joint_img_feat``
(B, 512, 21), mapped in their first half like ``mano_encoding`` (B, 2048).
"""
import torch
from torch import nn

from models.blocks.classifier_heads import (GRASPING, OCCLUDED, image_classifier_head, spatial_dim_for_input,
                                            square_input_size)
from models.blocks.init import init_head_weights
from models.blocks.roi import box_uv_to_grid, sample_at_uv
from models.blocks.transformer import SlfMultiHeadAttention
from models.hflnet import ROI_RES, HFLNet, mano_layer_from_config, trunk_options
from models.registry import register_model

__all__ = ["UniHOPENet", "build_unihope"]


class UniHOPENet(HFLNet):
    """UniHOPE network; see the module docstring.

    Args:
        mano_layer, backbone_weights, train_parts, roi_res, backbone: as :class:`HFLNet`.
        input_size: side of the square input image in pixels, a multiple of 32 (128 DexYCB, 256 HO3D); sets
            the classifier heads' Linear sizes (64 * (input_size/4)**2 inputs).
        obj_conf_layer_legacy: two-Linear grasp head of the DexYCB checkpoints (official bug 8).
        init_layer_weight: official ``cfg.train.init_layer_weight`` - re-initialise the grasp head and the
            mappers with the head init (§1.16).
    """

    switch_output_keys = ("pred_obj_conf", "pred_hand_occ")

    def __init__(self, mano_layer, input_size=128, obj_conf_layer_legacy=True, init_layer_weight=True,
                 backbone_weights=None, train_parts=(0, 1), roi_res=ROI_RES, backbone="resnet50"):
        super().__init__(mano_layer, backbone_weights=backbone_weights, train_parts=train_parts, roi_res=roi_res,
                         backbone=backbone)
        self.input_size = int(input_size)
        spatial_dim = spatial_dim_for_input(self.input_size, self.base_net.stride)
        channels = self.base_net.out_channels
        self.obj_conf_layer = image_classifier_head(channels, spatial_dim, legacy=obj_conf_layer_legacy)
        self.occ_cls_layer = image_classifier_head(channels, spatial_dim)
        c3_channels = self.base_net.stage_channels[1]  # 512 on ResNet-50
        self.fpn_feature_mapper = nn.Sequential(
            nn.Conv1d(c3_channels, c3_channels, kernel_size=1), nn.BatchNorm1d(c3_channels),
            nn.LeakyReLU(inplace=True))
        self.hand_feature_mapper = SlfMultiHeadAttention(8, channels, 256, 256)
        self.mano_feature_mapper = SlfMultiHeadAttention(8, self.hand_encoder.num_feat_out, 256, 256)
        if init_layer_weight:
            for module in (self.obj_conf_layer, self.fpn_feature_mapper, self.hand_feature_mapper,
                           self.mano_feature_mapper):
                init_head_weights(module)

    def fuse_object_features(self, x_hand, x_obj, p2_h, p2_o):
        """Grasp-aware switch: x_obj (detached) for predicted grasping and non-occluded samples, else x_hand.

        Returns (fused (B, 256, R, R), {"pred_obj_conf": (B, 2) logits, "pred_hand_occ": (B, 2) logits}).
        """
        grasp_logits = self.obj_conf_layer(p2_o)
        occlusion_logits = self.occ_cls_layer(p2_h)
        fuse = (grasp_logits.argmax(dim=1) == GRASPING) & (occlusion_logits.argmax(dim=1) != OCCLUDED)
        fused = torch.where(fuse[:, None, None, None], x_obj.detach(), x_hand)
        return fused, {"pred_obj_conf": grasp_logits, "pred_hand_occ": occlusion_logits}

    def net_forward(self, img, bbox_hand, bbox_obj, mano_param=None, return_feat=False, feature_mapping=False):
        """As :meth:`HFLNet.net_forward`; ``feature_mapping`` runs the three mappers on the exported features.

        With ``return_feat`` the features also hold ``joint_base_feat`` (B, C3, 21) (c3_h sampled at the
        predicted joints) and ``joint_img_feat`` (B, 256, 21) (x_hand sampled at the joints). Mapping with
        ``return_feat=False`` reproduces the official test path (computed, then discarded).
        """
        if tuple(img.shape[-2:]) != (self.input_size, self.input_size):
            raise ValueError(f"UniHOPENet was built for {self.input_size}x{self.input_size} images "
                             f"(data.input_img_shape), got {tuple(img.shape[-2:])}")
        needs_features = return_feat or feature_mapping
        result = super().net_forward(img, bbox_hand, bbox_obj, mano_param, return_feat=needs_features)
        if not needs_features:
            return result
        features = result["features"] if return_feat else result.pop("features")
        joints_uv = result["preds_joints2d"]
        box_grid = (joints_uv - 0.5).mul(2.0).clamp(-1.0, 1.0)  # box-normalised -> ROI grid [-1, 1]
        joint_img_feat = sample_at_uv(features["x_hand"], box_grid)  # (B, 256, 21)
        image_grid = box_uv_to_grid(joints_uv, bbox_hand, img.shape[-2:])
        joint_base_feat = sample_at_uv(features["c3_h"], image_grid)  # (B, C3, 21), C3 = 512 on ResNet-50
        mano_encoding = features["mano_encoding"]
        if feature_mapping:
            joint_base_feat = self.fpn_feature_mapper(joint_base_feat)
            joint_img_feat = self.hand_feature_mapper(joint_img_feat.transpose(1, 2)).transpose(1, 2)
            mano_encoding = self.mano_feature_mapper(mano_encoding[:, None, :])[:, 0]  # length-1 sequence
        features.update(joint_base_feat=joint_base_feat, joint_img_feat=joint_img_feat,
                        mano_encoding=mano_encoding)
        return result

    def test_forward(self, batch):
        output = super().test_forward(batch)
        output["pred_grasping"] = output["pred_obj_conf"].argmax(dim=1)
        return output


@register_model("unihope_net")
def build_unihope(cfg):
    """UniHOPE from an official config (data.input_img_shape, model.obj_conf_layer_legacy,
    train.init_layer_weight, train.train_part, model.backbone / backbone_weights / roi_res, base.mano_root)."""
    input_size = square_input_size(cfg.data.input_img_shape, f"{cfg.source}: data.input_img_shape")
    return UniHOPENet(mano_layer_from_config(cfg), input_size=input_size,
                      obj_conf_layer_legacy=cfg.model.obj_conf_layer_legacy,
                      init_layer_weight=cfg.train.init_layer_weight,
                      backbone_weights=cfg.model.backbone_weights, train_parts=cfg.train.train_part,
                      **trunk_options(cfg))
