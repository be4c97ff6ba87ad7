"""Semi-Hand(-Object) (CVPR'21) as rebuilt from HFL-Net's components in the UniHOPE code: model names
``semi_hand`` (hand only) and ``semi_hand_object`` (hand + object keypoint voting).

Spec: docs/official-baselines.md §4. A single-trunk FPN; the hand ROI of its P2 map (stride 4) goes
through the hand joint head, the hand encoder and the MANO head of HFL-Net (no hand-object fusion). With the
object branch, the object ROI attends (CR transformer, 1 head) to the ROI of the hand-object box intersection
and the voting head predicts the 21 object keypoints per grid cell.

Batch keys read: ``img`` (B, 3, H, W) RGB in [0, 1], H and W multiples of 32 (512 in the official configs);
``bbox_hand`` (and for the object model ``bbox_obj``) (B, 4) px ``[x1, y1, x2, y2]`` in the crop; optional
``mano_param`` (B, 58) (else ``mano_pose`` + ``mano_shape``) for the GT meshes; ``joints_img`` copied when given.

Outputs: those of :func:`models.handoccnet.mano_outputs` (``pred_joints_img`` normalised to the *hand box*),
and with the object branch ``preds_joints2d`` (the same tensor) and, in train mode, ``preds_obj`` =
[px, py, conf] each (B, R, R, 21) (R = 32, positions normalised to ``bbox_obj``) / in eval mode
``preds_obj_0``, ``preds_obj_1``, ``preds_obj_2``.

Differences from the official code: the hand box is always ``bbox_hand`` (the official SemiHand prefers a
``bbox`` key, which no loader here emits); ``joints_img`` is optional; the unused smoothed P3 / P4 levels are
not computed. ``semi_hand`` builds the CR transformer without using it, as the official model does (its
weights are part of the checkpoints). The spec is silent on the head initialisation: the HFL-Net head init
(:func:`models.blocks.init.init_head_weights`) is applied to the heads, as for the HFL-Net components they are.
"""
from torch import nn

from models.blocks.fpn import configured_backbone
from models.blocks.hand_encoder import HandEncoder
from models.blocks.hand_head import HandRegHead
from models.blocks.init import init_head_weights
from models.blocks.mano_head import ManoRegHead
from models.blocks.object_head import NUM_OBJECT_KEYPOINTS, ObjRegHead, Pose2DLayer
from models.blocks.roi import box_intersection, pool_box
from models.blocks.single_fpn import ResNetFPN
from models.blocks.transformer import CRTransformer
from models.handoccnet import gt_mano_params, mano_outputs
from models.hflnet import mano_layer_from_config
from models.registry import register_model
from utils.hand_conventions import NUM_HAND_JOINTS

__all__ = ["SemiHand", "build_semi_hand", "build_semi_hand_object"]

ROI_RES = 32
CHANNELS = 256
TRANSFORMER_DEPTH = 1
TRANSFORMER_HEADS = 1


class SemiHand(nn.Module):
    """Single FPN -> hand ROI -> joints + MANO mesh; with ``with_object`` also object keypoint voting.

    Args:
        mano_layer: right-hand MANO layer (axis-angle, no PCA, flat mean); registered as ``mano_layer`` and
            ``mano_branch.mano_layer`` (one shared module; the official copies hold identical buffers).
        with_object: build and run ``obj_head`` / ``obj_reorgLayer`` (``semi_hand_object``).
        backbone_weights: optional local torchvision ImageNet file of the trunk (None: random init).
        backbone: ResNet trunk of the FPN (``model.backbone``; official ``resnet50``).
    """

    def __init__(self, mano_layer, with_object=False, backbone_weights=None, backbone="resnet50"):
        super().__init__()
        self.roi_res = ROI_RES
        self.with_object = with_object
        self.mano_layer = mano_layer
        self.base_net = ResNetFPN(smooth_levels=(1, 2, 3), weights_path=backbone_weights, backbone=backbone)
        self.hand_head = HandRegHead(roi_res=ROI_RES, joint_nb=NUM_HAND_JOINTS, channels=CHANNELS)
        self.hand_encoder = HandEncoder(num_heatmap_chan=NUM_HAND_JOINTS, num_feat_chan=CHANNELS,
                                        size_input_feature=(ROI_RES, ROI_RES))
        self.mano_branch = ManoRegHead(mano_layer, feature_size=self.hand_encoder.num_feat_out)
        heads = [self.hand_head, self.hand_encoder, self.mano_branch]
        if with_object:
            self.num_object_keypoints = NUM_OBJECT_KEYPOINTS
            self.obj_head = ObjRegHead(channels=CHANNELS, inter_channels=CHANNELS // 2,
                                       joint_nb=NUM_OBJECT_KEYPOINTS)
            self.obj_reorgLayer = Pose2DLayer(NUM_OBJECT_KEYPOINTS)
            heads.append(self.obj_head)
        self.transformer = CRTransformer(ROI_RES, CHANNELS, TRANSFORMER_DEPTH, TRANSFORMER_HEADS)
        for head in heads + [self.transformer]:
            init_head_weights(head)

    def object_keypoints(self, p2, bbox_hand, bbox_obj):
        """Object voting on the P2 map (B, 256, H/4, W/4): [px, py, conf], each (B, R, R, 21).

        The object ROI (queries) attends to the ROI of the hand-object box intersection (keys / values), zeroed
        for samples whose boxes do not overlap.
        """
        bbox_inter, non_empty = box_intersection(bbox_hand, bbox_obj)
        obj_rois = pool_box(p2, bbox_obj, self.roi_res)
        inter_rois = pool_box(p2, bbox_inter, self.roi_res) * non_empty[:, None, None, None].to(p2.dtype)
        return self.obj_reorgLayer(self.obj_head(self.transformer(obj_rois, inter_rois)))

    def forward(self, batch):
        p2 = self.base_net(batch["img"])
        hand_rois = pool_box(p2, batch["bbox_hand"], self.roi_res)  # (B, 256, R, R)
        heatmaps, encoding, joints_uv = self.hand_head(hand_rois)
        pred, gt, _ = self.mano_branch(self.hand_encoder(heatmaps, encoding), gt_mano_params(batch))
        out = mano_outputs(pred, gt, joints_uv, batch)
        if not self.with_object:
            return out
        out["preds_joints2d"] = joints_uv
        preds_obj = self.object_keypoints(p2, batch["bbox_hand"], batch["bbox_obj"])
        if self.training:
            out["preds_obj"] = preds_obj
        else:
            out.update({f"preds_obj_{i}": value for i, value in enumerate(preds_obj)})
        return out


@register_model("semi_hand")
def build_semi_hand(cfg):
    """SemiHand from a config (reads base.mano_root, model.backbone / backbone_weights)."""
    return SemiHand(mano_layer_from_config(cfg), backbone_weights=cfg.model.backbone_weights,
                    backbone=configured_backbone(cfg))


@register_model("semi_hand_object")
def build_semi_hand_object(cfg):
    """SemiHandObject from a config (reads base.mano_root, model.backbone / backbone_weights)."""
    return SemiHand(mano_layer_from_config(cfg), with_object=True, backbone_weights=cfg.model.backbone_weights,
                    backbone=configured_backbone(cfg))
