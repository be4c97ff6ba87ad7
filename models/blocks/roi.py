"""ROI pooling and point sampling on feature maps (docs/official-model.md §1.4 and §1.12).

Boxes are ``[x1, y1, x2, y2]`` in pixels of the network input crop, one box per image.
"""
import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

__all__ = ["pool_box", "pool_boxes", "box_intersection", "sample_at_uv", "box_uv_to_grid"]


def pool_box(feature_map, boxes, output_size=32, spatial_scale=0.25):
    """ROI-align one box per image: feature_map (B, C, H, W), boxes (B, 4) px -> (B, C, S, S), S = output_size.

    torchvision ``roi_align`` with ``sampling_ratio=-1`` and ``aligned=False``, as the official model; see
    :func:`pool_boxes` for the memory format of the result.
    """
    return pool_boxes(feature_map, (boxes,), output_size, spatial_scale)[0]


def pool_boxes(feature_map, box_sets, output_size=32, spatial_scale=0.25):
    """:func:`pool_box` of several box sets on one map in a single ``roi_align`` call.

    Args:
        feature_map: (B, C, H, W).
        box_sets: sequence of (B, 4) px tensors, one box per image each.
    Returns:
        a list with one (B, C, S, S) tensor per box set, equal to ``pool_box(feature_map, boxes)`` (every ROI is
        pooled independently). roi_align reads NCHW: a channels-last map is made contiguous once for all box
        sets (instead of once per call), and the results are returned channels-last too, so the convolutions
        that read them need no reorder of their own.
    """
    batch = feature_map.shape[0]
    batch_idx = torch.arange(batch, device=feature_map.device, dtype=feature_map.dtype).repeat(len(box_sets))
    boxes = torch.cat([b.to(feature_map.dtype) for b in box_sets], dim=0)
    rois = torch.cat((batch_idx[:, None], boxes), dim=1)  # (K*B, 5)
    channels_last = not feature_map.is_contiguous() and feature_map.is_contiguous(memory_format=torch.channels_last)
    pooled = roi_align(feature_map.contiguous(), rois, output_size=(output_size, output_size),
                       spatial_scale=spatial_scale, sampling_ratio=-1, aligned=False)
    if channels_last:
        pooled = pooled.contiguous(memory_format=torch.channels_last)
    # (K*B, C, S, S) -> K x (B, C, S, S) by slices at multiples of the traced batch size (split sizes would be
    # frozen into an ONNX export, which must keep the batch dynamic)
    return [pooled[k * batch:(k + 1) * batch] for k in range(len(box_sets))]


def box_intersection(box_a, box_b):
    """Intersection of two boxes per image: (B, 4), (B, 4) px -> (box (B, 4) px, non_empty (B,) bool).

    The box is [max of top-left corners, min of bottom-right corners]; ``non_empty`` is True when both its
    width and height are positive (the box is then degenerate/inverted for the other samples).
    """
    top_left = torch.maximum(box_a[:, :2], box_b[:, :2])
    bottom_right = torch.minimum(box_a[:, 2:], box_b[:, 2:])
    non_empty = ((bottom_right - top_left) > 0).all(dim=1)
    return torch.cat((top_left, bottom_right), dim=1), non_empty


def sample_at_uv(feature_map, grid_uv):
    """Bilinear samples of feature_map (B, C, H, W) at grid_uv (B, N, 2) in [-1, 1] (x first) -> (B, C, N).

    ``grid_sample`` with ``align_corners=True`` and zero padding (official ``index``).
    """
    samples = F.grid_sample(feature_map, grid_uv[:, :, None, :], align_corners=True)  # (B, C, N, 1)
    return samples[..., 0]


def box_uv_to_grid(uv_box, boxes, image_hw):
    """Box-normalised points -> image grid coordinates in [-1, 1] (official ``denormalize_joints_img``).

    Args:
        uv_box: (B, N, 2), (0, 0) = box top-left, (1, 1) = box bottom-right, u horizontal.
        boxes: (B, 4) px ``[x1, y1, x2, y2]``.
        image_hw: (H, W) of the input image in pixels.
    Returns:
        (B, N, 2) with x = (px - W/2) / (W/2), y = (py - H/2) / (H/2), clamped to [-1, 1].
    Difference from the official code: it divides x by H/2 and y by W/2 and builds its constant with
    a CUDA-only tensor; identical for the square inputs all configs use.
    """
    top_left, bottom_right = boxes[:, None, :2], boxes[:, None, 2:]
    pixels = uv_box * (bottom_right - top_left) + top_left
    height, width = image_hw
    half = torch.tensor([width / 2.0, height / 2.0], device=uv_box.device, dtype=uv_box.dtype)
    return ((pixels - half) / half).clamp(-1.0, 1.0)
