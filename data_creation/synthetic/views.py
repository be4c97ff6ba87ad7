"""Cameras and appearance of the synthetic scenes: intrinsics and rig places per serial, look-at extrinsics, skin tones,
table colours with procedural textures (world-aligned on the table plane) and a global lighting tint.

Frames: world = table frame (metres, z up); cameras are OpenCV (x right, y down, z forward). A camera pose
here is the world -> camera transform (4, 4).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from datasets.dexycb_splits import SERIALS

SKIN_TONES = ((0.96, 0.80, 0.69), (0.91, 0.73, 0.60), (0.82, 0.62, 0.48), (0.68, 0.48, 0.34),
              (0.50, 0.34, 0.23), (0.36, 0.24, 0.16))
TABLE_COLOURS = ((0.62, 0.47, 0.32), (0.78, 0.78, 0.76), (0.35, 0.36, 0.40), (0.55, 0.62, 0.55),
                 (0.80, 0.72, 0.58), (0.30, 0.35, 0.50))
TEXTURES = ("flat", "wood", "checker", "blotches")
IMAGE_MARGIN = 20  # px the wrist and object centre keep from the image border


def serial_intrinsics(seed: int) -> dict:
    """serial -> ``{fx, fy, ppx, ppy}`` for 640x480 (fixed per serial, as DexYCB's calibration files)."""
    rng = np.random.default_rng([seed, 7])
    out = {}
    for serial in SERIALS:
        fx = rng.uniform(605.0, 625.0)
        out[serial] = {"fx": fx, "fy": fx * rng.uniform(0.998, 1.002), "ppx": 320.0 + rng.uniform(-8, 8),
                       "ppy": 240.0 + rng.uniform(-6, 6)}
    return out


def look_at(position: np.ndarray, target: np.ndarray, roll: float) -> np.ndarray:
    """World -> camera (4, 4) of an OpenCV camera at ``position`` looking at ``target`` (z up), rolled by
    ``roll`` rad about its optical axis."""
    forward = (target - position) / np.linalg.norm(target - position)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    c, s = np.cos(roll), np.sin(roll)
    rotation = np.stack([c * right + s * down, -s * right + c * down, forward])  # rows: camera axes in world
    pose = np.eye(4)
    pose[:3, :3], pose[:3, 3] = rotation, -rotation @ position
    return pose


def project(world_to_camera: np.ndarray, k: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, 3) world points -> (N, 2) px and (N,) depth."""
    cam = points @ world_to_camera[:3, :3].T + world_to_camera[:3, 3]
    uvw = cam @ k.T
    return uvw[:, :2] / uvw[:, 2:3], cam[:, 2]


def serial_viewpoints(seed: int) -> dict:
    """serial -> ``(distance m, elevation rad, azimuth rad)`` of its place around the table (fixed per serial, as
    DexYCB's camera rig): the 8 serials ring the table 45 deg apart, 25-60 deg above it, 0.6-0.85 m away."""
    rng = np.random.default_rng([seed, 11])
    return {serial: (rng.uniform(0.6, 0.85), np.radians(rng.uniform(25, 60)),
                     np.radians(45.0 * i + rng.uniform(-10, 10))) for i, serial in enumerate(SERIALS)}


def sample_camera(rng: np.random.Generator, viewpoint: tuple, target: np.ndarray, k: np.ndarray,
                  keep_visible: np.ndarray, size=(640, 480), attempts: int = 30) -> np.ndarray:
    """A world -> camera pose looking at ``target`` from the serial's ``viewpoint`` (see :func:`serial_viewpoints`)
    jittered per sequence (about 3 cm, 4 deg, 3 deg roll), that sees every point of ``keep_visible`` (N, 3) at
    least :data:`IMAGE_MARGIN` px inside the image; after ``attempts`` misses the last draw is returned."""
    pose = None
    for _ in range(attempts):
        distance = viewpoint[0] + rng.normal(0.0, 0.03)
        elevation = viewpoint[1] + np.radians(rng.normal(0.0, 4.0))
        azimuth = viewpoint[2] + np.radians(rng.normal(0.0, 4.0))
        offset = np.array([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation)])
        pose = look_at(target + distance * offset, target, rng.normal(0.0, 0.05))
        uv, depth = project(pose, k, keep_visible)
        inside = ((uv >= IMAGE_MARGIN) & (uv <= np.array(size) - IMAGE_MARGIN)).all(axis=1) & (depth > 0.1)
        if inside.all():
            return pose
    return pose


@dataclass(frozen=True)
class Appearance:
    """Colours of a sequence: skin (RGB [0, 1]), table colour, texture kind and parameters, lighting tint
    (per-channel gain) and gamma."""

    skin: tuple
    table: tuple
    texture: str
    texture_scale: float
    texture_angle: float
    texture_seed: int
    tint: tuple
    gamma: float


def sample_appearance(rng: np.random.Generator, skin_index: int) -> Appearance:
    skin = np.clip(np.array(SKIN_TONES[skin_index]) * rng.uniform(0.95, 1.05, 3), 0, 1)
    table = np.clip(np.array(TABLE_COLOURS[rng.integers(len(TABLE_COLOURS))]) * rng.uniform(0.85, 1.15, 3), 0, 1)
    return Appearance(tuple(skin), tuple(table), TEXTURES[rng.integers(len(TEXTURES))], rng.uniform(0.02, 0.08),
                      rng.uniform(0, np.pi), int(rng.integers(1 << 30)), tuple(rng.uniform(0.85, 1.1, 3)),
                      rng.uniform(0.85, 1.15))


def table_points(world_to_camera: np.ndarray, k: np.ndarray, width: int, height: int) -> np.ndarray:
    """(H, W, 2) world x, y where each pixel's ray meets the table plane (NaN where it does not)."""
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    rays = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(k).T @ world_to_camera[:3, :3]  # world dirs
    centre = -world_to_camera[:3, :3].T @ world_to_camera[:3, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -centre[2] / rays[..., 2]
    t[~(t > 0)] = np.nan
    return centre[:2] + rays[..., :2] * t[..., None]


def texture_factor(appearance: Appearance, xy: np.ndarray) -> np.ndarray:
    """(H, W) multiplicative shading of the table texture at world points ``xy`` (H, W, 2)."""
    c, s = np.cos(appearance.texture_angle), np.sin(appearance.texture_angle)
    along, across = xy[..., 0] * c + xy[..., 1] * s, -xy[..., 0] * s + xy[..., 1] * c
    scale = appearance.texture_scale
    if appearance.texture == "wood":
        grain = np.sin(across / scale * 6.0 + 2.0 * np.sin(along / scale * 0.7))
        factor = 1.0 + 0.07 * grain
    elif appearance.texture == "checker":
        factor = np.where((np.floor(along / (2 * scale)) + np.floor(across / (2 * scale))) % 2 == 0, 1.08, 0.82)
    elif appearance.texture == "blotches":
        rng = np.random.default_rng(appearance.texture_seed)
        waves = rng.normal(size=(6, 3))
        factor = 1.0 + 0.05 * sum(np.sin((along * a + across * b) / scale + phase) for a, b, phase in waves)
    else:
        factor = np.ones(xy.shape[:2])
    return np.nan_to_num(factor, nan=1.0)


def finish_image(rgb: np.ndarray, table_mask: np.ndarray, factor: np.ndarray, appearance: Appearance) -> np.ndarray:
    """Apply the table texture (on ``table_mask`` pixels) and the lighting tint / gamma: (H, W, 3) uint8."""
    image = rgb.astype(np.float32) / 255.0
    image[table_mask] *= factor[table_mask, None]
    image = np.clip(image * np.asarray(appearance.tint, np.float32), 0.0, 1.0) ** np.float32(appearance.gamma)
    return np.round(image * 255.0).astype(np.uint8)
