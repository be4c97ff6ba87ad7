"""Image-side transforms of the crop pipeline: affine warps, de-occluded crop pasting, augmentation draws.

Reference: docs/official-data.md §2.2 (warp), §2.4 (augmentation constants), §2.5 (pasting generated crops).
Images are numpy arrays ``(H, W, 3)`` uint8 RGB or ``(H, W)`` uint8 masks.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from datasets.geometry import crop_affine

# Augmentation constants of the official loaders (constructor defaults, not configurable there either).
SCALE_JITTER = 0.2
CENTER_JITTER = 0.1
MAX_ROTATION = math.pi
HUE = 0.15
SATURATION = 0.5
CONTRAST = 0.5
BRIGHTNESS = 0.5
BLUR_RADIUS = 0.5
DEXYCB_ROTATION_PROBABILITY = 0.6


@dataclass(frozen=True)
class CropJitter:
    """Geometric jitter of a crop: centre offset (px, (2,)), scale factor, in-plane rotation (radians)."""

    centre_offset: tuple = (0.0, 0.0)
    scale_factor: float = 1.0
    rotation: float = 0.0


@dataclass(frozen=True)
class PhotometricJitter:
    """Blur radius (px) and colour factors; ``order`` is the order of the four colour adjustments."""

    blur_radius: float = 0.0
    brightness: float = 1.0
    saturation: float = 1.0
    hue: float = 0.0
    contrast: float = 1.0
    order: tuple = ()


@dataclass(frozen=True)
class Augmentation:
    crop: CropJitter = CropJitter()
    photometric: PhotometricJitter = PhotometricJitter()


NO_AUGMENTATION = Augmentation()


def sample_rotation_dexycb(rng: np.random.Generator) -> float:
    """DexYCB: with probability 0.6, ``clip(N(0,1), -2, 2) * 30`` degrees (|theta| <= 60 deg), else 0; radians."""
    if rng.random() >= DEXYCB_ROTATION_PROBABILITY:
        return 0.0
    degrees = float(np.clip(rng.standard_normal(), -2.0, 2.0)) * 30.0
    return degrees * MAX_ROTATION / 180.0


def sample_rotation_uniform(rng: np.random.Generator) -> float:
    """HO3D: ``U(-pi, pi)`` radians, always."""
    return float(rng.uniform(-MAX_ROTATION, MAX_ROTATION))


ROTATION_SAMPLERS = {"dexycb": sample_rotation_dexycb, "uniform": sample_rotation_uniform}


def sample_augmentation(rng: np.random.Generator, scale: float, rotation: str) -> Augmentation:
    """Draw one set of augmentation parameters for a crop of side ``scale`` px.

    Args:
        rotation: ``"dexycb"`` or ``"uniform"`` (see :data:`ROTATION_SAMPLERS`).
    """
    offset = CENTER_JITTER * scale * rng.uniform(-1.0, 1.0, size=2)
    scale_factor = float(np.clip(1.0 + SCALE_JITTER * rng.standard_normal(), 1.0 - SCALE_JITTER, 1.0 + SCALE_JITTER))
    theta = ROTATION_SAMPLERS[rotation](rng)
    photometric = PhotometricJitter(
        blur_radius=float(rng.uniform(0.0, BLUR_RADIUS)),
        brightness=float(rng.uniform(1.0 - BRIGHTNESS, 1.0 + BRIGHTNESS)),
        saturation=float(rng.uniform(1.0 - SATURATION, 1.0 + SATURATION)),
        hue=float(rng.uniform(-HUE, HUE)),
        contrast=float(rng.uniform(1.0 - CONTRAST, 1.0 + CONTRAST)),
        order=tuple(int(i) for i in rng.permutation(4)))
    return Augmentation(CropJitter(tuple(float(v) for v in offset), scale_factor, theta), photometric)


def warp_image(image: np.ndarray, transform: np.ndarray, res: int) -> np.ndarray:
    """Warp an image (H, W[, C]) uint8 into a ``res x res`` crop with the image-to-crop affine (3, 3).

    Nearest-neighbour resampling, black outside (PIL ``Image.transform`` with the inverse affine, as the
    official loaders do).
    """
    inverse = np.linalg.inv(transform)
    warped = Image.fromarray(image).transform(
        (res, res), Image.Transform.AFFINE, data=tuple(inverse[:2].ravel()), resample=Image.Resampling.NEAREST)
    return np.asarray(warped)


def apply_photometric(crop: np.ndarray, jitter: PhotometricJitter) -> np.ndarray:
    """Gaussian blur then brightness / saturation / hue / contrast in ``jitter.order`` on an RGB crop (uint8)."""
    from torchvision.transforms import functional as tvf  # heavy: only training-time photometric augmentation

    image = Image.fromarray(crop)
    if jitter.blur_radius > 0:
        image = image.filter(ImageFilter.GaussianBlur(jitter.blur_radius))
    adjustments = (
        lambda im: tvf.adjust_brightness(im, jitter.brightness),
        lambda im: tvf.adjust_saturation(im, jitter.saturation),
        lambda im: tvf.adjust_hue(im, jitter.hue),
        lambda im: tvf.adjust_contrast(im, jitter.contrast),
    )
    for index in jitter.order:
        image = adjustments[index](image)
    return np.asarray(image)


def crop_object_mask(mask_crop: np.ndarray, box: np.ndarray, size: int = 32) -> np.ndarray:
    """Cut a crop-px box out of a mask crop (outside = 0), resize to ``size x size`` nearest, binarise.

    Returns (size, size) int64 with 1 where the mask is non-zero.
    """
    cut = Image.fromarray(mask_crop).crop(tuple(float(v) for v in box))
    resized = np.asarray(cut.resize((size, size), Image.Resampling.NEAREST))
    return (resized != 0).astype(np.int64)


def paste_generated_crop(image: np.ndarray, generated: np.ndarray, centre: np.ndarray, scale: float,
                         res: int) -> np.ndarray:
    """Put a de-occluded crop back into a copy of the full image.

    ``generated`` (h, w, 3) uint8 is the crop produced for the *un-augmented* crop region (``centre``, ``scale``);
    it is resized to ``res`` (nearest), warped back into the image with the inverse crop affine and pasted over
    the inner integer rectangle of the region (clipped to the image). Returns a new (H, W, 3) uint8 image.
    """
    if generated.shape[:2] != (res, res):
        generated = np.asarray(Image.fromarray(generated).resize((res, res), Image.Resampling.NEAREST))
    height, width = image.shape[:2]
    affine = crop_affine(centre, scale, res)
    back = Image.fromarray(generated).transform(
        (width, height), Image.Transform.AFFINE, data=tuple(affine[:2].ravel()), resample=Image.Resampling.NEAREST)
    half = scale / 2.0
    x1, y1 = max(0, math.ceil(centre[0] - half)), max(0, math.ceil(centre[1] - half))
    x2, y2 = min(width, math.floor(centre[0] + half)), min(height, math.floor(centre[1] + half))
    out = np.array(image, copy=True)
    if x2 > x1 and y2 > y1:
        out[y1:y2, x1:x2] = np.asarray(back)[y1:y2, x1:x2]
    return out
