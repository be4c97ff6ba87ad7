"""Network inputs for one hand, built the way the test loader builds them (datasets/hand_object_sample.py).

Left hands are mirrored (image ``u' = W - 1 - u``) so the network sees a right hand, as in training. The crop is
the hand box enlarged 1.5 times (fused with the object box when one is given), made square, warped to the model's
``res x res`` input; ``bbox_hand`` is the hand box in the crop enlarged 1.1 times, ``bbox_obj`` the object box in
the crop, or ``bbox_hand`` when no object box is given (HFL-Net and UniHOPE read the object box only for their
object outputs, which are not reported here). Extra resized copies (``img_cls``, ``img_h``, ``img_ho`` of A+B
models) come from the same crop.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from datasets import geometry as geo
from datasets.hand_object_sample import (HAND_BOX_FACTOR, SampleSettings, crop_region_of_points, image_tensor,
                                         resized_copies)
from datasets.transforms import warp_image
from engine.predict import PredictInputError
from engine.predict.hand_boxes import HandBox


@dataclass(frozen=True)
class HandCrop:
    """One hand's network inputs and the geometry to map predictions back.

    ``inputs``: numpy arrays without a batch axis (``img`` (3, res, res) float32 in [0, 1], ``bbox_hand`` /
    ``bbox_obj`` (4,) crop px, extra images). ``image_to_crop``: (3, 3) affine from the network's view of the
    image (mirrored for left hands) to crop px. ``hand_box_view``: (4,) hand box in that view, px.
    """

    inputs: dict
    image_to_crop: np.ndarray
    hand_box_view: np.ndarray
    is_left: bool
    width: int
    height: int


def box_corners(box: np.ndarray) -> np.ndarray:
    """(2, 2) corner points ``[[x1, y1], [x2, y2]]`` of a box ``[x1, y1, x2, y2]``."""
    return np.asarray(box, dtype=np.float32).reshape(2, 2)


def view_points(box: np.ndarray, is_left: bool, width: int) -> np.ndarray:
    """Box corners (2, 2) px in the network's view of the image (mirrored for left hands)."""
    corners = box_corners(box)
    return geo.mirror_points_2d(corners, width) if is_left else corners


def build_hand_crop(image: np.ndarray, hand: HandBox, settings: SampleSettings, where: str = "image") -> HandCrop:
    """Crop one hand of ``image`` (H, W, 3) uint8 RGB into the model's inputs (module docstring)."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = hand.box
    if x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height:
        raise PredictInputError(f"{where}: hand box {np.round(hand.box, 1).tolist()} lies outside the "
                                f"{width}x{height} image")
    if hand.is_left:
        image = np.ascontiguousarray(image[:, ::-1])
    hand_points = view_points(hand.box, hand.is_left, width)
    object_points = None if hand.object_box is None else view_points(hand.object_box, hand.is_left, width)
    centre, scale = crop_region_of_points(hand_points, object_points, width, height)
    transform = geo.crop_affine(centre, scale, settings.res)
    crop = warp_image(image, transform, settings.res)
    bbox_hand = geo.bbox_from_points(geo.apply_affine(transform, hand_points), HAND_BOX_FACTOR)
    bbox_obj = bbox_hand if object_points is None else geo.bbox_from_points(
        geo.apply_affine(transform, object_points), 1.0)
    inputs = {"img": image_tensor(crop), **resized_copies(crop, settings.extra_resolutions),
              "bbox_hand": bbox_hand, "bbox_obj": np.array(bbox_obj, dtype=np.float32)}
    hand_box_view = np.concatenate([hand_points.min(0), hand_points.max(0)]).astype(np.float32)
    return HandCrop(inputs, transform, hand_box_view, hand.is_left, width, height)
