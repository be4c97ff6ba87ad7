"""HFL-Net (CVPR'23 harmonious feature learning) - the hand-object network UniHOPE builds on.

Spec: docs/official-model.md §1.2-§1.9, §1.13-§1.14 and §2.4 (``HFLNet``, model name ``hflnet``).
:class:`HFLNet` holds the shared architecture; :class:`models.unihope.UniHOPENet` subclasses it and only
replaces the object-feature fusion rule (grasp switch) and adds the distillation feature mappers.

Batch keys read: ``img`` (B, 3, H, W) RGB in [0, 1] (training also accepts (B, 6, H, W) image pairs),
``bbox_hand`` / ``bbox_obj`` (B, 4) px in the crop, optional ``mano_param`` (B, 58) and (training pairs)
``joints_img``. Test-time outputs (``model.eval()``), all in the camera-aligned MANO frame, metres:
``preds_joints2d`` (B, 21, 2) hand-box-normalised uv, ``preds_obj_0/1/2`` (B, 32, 32, 21) object keypoint
x / y (object-box-normalised) and confidence per grid cell, ``pred_verts3d_cam`` (B, 778, 3),
``pred_joints3d_cam`` (B, 21, 3), and ``gt_verts3d_cam`` / ``gt_joints3d_cam`` when ``mano_param`` is given.
"""
import torch
from torch import nn

from models.blocks.fpn import TwoStreamFPN, configured_backbone
from models.blocks.hand_encoder import HandEncoder
from models.blocks.hand_head import HandRegHead
from models.blocks.init import init_head_weights
from models.blocks.mano_head import ManoRegHead, right_hand_mano_layer
from models.blocks.object_head import NUM_OBJECT_KEYPOINTS, ObjRegHead, Pose2DLayer
from models.blocks.roi import box_intersection, pool_boxes
from models.blocks.transformer import CRTransformer
from models.registry import register_model
from utils.hand_conventions import MANO_PARAM_DIM, NUM_HAND_JOINTS
from utils.mano_io import resolve_mano_root

__all__ = ["HFLNet", "build_hflnet", "split_pair_inputs", "concat_parts"]

ROI_RES = 32
IMAGE_CHANNELS = 3


def split_pair_inputs(batch, part):
    """Inputs of image ``part`` (0 original, 1 generated partner) from a paired training batch.

    Paired keys are concatenated along their last meaningful dim: img (B, 6, H, W), bbox_* (B, 8),
    mano_param (B, 116), joints_img (B, 42, 2). Returns a dict with the per-part slices of those present.
    """
    widths = {"img": IMAGE_CHANNELS, "bbox_hand": 4, "bbox_obj": 4, "mano_param": MANO_PARAM_DIM,
              "joints_img": NUM_HAND_JOINTS}
    return {key: batch[key][:, part * width:(part + 1) * width] for key, width in widths.items() if key in batch}


def concat_parts(values):
    """Concatenate per-part results along dim 1 (tensors, lists of tensors, dicts of those; None stays None)."""
    if len(values) == 1:
        return values[0]
    first = values[0]
    if first is None:
        return None
    if isinstance(first, torch.Tensor):
        return torch.cat(values, dim=1)
    if isinstance(first, (list, tuple)):
        return [concat_parts([v[i] for v in values]) for i in range(len(first))]
    if isinstance(first, dict):
        return {key: concat_parts([v[key] for v in values]) for key in first}
    raise TypeError(f"cannot concatenate part outputs of type {type(first).__name__}")


