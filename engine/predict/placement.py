"""From one hand's network outputs to a hand placed in the original camera: root translation, un-mirroring.

The networks predict a root-relative right hand in the (mirrored, for left hands) camera frame. The root
translation is solved so that the predicted 3D joints project onto the predicted 2D joints
(:func:`utils.camera.solve_root_translation`, in the network's view with the mirrored intrinsics for left
hands); models without 2D joints are placed by their hand box instead (:func:`utils.camera.box_fit_translation`).
Left hands are then mirrored back (3D ``x' = -x``, 2D ``u' = W - 1 - u``), so every output is in the original
image and camera.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from datasets import geometry as geo
from engine.predict.crops import HandCrop
from engine.predict.hand_boxes import HandBox
from engine.predict.network import JOINTS_3D_KEY, VERTS_3D_KEY
from models.blocks.classifier_heads import GRASPING, OCCLUDED
from utils.camera import box_fit_translation, solve_root_translation

MIN_DEPTH_M = 0.05  # a placement with a joint nearer than this to the camera is rejected
DEPTH_AGREEMENT = 3.0  # ... and one whose root depth differs more than this factor from the hand-box placement


@dataclass
class PlacedHand:
    """One reconstructed hand in the original image and camera.

    ``joints_2d`` (21, 2) px; ``joints_cam`` (21, 3) / ``verts_cam`` (778, 3) metres, OpenCV camera frame;
    ``placement``: ``"joints_2d"`` (translation solved on the predicted 2D joints) or ``"hand_box"`` (then the 2D
    joints are the placed 3D joints projected);
    ``grasp_probability`` / ``occlusion_probability`` in [0, 1] or None; ``grasping`` from the model or None.
    """

    hand: HandBox
    joints_2d: np.ndarray
    joints_cam: np.ndarray
    verts_cam: np.ndarray
    placement: str
    grasp_probability: Optional[float] = None
    occlusion_probability: Optional[float] = None
    grasping: Optional[bool] = None


def softmax_probability(logits: np.ndarray, index: int) -> float:
    """Probability of class ``index`` from a logit vector (C,)."""
    logits = np.asarray(logits, np.float64)
    weights = np.exp(logits - logits.max())
    return float(weights[index] / weights.sum())


def depths_agree(joints_rel: np.ndarray, solved: np.ndarray, box_fit: np.ndarray) -> bool:
    """Whether a translation solved on the 2D joints is plausible: every joint at least ``MIN_DEPTH_M`` in front of
    the camera, and the root depth within a factor ``DEPTH_AGREEMENT`` of the hand-box placement's."""
    if (joints_rel[:, 2] + solved[2]).min() <= MIN_DEPTH_M or box_fit[2] <= 0:
        return False
    ratio = solved[2] / box_fit[2]
    return 1.0 / DEPTH_AGREEMENT <= ratio <= DEPTH_AGREEMENT


def _classifier_outputs(outputs: dict, row: int) -> dict:
    grasp = outputs.get("pred_obj_conf")
    occlusion = outputs.get("pred_hand_occ")
    grasping = outputs.get("pred_grasping")
    return {"grasp_probability": None if grasp is None else softmax_probability(grasp[row], GRASPING),
            "occlusion_probability": None if occlusion is None else softmax_probability(occlusion[row], OCCLUDED),
            "grasping": None if grasping is None else bool(np.asarray(grasping[row]).reshape(()) == GRASPING)}


def place_hand(hand: HandBox, crop: HandCrop, outputs: dict, row: int, joints_2d_crop: Optional[np.ndarray],
               intrinsics: np.ndarray) -> PlacedHand:
    """Place row ``row`` of a batch of network ``outputs`` in the camera of ``intrinsics`` (3, 3) px.

    Args:
        joints_2d_crop: (21, 2) this hand's predicted 2D joints in crop px, or None.
    """
    joints = np.asarray(outputs[JOINTS_3D_KEY][row], np.float64)
    root = joints[0]
    joints_rel = joints - root
    verts_rel = np.asarray(outputs[VERTS_3D_KEY][row], np.float64) - root
    view_k = geo.mirror_intrinsics(intrinsics, crop.width) if crop.is_left else np.asarray(intrinsics, np.float64)
    placement, translation = "hand_box", None
    if joints_2d_crop is not None:
        joints_2d_view = geo.apply_affine(np.linalg.inv(crop.image_to_crop), joints_2d_crop).astype(np.float64)
        translation = solve_root_translation(joints_2d_view, joints_rel, view_k)
    box_translation = box_fit_translation(joints_rel, crop.hand_box_view, view_k)
    if translation is not None and depths_agree(joints_rel, translation, box_translation):
        placement = "joints_2d"
    else:
        translation = box_translation
        joints_2d_view = geo.project_points(joints_rel + translation, view_k).astype(np.float64)
    joints_cam, verts_cam = joints_rel + translation, verts_rel + translation
    if crop.is_left:
        joints_cam, verts_cam = geo.mirror_points_3d(joints_cam), geo.mirror_points_3d(verts_cam)
        joints_2d_view = geo.mirror_points_2d(joints_2d_view, crop.width)
    return PlacedHand(hand, np.asarray(joints_2d_view, np.float64), np.asarray(joints_cam, np.float64),
                      np.asarray(verts_cam, np.float64), placement, **_classifier_outputs(outputs, row))
