"""Grasp classifier (official ``GraspClassifier``, model name ``classifier``): does the hand hold an object?

Spec: docs/official-model.md §2.1. The two-stream FPN of HFL-Net followed by a 2-way head on the object
stream's P2 map. Only P2_o is computed (the hand-stream weights exist for checkpoint compatibility but do not
influence the logits, so their forward is skipped).

Differences from the official code (bug 12): ``forward`` takes the batch dict (``img_cls`` if present,
else ``img``), and the input size is a constructor argument instead of a hard-coded 128.
"""
from torch import nn

from models.blocks.classifier_heads import image_classifier_head, spatial_dim_for_input, square_input_size
from models.blocks.fpn import TwoStreamFPN
from models.registry import register_model

__all__ = ["GraspClassifier", "build_classifier", "classifier_image"]


def classifier_image(batch):
    """The classifier's input from a batch: ``img_cls`` (a resize for the classifier) if present, else ``img``."""
    return batch["img_cls"] if "img_cls" in batch else batch["img"]


class GraspClassifier(nn.Module):
    """FPN + grasp head on a square image of ``input_size`` pixels (multiple of 32; official 128).

    forward(batch) with ``img_cls`` or ``img`` (B, 3, S, S) RGB in [0, 1] -> ``pred_obj_conf`` (B, 2) logits
    (class 1 = grasping) and ``pred_grasping`` (B,) int64 argmax.
    """

    def __init__(self, input_size=128, backbone_weights=None):
        super().__init__()
        self.input_size = int(input_size)
        self.base_net = TwoStreamFPN(backbone_weights)
        spatial_dim = spatial_dim_for_input(self.input_size, self.base_net.stride)
        self.obj_conf_layer = image_classifier_head(self.base_net.out_channels, spatial_dim)

    def forward(self, batch):
        img = classifier_image(batch)
        if tuple(img.shape[-2:]) != (self.input_size, self.input_size):
            raise ValueError(f"GraspClassifier was built for {self.input_size}x{self.input_size} images, got "
                             f"{tuple(img.shape[-2:])} (batch key {'img_cls' if 'img_cls' in batch else 'img'})")
        logits = self.obj_conf_layer(self.base_net.object_pyramid(img))
        return {"pred_obj_conf": logits, "pred_grasping": logits.argmax(dim=1)}


@register_model("classifier")
def build_classifier(cfg):
    """Grasp classifier from a config (data.input_img_shape, square; model.backbone_weights)."""
    input_size = square_input_size(cfg.data.input_img_shape, f"{cfg.source}: data.input_img_shape")
    return GraspClassifier(input_size=input_size, backbone_weights=cfg.model.backbone_weights)
