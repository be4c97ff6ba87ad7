"""The mapper shared by DexYCB and HO3D: one annotated frame + its image -> the official sample dict.

Stage 2 of records -> mapper -> loader (docs/architecture.md, "One DexYCB sample"). The dataset classes turn raw
files into a :class:`HandObjectRecord` (annotations only, no pixels) and read the image / object mask; :func:`build_sample`
mirrors left hands, chooses the crop (hand-only or fused hand+object, by the grasp flag), augments, pairs the
original with its de-occluded image when asked, and returns numpy arrays under the official batch keys
(reference: docs/official-data.md §2-§3). It never mutates the record or the images it is given.

Frames and units: 3D in metres, OpenCV camera frame; 2D in pixels of the full image, then crop px of the
``res x res`` input. Intended behaviour where the official code differs (docs/official-data.md §9):
    * for left hands the intrinsics used for the crop get ``cx' = W - 1 - cx`` so that the mirrored 3D joints
      project onto the mirrored 2D joints (the official code kept the un-mirrored K; no model reads it);
    * the full-resolution ``ori_gray`` key is not emitted (no model reads it; 300 KB per sample).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import cv2
import numpy as np

from datasets import geometry as geo
from datasets.deocc_pairs import PairEntry
from datasets.transforms import (NO_AUGMENTATION, Augmentation, apply_photometric, crop_object_mask,
                                 paste_generated_crop, sample_augmentation, warp_image)
from utils.mano_pose import rotate_global_orient

HAND_CROP_FACTOR = 1.5  # crop region around the hand (and object) points
HAND_BOX_FACTOR = 1.1   # bbox_hand in the crop
OBJECT_MASK_SIZE = 32

# Keys holding one entry per sub-sample; they are concatenated along their first axis when P = 2.
PER_SUBSAMPLE_KEYS = ("img", "mano_param", "mano_pose", "val_mano_pose", "mano_shape", "bbox_hand", "bbox_obj",
                      "joints_img", "joints_coord_cam", "root_joint", "root_joint_flip", "aug_rot_mat",
                      "gt_grasping", "gt_occ_cls", "intrinsics", "obj_p2d", "obj_mask", "gray", "xyz")


@dataclass(frozen=True)
class HandObjectRecord:
    """Annotations of one frame (no pixels). Arrays are float32/float64 numpy; metres, OpenCV camera frame.

    ``hand_points_2d`` (N, 2) px are the points the hand crop is built from: the 21 GT 2D joints, or the two
    corners of HO3D's official hand box at test time. ``mano_pose`` (48,) is already the right-hand,
    flat-hand-mean axis-angle pose (mirrored for left hands); ``joints_3d`` / ``root_joint`` are un-mirrored.
    """

    key: str
    image_path: str
    intrinsics: np.ndarray          # (3, 3)
    hand_points_2d: np.ndarray      # (N, 2) px
    root_joint: np.ndarray          # (3,) m
    is_left: bool
    object_pose: np.ndarray         # (4, 4) object -> camera
    object_keypoints: np.ndarray    # (21, 3) m, object frame
    object_class: int               # YCB id (DexYCB numbering, 1-21)
    grasping: bool
    occ_ratio: float
    joints_2d: Optional[np.ndarray] = None   # (21, 2) px
    joints_3d: Optional[np.ndarray] = None   # (21, 3) m
    mano_pose: Optional[np.ndarray] = None   # (48,) rad
    mano_betas: Optional[np.ndarray] = None  # (10,)


@dataclass(frozen=True)
class SampleSettings:
    """How samples are built (plain values; ``build_*`` functions fill them from the config).

    ``augment`` switches training behaviour on (augmentation, object mask, pairs, the training box order; off: the
    official test path, see :func:`test_boxes`); ``rotation`` names the
    rotation sampler of :mod:`datasets.transforms` (``"dexycb"`` or ``"uniform"``); ``extra_resolutions`` maps
    extra image keys (``img_1``, ``img_cls``, ...) to their side in px.
    """

    res: int
    augment: bool = False
    rotation: str = "dexycb"
    use_data_aug_h: bool = True
    use_data_aug_ho: bool = True
    use_data_aug_h_gen: bool = False
    pair_same_data_aug: bool = False
    contrastive: bool = False
    filter_rule: str = "score"
    score_threshold: float = 0.0
    occ_threshold: float = 0.8
    bbox_hand_normalize_2d_joint: bool = True
    extra_resolutions: dict = field(default_factory=dict)


@dataclass(frozen=True)
class _View:
    """A frame after left-hand mirroring (everything the crop needs, full-image px / camera metres)."""

    intrinsics: np.ndarray
    hand_points_2d: np.ndarray
    object_p2d: np.ndarray
    root_joint_flip: np.ndarray
    joints_2d: Optional[np.ndarray]
    joints_3d: Optional[np.ndarray]


def occlusion_class(occ_ratio: float, occ_threshold: float) -> bool:
    """``gt_occ_cls``: True (= occluded) unless the visible ratio exceeds the threshold."""
    return not occ_ratio > occ_threshold


def pair_is_filtered(rule: str, occ_ratio: float, occ_threshold: float, entry: PairEntry,
                     score_threshold: float) -> bool:
    """Whether the de-occluded partner of a grasping sample is dropped (docs/official-data.md §2.5).

    Rules ``score``, ``occ``, ``and``, ``or``; any other name filters every pair (official behaviour).
    """
    by_score = entry.gen_score + score_threshold - entry.ori_score >= 0
    by_occ = occ_ratio > occ_threshold
    return {"score": by_score, "occ": by_occ, "and": by_score and by_occ, "or": by_score or by_occ}.get(rule, True)


def mirrored_view(record: HandObjectRecord, width: int) -> _View:
    """Mirror a left-hand frame horizontally (2D ``u' = W-1-u``, 3D ``x' = -x``); right hands pass through."""
    object_p2d = geo.project_points(geo.transform_points(record.object_pose, record.object_keypoints),
                                    record.intrinsics, dtype=np.float64)
    if not record.is_left:
        return _View(np.asarray(record.intrinsics, np.float64), np.asarray(record.hand_points_2d, np.float32),
                     object_p2d, np.asarray(record.root_joint, np.float32), record.joints_2d, record.joints_3d)
    return _View(
        intrinsics=geo.mirror_intrinsics(record.intrinsics, width),
        hand_points_2d=geo.mirror_points_2d(record.hand_points_2d, width),
        object_p2d=geo.mirror_points_2d(object_p2d, width),
        root_joint_flip=geo.mirror_points_3d(record.root_joint),
        joints_2d=None if record.joints_2d is None else geo.mirror_points_2d(record.joints_2d, width),
        joints_3d=None if record.joints_3d is None else geo.mirror_points_3d(record.joints_3d))


def crop_region(view: _View, fused: bool, width: int, height: int) -> tuple[np.ndarray, float]:
    """Un-augmented crop region (centre px, side px): the hand box, or its union with the object box."""
    return crop_region_of_points(view.hand_points_2d, view.object_p2d if fused else None, width, height)


def crop_region_of_points(hand_points_2d: np.ndarray, object_points_2d: Optional[np.ndarray], width: int,
                          height: int) -> tuple[np.ndarray, float]:
    """Crop region (centre (2,) px, side px) around hand points (N, 2) px, fused with object points (M, 2) px
    when given: each box enlarged by ``HAND_CROP_FACTOR``, clipped to the image, made square."""
    box = geo.bbox_from_points(hand_points_2d, HAND_CROP_FACTOR)
    if object_points_2d is not None:
        box = geo.union_box(box, geo.bbox_from_points(object_points_2d, HAND_CROP_FACTOR))
    return geo.square_region(geo.clip_box(box, width, height))


def training_boxes(transform: np.ndarray, view: _View) -> tuple[np.ndarray, np.ndarray]:
    """``bbox_hand`` / ``bbox_obj`` (crop px) in the official training order: points mapped, then boxed.

    The hand points and the object keypoints are first mapped into the (possibly rotated) crop, then
    :func:`datasets.geometry.bbox_from_points` boxes them there (factor 1.1 / 1.0), truncating the box centre to a
    whole *crop* pixel (docs/official-data.md §2.2).
    """
    return (geo.bbox_from_points(geo.apply_affine(transform, view.hand_points_2d), HAND_BOX_FACTOR),
            geo.bbox_from_points(geo.apply_affine(transform, view.object_p2d), 1.0))


def test_boxes(transform: np.ndarray, view: _View) -> tuple[np.ndarray, np.ndarray]:
    """``bbox_hand`` / ``bbox_obj`` (crop px) in the official test order: boxed in the image, then mapped.

    The boxes are built from full-image-pixel points (centre truncated to a whole *image* pixel), and their two
    corners are then mapped through the crop affine. The two orders give different boxes (up to ~1 crop px)
    unless the crop happens to be centred on the box's own truncated centre, and released checkpoints were
    evaluated on this one (docs/official-data.md §2.2). Test crops are never rotated, so the corners stay ordered.
    """
    return (geo.map_box(transform, geo.bbox_from_points(view.hand_points_2d, HAND_BOX_FACTOR)),
            geo.map_box(transform, geo.bbox_from_points(view.object_p2d, 1.0)))


def image_tensor(crop: np.ndarray) -> np.ndarray:
    """(res, res, 3) uint8 -> (3, res, res) float32 in [0, 1]."""
    return np.ascontiguousarray(crop.transpose(2, 0, 1), dtype=np.float32) / 255.0


def resized_copies(crop: np.ndarray, sizes: dict) -> dict:
    """Extra network inputs: ``{key: side px}`` -> ``{key: (3, side, side) float32}`` bilinear resizes of a crop."""
    return {key: image_tensor(cv2.resize(crop, (side, side), interpolation=cv2.INTER_LINEAR))
            for key, side in sizes.items()}


def crop_subsample(record: HandObjectRecord, view: _View, image: np.ndarray, mask: Optional[np.ndarray],
                   centre: np.ndarray, scale: float, augmentation: Augmentation, settings: SampleSettings) -> dict:
    """Warp one image into one sub-sample (crop, boxes, 2D/3D targets, MANO, intrinsics, object mask).

    The boxes follow the official order of the mode: :func:`test_boxes` for the un-jittered crops of val / test
    (``settings.augment`` off), so evaluation inputs equal the official test inputs; :func:`training_boxes` in
    training and for any jittered crop (a fixed augmentation given to an evaluation dataset, e.g. to visualise).
    """
    jitter = augmentation.crop
    test_path = not settings.augment and jitter == NO_AUGMENTATION.crop
    centre = np.asarray(centre, np.float64) + np.asarray(jitter.centre_offset)
    scale = scale * jitter.scale_factor
    res = settings.res
    transform = geo.crop_transform(centre, scale, jitter.rotation, res)
    if test_path:  # the official test path keeps the affine in float32 and crops with that one
        transform = transform.astype(np.float32).astype(np.float64)
    rotation = geo.rotation_z(jitter.rotation)
    crop = warp_image(image, transform, res)
    if augmentation.photometric != NO_AUGMENTATION.photometric:
        crop = apply_photometric(crop, augmentation.photometric)
    cropped_k = geo.crop_intrinsics(view.intrinsics, centre, scale, jitter.rotation, res)
    object_p2d = geo.apply_affine(transform, view.object_p2d)
    bbox_hand, bbox_obj = (test_boxes if test_path else training_boxes)(transform, view)
    out = {
        "img": image_tensor(crop),
        **resized_copies(crop, settings.extra_resolutions),
        "bbox_hand": bbox_hand, "bbox_obj": bbox_obj,
        "aug_rot_mat": rotation.astype(np.float32),
        "intrinsics": np.array([cropped_k[0, 0], cropped_k[1, 1], cropped_k[0, 2], cropped_k[1, 2]], np.float32),
        "root_joint": (rotation @ record.root_joint).astype(np.float32),
        "root_joint_flip": (rotation @ view.root_joint_flip).astype(np.float32),
        "affinetrans": transform.astype(np.float32),
        "cropped_intrinsics": cropped_k.astype(np.float32),
    }
    if view.joints_2d is not None:
        joints_px = geo.apply_affine(transform, view.joints_2d)
        out["joints_img"] = (geo.normalize_to_box(joints_px, bbox_hand) if settings.bbox_hand_normalize_2d_joint
                             else joints_px / res).astype(np.float32)
        out["uv"] = (joints_px / res).astype(np.float32)
        height, width = image.shape[:2]
        in_image = np.all((view.joints_2d > 0) & (view.joints_2d < [width, height]), axis=1)
        in_crop = np.all((out["uv"] > 0) & (out["uv"] < 1), axis=1)
        out["uv_valid"] = (in_image & in_crop).astype(np.float32)
        out["xyz_valid"] = np.float32(out["uv_valid"][0] > 0 or out["uv_valid"][9] > 0)
    if view.joints_3d is not None:
        out["joints_coord_cam"] = (np.asarray(view.joints_3d) @ rotation.T).astype(np.float32)
        out["xyz"] = out["joints_coord_cam"]
    if record.mano_pose is not None:
        pose = rotate_global_orient(record.mano_pose, rotation).astype(np.float32)
        betas = np.asarray(record.mano_betas, np.float32)
        out.update(mano_param=np.concatenate([pose, betas]), mano_pose=pose, val_mano_pose=pose.copy(),
                   mano_shape=betas)
    out["obj_p2d"] = geo.normalize_to_box(object_p2d, bbox_obj)
    if mask is not None:
        mask_crop = warp_image(mask, transform, res)
        out["gray"] = (mask_crop.astype(np.float32) / 255.0)[None]
        out["obj_mask"] = crop_object_mask(mask_crop, bbox_obj, OBJECT_MASK_SIZE)
    return out


def _augmentations(settings: SampleSettings, rng: np.random.Generator, scale: float, fused: bool,
                   paired: bool, fixed: Optional[Augmentation]) -> tuple[Augmentation, Optional[Augmentation]]:
    """Augmentation of the original crop and (when paired) of the de-occluded crop (official §2.5 cases).

    ``fixed`` replaces every draw (both crops get it when paired).
    """
    if fixed is not None:
        return fixed, fixed if paired else None
    if not settings.augment:
        return NO_AUGMENTATION, NO_AUGMENTATION if paired else None

    def draw(enabled: bool) -> Augmentation:
        return sample_augmentation(rng, scale, settings.rotation) if enabled else NO_AUGMENTATION

    if not paired:
        return draw(settings.use_data_aug_ho if fused else settings.use_data_aug_h), None
    original = draw(settings.use_data_aug_ho)
    if settings.use_data_aug_ho and settings.use_data_aug_h_gen and settings.pair_same_data_aug:
        return original, original
    return original, draw(settings.use_data_aug_h_gen)


def _combine(parts: list[dict]) -> dict:
    """Concatenate per-sub-sample keys along the first axis; other keys come from the first sub-sample."""
    out = dict(parts[0])
    for key in PER_SUBSAMPLE_KEYS:
        if key in out:
            out[key] = np.concatenate([np.atleast_1d(part[key]) for part in parts], axis=0)
    return out


def build_sample(record: HandObjectRecord, image: np.ndarray, settings: SampleSettings,
                 rng: np.random.Generator, mask: Optional[np.ndarray] = None,
                 pair: Optional[PairEntry] = None, generated_crop: Optional[np.ndarray] = None,
                 augmentation: Optional[Augmentation] = None) -> dict:
    """Build the sample dict of one frame.

    Args:
        record: the frame's annotations.
        image: (H, W, 3) uint8 RGB, un-mirrored.
        settings: crop / augmentation / pairing settings.
        rng: source of the augmentation draws.
        mask: (H, W) uint8 mask of the grasped object (non-zero = object), un-mirrored; train only.
        pair: the frame's entry of the de-occluded pair index (contrastive training), or None.
        generated_crop: (h, w, 3) uint8 de-occluded crop of the un-augmented fused crop (with ``pair``).
        augmentation: a fixed augmentation used instead of random draws (e.g. for visualisation or tests).
    Returns:
        dict of numpy arrays under the official keys, with P = 2 sub-samples in contrastive mode, else 1.
        ``affinetrans`` / ``cropped_intrinsics`` (3, 3) of the first sub-sample are included for the datasets'
        test-mode extras.
    """
    height, width = image.shape[:2]
    view = mirrored_view(record, width)
    if record.is_left:
        image = image[:, ::-1]
        mask = None if mask is None else mask[:, ::-1]
    image = np.ascontiguousarray(image)
    mask = None if mask is None else np.ascontiguousarray(mask)
    fused = bool(record.grasping)
    centre, scale = crop_region(view, fused, width, height)
    occluded = occlusion_class(record.occ_ratio, settings.occ_threshold)
    paired = (settings.augment and settings.contrastive and fused and pair is not None
              and generated_crop is not None
              and not pair_is_filtered(settings.filter_rule, record.occ_ratio, settings.occ_threshold, pair,
                                       settings.score_threshold))
    original_aug, generated_aug = _augmentations(settings, rng, scale, fused, paired, augmentation)
    first = crop_subsample(record, view, image, mask, centre, scale, original_aug, settings)
    first.update(gt_grasping=np.array([fused]), gt_occ_cls=np.array([occluded]))
    if paired:
        generated_image = paste_generated_crop(image, generated_crop, centre, scale, settings.res)
        second = crop_subsample(record, view, generated_image, mask, centre, scale, generated_aug, settings)
        second.update(gt_grasping=np.array([False]), gt_occ_cls=np.array([False]))
        parts = [first, second]
    else:
        parts = [first, first] if settings.contrastive else [first]
    sample = _combine(parts)
    sample.update(gt_occ_ratio=np.float32(record.occ_ratio), is_filtered=np.bool_(not paired),
                  obj_cls_label=np.array([record.object_class - 1], np.int64), do_flip=np.bool_(record.is_left))
    return sample
