"""Image-level 2-way classifiers on a full FPN map (official ``obj_conf_layer`` / ``occ_cls_layer``).

Spec: docs/official-model.md §1.10 and §2.1. Sequential layouts match the official keys:
``0`` 1x1 conv 256 -> 64, ``1`` flatten, ``2`` Linear(64*S*S, 2) - or, legacy, ``2`` Linear(64*S*S, 1024)
followed directly by ``3`` Linear(1024, 2).
"""
from torch import nn

__all__ = ["image_classifier_head", "spatial_dim_for_input", "square_input_size", "GRASPING", "OCCLUDED"]

REDUCED_CHANNELS = 64
NUM_CLASSES = 2
LEGACY_HIDDEN = 1024
GRASPING = 1  # class index of "hand holds an object" in grasp logits (pred_obj_conf)
OCCLUDED = 1  # class index of "hand is occluded" in occlusion logits (pred_hand_occ)


def square_input_size(input_img_shape, where):
    """Side of a square ``[H, W]`` input shape; ``where`` names the config key in the error message."""
    height, width = input_img_shape
    if height != width:
        raise ValueError(f"{where} must be square for this model, got {list(input_img_shape)}")
    return int(height)


def spatial_dim_for_input(input_size, stride=4):
    """Side S of the stride-4 FPN map for a square input of ``input_size`` pixels (a multiple of 32)."""
    input_size = int(input_size)
    if input_size <= 0 or input_size % 32:
        raise ValueError(f"input image size must be a positive multiple of 32, got {input_size}")
    return input_size // stride


def image_classifier_head(in_channels, spatial_dim, legacy=False):
    """2-way logits head: (B, in_channels, S, S) -> (B, 2) with S = ``spatial_dim``.

    ``legacy=True`` reproduces the DexYCB grasp head with two stacked Linears and no non-linearity between
    them (official bug 8: equivalent to one linear map, 67M parameters at S=32); needed only to load those
    checkpoints.
    """
    flat = REDUCED_CHANNELS * spatial_dim * spatial_dim
    layers = [nn.Conv2d(in_channels, REDUCED_CHANNELS, kernel_size=1, bias=True), nn.Flatten(1)]
    if legacy:
        layers += [nn.Linear(flat, LEGACY_HIDDEN), nn.Linear(LEGACY_HIDDEN, NUM_CLASSES)]
    else:
        layers.append(nn.Linear(flat, NUM_CLASSES))
    return nn.Sequential(*layers)