class HFLNet(nn.Module):
    """Two-stream FPN -> hand / object ROIs -> CR transformers -> hand joints + MANO mesh, object keypoints.

    Args:
        mano_layer: right-hand MANO layer (axis-angle, no PCA, flat mean), registered as
            ``mano_branch.mano_layer``; forward (pose (B, 48), betas (B, 10)) -> (verts mm, joints mm).
        backbone_weights: optional local torchvision ImageNet file of the backbone (None: random init).
        train_parts: image parts run in the paired (6-channel) training forward (official ``train_part``).
        backbone: ResNet trunk of the FPN (``model.backbone``; official ``resnet50``).
    """

    switch_output_keys = ()  # outputs of fuse_object_features exported at test and train time

    def __init__(self, mano_layer, backbone_weights=None, train_parts=(0, 1), roi_res=ROI_RES,
                 joint_nb=NUM_HAND_JOINTS, channels=256, transformer_depth=1, transformer_heads=8,
                 mano_neurons=(1024, 512), backbone="resnet50"):
        super().__init__()
        self.roi_res = roi_res
        self.num_object_keypoints = NUM_OBJECT_KEYPOINTS
        self.train_parts = tuple(train_parts)
        self.base_net = TwoStreamFPN(backbone_weights, backbone)
        self.hand_head = HandRegHead(roi_res=roi_res, joint_nb=joint_nb, channels=channels)
        self.hand_encoder = HandEncoder(num_heatmap_chan=joint_nb, num_feat_chan=channels,
                                        size_input_feature=(roi_res, roi_res))
        self.mano_branch = ManoRegHead(mano_layer, feature_size=self.hand_encoder.num_feat_out,
                                       mano_neurons=mano_neurons)
        self.obj_head = ObjRegHead(channels=channels, inter_channels=channels // 2,
                                   joint_nb=NUM_OBJECT_KEYPOINTS)
        self.obj_reorgLayer = Pose2DLayer(NUM_OBJECT_KEYPOINTS)
        self.transformer_obj = CRTransformer(roi_res, channels, transformer_depth, transformer_heads)
        # Reads the hand + object ROI pair (B, 2*channels, R, R); only the hand half of its output is ever
        # used, so it computes that half only (exact, same parameters: CRBlock ``out_channels``).
        self.transformer_hand = CRTransformer(roi_res, 2 * channels, transformer_depth, transformer_heads,
                                              out_channels=channels)
        for head in (self.hand_head, self.hand_encoder, self.mano_branch, self.transformer_obj,
                     self.transformer_hand, self.obj_head):
            init_head_weights(head)

    def fuse_object_features(self, x_hand, x_obj, p2_h, p2_o):
        """Object-stream features to pair with the hand ROI: always ``x_obj`` (detached) in HFL-Net.

        Args: hand ROIs of both streams (B, 256, R, R) and the full P2 maps (B, 256, H/4, W/4).
        Returns: (fused features (B, 256, R, R), dict of extra outputs - empty here).
        """
        return x_obj.detach(), {}

    def net_forward(self, img, bbox_hand, bbox_obj, mano_param=None, return_feat=False, feature_mapping=False):
        """One image per sample: img (B, 3, H, W), boxes (B, 4) px, mano_param (B, 58) or None.

        Returns a dict: ``preds_joints2d`` (B, 21, 2), ``preds_obj`` [px, py, conf] each (B, R, R, 21),
        ``pred_mano`` / ``gt_mano`` (dicts of ManoRegHead; gt None without mano_param), the extra outputs of
        :meth:`fuse_object_features`, and with ``return_feat`` a ``features`` dict (the official
        distillation features). ``feature_mapping`` is used by UniHOPE only (HFL-Net has no mappers).
        """
        p2_h, p2_o, backbone_feats = self.base_net(img, return_feat=True)
        bbox_inter, inter_non_empty = box_intersection(bbox_hand, bbox_obj)
        x_hand, z_x = pool_boxes(p2_h, (bbox_hand, bbox_inter), self.roi_res)
        x_obj, y = pool_boxes(p2_o, (bbox_hand, bbox_obj), self.roi_res)  # x_obj: object stream, hand box
        z_x = z_x * inter_non_empty[:, None, None, None].to(p2_h.dtype)

        x_hand_obj, switch_outputs = self.fuse_object_features(x_hand, x_obj, p2_h, p2_o)
        hand_obj = torch.cat((x_hand, x_hand_obj), dim=1)  # (B, 512, R, R)
        # (B, 256, R, R), the hand half of the official (B, 512, R, R) output; the block computes only that half
        # (the slice is then a no-op view; it matters for a block set back to the full width)
        hand = self.transformer_hand(hand_obj, hand_obj)[:, :x_hand.shape[1]]

        y = self.transformer_obj(y, z_x.detach())
        preds_obj = self.obj_reorgLayer(self.obj_head(y))

        heatmaps, encoding, joints_uv = self.hand_head(hand)
        mano_encoding = self.hand_encoder(heatmaps, encoding)  # (B, 1024)
        pred_mano, gt_mano, mano_features = self.mano_branch(mano_encoding, mano_param)

        result = {"preds_joints2d": joints_uv, "preds_obj": preds_obj, "pred_mano": pred_mano,
                  "gt_mano": gt_mano, **switch_outputs}
        if return_feat:
            result["features"] = {
                "mano_features": mano_features, **backbone_feats, "P2_h": p2_h, "P2_o": p2_o,
                "x_hand": x_hand, "hand": hand, "out_hm": heatmaps, "encoding": encoding,
                "mano_encoding": mano_encoding, "x_obj": x_obj}
        return result

    def forward(self, batch):
        return self.train_forward(batch) if self.training else self.test_forward(batch)

    def test_forward(self, batch):
        """Prediction for ``batch`` (3-channel images); output keys in the official order (module docstring)."""
        channels = batch["img"].shape[1]
        if channels != IMAGE_CHANNELS:
            raise ValueError(f"test-time batch['img'] must have 3 channels (one image per sample), got {channels}")
        result = self.net_forward(batch["img"], batch["bbox_hand"], batch["bbox_obj"], batch.get("mano_param"))
        px, py, conf = result["preds_obj"]
        output = {"preds_joints2d": result["preds_joints2d"], "preds_obj_0": px, "preds_obj_1": py,
                  "preds_obj_2": conf, "pred_verts3d_cam": result["pred_mano"]["verts3d"],
                  "pred_joints3d_cam": result["pred_mano"]["joints3d"]}
        if result["gt_mano"] is not None:
            output["gt_verts3d_cam"] = result["gt_mano"]["verts3d"]
            output["gt_joints3d_cam"] = result["gt_mano"]["joints3d"]
        output.update({key: result[key] for key in self.switch_output_keys})
        return output

    def train_forward(self, batch):
        """Training outputs (official §1.14): a 3-channel batch runs once; a 6-channel image pair runs each
        part of ``train_parts`` separately (mapping features of part 0 only) and concatenates every result
        along dim 1, exporting the distillation features.
        """
        channels = batch["img"].shape[1]
        if channels == IMAGE_CHANNELS:
            results = [self.net_forward(batch["img"], batch["bbox_hand"], batch["bbox_obj"],
                                        batch.get("mano_param"))]
            part_inputs = None
        elif channels == 2 * IMAGE_CHANNELS:
            part_inputs = [split_pair_inputs(batch, part) for part in self.train_parts]
            results = [self.net_forward(p["img"], p["bbox_hand"], p["bbox_obj"], p.get("mano_param"),
                                        return_feat=True, feature_mapping=(part == 0))
                       for part, p in zip(self.train_parts, part_inputs)]
        else:
            raise ValueError(f"batch['img'] must have 3 or 6 channels (single image or pair), got {channels}")
        merged = concat_parts(results)
        output = {"preds_joints2d": [merged["preds_joints2d"]], "pred_mano_results": merged["pred_mano"],
                  "gt_mano_results": merged["gt_mano"], "preds_obj": merged["preds_obj"],
                  **{key: merged[key] for key in self.switch_output_keys},
                  "pred_verts3d_cam": merged["pred_mano"]["verts3d"],
                  "pred_joints3d_cam": merged["pred_mano"]["joints3d"]}
        if merged["gt_mano"] is not None:
            output["gt_verts3d_cam"] = merged["gt_mano"]["verts3d"]
            output["gt_joints3d_cam"] = merged["gt_mano"]["joints3d"]
        if part_inputs is not None:
            output.update(merged["features"])
            if "joints_img" in batch:
                output["joints_img"] = torch.cat([p["joints_img"] for p in part_inputs], dim=1)
        return output


def mano_layer_from_config(cfg):
    """Right-hand MANO layer from ``cfg.base.mano_root`` (None -> env MANO_ROOT)."""
    return right_hand_mano_layer(resolve_mano_root(cfg.base.mano_root))


def trunk_options(cfg) -> dict:
    """``{"backbone", "roi_res"}`` from ``cfg.model``, checked: a known ResNet, and ROIs the hourglass and the
    hand encoder can halve four times (a positive multiple of 16)."""
    backbone = configured_backbone(cfg)
    if cfg.model.roi_res < 16 or cfg.model.roi_res % 16:
        raise ValueError(f"{cfg.source}: model.roi_res must be a positive multiple of 16 (official 32), "
                         f"got {cfg.model.roi_res}")
    return {"backbone": backbone, "roi_res": cfg.model.roi_res}


@register_model("hflnet")
def build_hflnet(cfg):
    """HFL-Net from an official config (reads base.mano_root, model.backbone / backbone_weights / roi_res,
    train.train_part)."""
    return HFLNet(mano_layer_from_config(cfg), backbone_weights=cfg.model.backbone_weights,
                  train_parts=cfg.train.train_part, **trunk_options(cfg))
