"""Inputs of one de-occlusion: the fused hand+object crop, the GT hand depth condition and the inpainting mask.

The crop is the **un-augmented fused hand+object crop** the loaders train on (left hands mirrored; region from
:func:`datasets.hand_object_sample.crop_region`), taken at the generator's resolution ``gen_res``; the
loader pastes any square crop of that region back (:func:`datasets.transforms.paste_generated_crop`).

Frames and units: camera frame in metres (OpenCV: x right, y down, z forward), crop pixels of a
``gen_res x gen_res`` image. The GT hand mesh is the right-hand MANO of the record's (mirrored, flat-hand-mean)
pose and shape, translated so that its wrist lands on the record's GT wrist.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import cv2
import numpy as np
import torch
from PIL import Image

from datasets import geometry as geo
from datasets.hand_object_sample import HandObjectRecord, crop_region, mirrored_view
from datasets.transforms import warp_image
from utils.hand_conventions import MM_PER_M
from utils.render import MeshSpec

DEPTH_FLOOR = 0.25  # condition value of the farthest hand pixel (background = 0, nearest hand pixel = 1)
WRIST = 0

# render_depth(verts_cam (V, 3) m, faces (F, 3), intrinsics (3, 3) px) -> (R, R) depth m, 0 = empty
DepthRenderer = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class DeocclusionInputs:
    """What the generator needs for one frame (all ``gen_res x gen_res``).

    crop: (R, R, 3) uint8 RGB fused crop. object_mask / hand_mask / inpaint_mask: (R, R) bool.
    depth: (R, R) float32 metres of the GT hand (0 = no hand). control: (R, R, 3) uint8 depth condition.
    """

    crop: np.ndarray
    object_mask: np.ndarray
    hand_mask: np.ndarray
    inpaint_mask: np.ndarray
    depth: np.ndarray
    control: np.ndarray


def warp_image_linear(image: np.ndarray, transform: np.ndarray, res: int) -> np.ndarray:
    """As :func:`datasets.transforms.warp_image` (same PIL pixel convention) but bilinear, for generator input."""
    inverse = np.linalg.inv(transform)
    warped = Image.fromarray(image).transform(
        (res, res), Image.Transform.AFFINE, data=tuple(inverse[:2].ravel()), resample=Image.Resampling.BILINEAR)
    return np.asarray(warped)


def gt_hand_mesh(record: HandObjectRecord, wrist_cam: np.ndarray, mano_layer) -> tuple[np.ndarray, np.ndarray]:
    """GT hand mesh in the (mirrored) camera frame.

    Args:
        record: frame annotations (``mano_pose`` (48,) right-hand flat-mean axis-angle, ``mano_betas`` (10,)).
        wrist_cam: (3,) metres, the GT wrist in the frame the mesh is wanted in (mirrored for left hands).
        mano_layer: right-hand ``models.mano.ManoLayer`` with ``use_pca=False, flat_hand_mean=True``.
    Returns:
        verts (778, 3) metres and faces (1538, 3) int64.
    """
    if record.mano_pose is None or record.mano_betas is None:
        raise ValueError(f"sample '{record.key}' has no MANO annotation; the de-occluder needs the GT hand")
    buffer = mano_layer.th_v_template
    pose = torch.as_tensor(np.asarray(record.mano_pose)[None], dtype=buffer.dtype, device=buffer.device)
    betas = torch.as_tensor(np.asarray(record.mano_betas)[None], dtype=buffer.dtype, device=buffer.device)
    with torch.no_grad():
        verts_mm, joints_mm = mano_layer(pose, betas)
    verts = verts_mm[0].cpu().double().numpy() / MM_PER_M
    joints = joints_mm[0].cpu().double().numpy() / MM_PER_M
    verts = verts - joints[WRIST] + np.asarray(wrist_cam, np.float64)
    return verts, mano_layer.th_faces.cpu().numpy()


def mesh_depth_renderer(renderer) -> DepthRenderer:
    """A :data:`DepthRenderer` drawing with a ``utils.render.MeshRenderer`` of the generator's size."""
    def render_depth(verts_cam: np.ndarray, faces: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
        return renderer.render([MeshSpec(verts_cam, faces)], intrinsics)[1]

    return render_depth


def depth_condition(depth: np.ndarray) -> np.ndarray:
    """Hand depth (H, W) metres (0 = background) -> (H, W, 3) uint8 condition image: near bright, far dim.

    Hand pixels map linearly from ``DEPTH_FLOOR`` (farthest) to 1 (nearest), background stays black (the
    white-on-black hand depth of HandRefiner / the UniHOPE poster).
    """
    hand = depth > 0
    out = np.zeros(depth.shape, np.float32)
    if hand.any():
        near, far = float(depth[hand].min()), float(depth[hand].max())
        closeness = (far - depth[hand]) / max(far - near, 1e-6)
        out[hand] = DEPTH_FLOOR + (1.0 - DEPTH_FLOOR) * closeness
    return np.repeat(np.round(out * 255.0).astype(np.uint8)[..., None], 3, axis=2)


def inpainting_mask(object_mask: np.ndarray, hand_mask: np.ndarray, dilation_px: int) -> np.ndarray:
    """Region to repaint: object pixels and GT hand pixels, dilated by ``dilation_px`` (square kernel). (H, W) bool."""
    region = (np.asarray(object_mask, bool) | np.asarray(hand_mask, bool)).astype(np.uint8)
    if dilation_px > 0:
        region = cv2.dilate(region, np.ones((2 * dilation_px + 1, 2 * dilation_px + 1), np.uint8))
    return region.astype(bool)


def object_silhouette(record: HandObjectRecord, width: int, height: int) -> np.ndarray:
    """Fallback object mask when no segmentation exists: hull of the object's projected 21 box points (H, W) bool."""
    points = geo.transform_points(record.object_pose, record.object_keypoints)
    return geo.convex_silhouette(points, record.intrinsics, width, height)


def deocclusion_inputs(record: HandObjectRecord, image: np.ndarray, object_mask: Optional[np.ndarray],
                       mano_layer, render_depth: DepthRenderer, gen_res: int,
                       dilation_px: int) -> DeocclusionInputs:
    """Build the generator inputs of one grasping frame.

    Args:
        record: the frame's annotations (un-mirrored).
        image: (H, W, 3) uint8 RGB full frame, un-mirrored.
        object_mask: (H, W) grasped-object mask (non-zero = object), un-mirrored; None -> projected box hull.
        mano_layer: see :func:`gt_hand_mesh`.
        render_depth: depth renderer (see ``DepthRenderer``).
        gen_res: side of the generator's square input, px (multiple of 8).
        dilation_px: mask dilation in crop px.
    """
    height, width = image.shape[:2]
    if object_mask is None:
        object_mask = object_silhouette(record, width, height)
    object_mask = (np.asarray(object_mask) != 0).astype(np.uint8) * 255
    view = mirrored_view(record, width)
    if record.is_left:
        image, object_mask = image[:, ::-1], object_mask[:, ::-1]
    image, object_mask = np.ascontiguousarray(image), np.ascontiguousarray(object_mask)
    centre, scale = crop_region(view, True, width, height)
    transform = geo.crop_transform(centre, scale, 0.0, gen_res)
    crop_k = geo.crop_intrinsics(view.intrinsics, centre, scale, 0.0, gen_res)
    if view.joints_3d is None:
        raise ValueError(f"sample '{record.key}' has no GT 3D joints; the de-occluder needs the GT wrist")
    verts, faces = gt_hand_mesh(record, np.asarray(view.joints_3d)[WRIST], mano_layer)
    depth = np.asarray(render_depth(verts, faces, crop_k), np.float32)
    if depth.shape != (gen_res, gen_res):
        raise ValueError(f"the depth renderer made a {depth.shape} image; the generator input is {gen_res} px")
    hand_mask = depth > 0
    crop_object = warp_image(object_mask, transform, gen_res) != 0
    return DeocclusionInputs(
        crop=warp_image_linear(image, transform, gen_res), object_mask=crop_object, hand_mask=hand_mask,
        inpaint_mask=inpainting_mask(crop_object, hand_mask, dilation_px), depth=depth,
        control=depth_condition(depth))
