"""Overlay sheet of a synthetic tree: frames with their 2D hand joints and the grasped object's 21 box
keypoints projected from the label files, plus one original / exact de-occluded pair (for the README and
for checking the grasps by eye).
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import yaml

from data_creation.synthetic.phases import load_phases
from data_creation.synthetic.sequence_writer import DEOCCLUDED_NAME
from datasets.label_files import read_points_xyz, read_rgb
from utils.ycb import bbox21_from_points, ycb_class_name

# manopth / DexYCB joint order: wrist, then thumb, index, middle, ring, little (4 joints each, base to tip)
FINGER_COLOURS = ((255, 80, 80), (255, 200, 0), (80, 220, 80), (0, 200, 255), (200, 90, 255))
BOX_EDGES = ((0, 1), (2, 3), (4, 5), (6, 7), (0, 2), (1, 3), (4, 6), (5, 7), (0, 4), (1, 5), (2, 6), (3, 7))


def draw_hand(image: np.ndarray, joints_2d: np.ndarray) -> None:
    """Draw the 21 joints (px) and bones in place, one colour per finger."""
    points = np.round(joints_2d).astype(int)
    for finger, colour in enumerate(FINGER_COLOURS):
        chain = [0] + [1 + 4 * finger + k for k in range(4)]
        for a, b in zip(chain[:-1], chain[1:]):
            cv2.line(image, tuple(points[a]), tuple(points[b]), colour, 2, cv2.LINE_AA)
        for j in chain[1:]:
            cv2.circle(image, tuple(points[j]), 3, colour, -1, cv2.LINE_AA)
    cv2.circle(image, tuple(points[0]), 4, (255, 255, 255), -1, cv2.LINE_AA)


def draw_box(image: np.ndarray, keypoints_2d: np.ndarray) -> None:
    """Draw the 12 edges of a projected 21-keypoint object box (px) and its keypoints, in place."""
    points = np.round(keypoints_2d).astype(int)
    for a, b in BOX_EDGES:
        cv2.line(image, tuple(points[a]), tuple(points[b]), (0, 255, 255), 1, cv2.LINE_AA)
    for p in points:
        cv2.circle(image, tuple(p), 2, (0, 255, 255), -1, cv2.LINE_AA)


def overlay(root: Path, cam_dir: Path, frame: int) -> np.ndarray:
    """(H, W, 3) RGB frame with its labelled hand joints and grasped-object keypoints drawn."""
    image = read_rgb(cam_dir / f"color_{frame:06d}.jpg").copy()
    meta = yaml.safe_load((cam_dir.parent / "meta.yml").read_text())
    intrinsics = yaml.safe_load((root / "calibration" / "intrinsics" / f"{cam_dir.name}_640x480.yml").read_text())
    k = intrinsics["color"]
    with np.load(cam_dir / f"labels_{frame:06d}.npz") as labels:
        pose = labels["pose_y"][meta["ycb_grasp_ind"]].astype(np.float64)
        joints_2d = labels["joint_2d"][0]
    grasp_id = meta["ycb_ids"][meta["ycb_grasp_ind"]]
    box = bbox21_from_points(read_points_xyz(root / "models" / ycb_class_name(grasp_id) / "points.xyz"))
    cam = box @ pose[:3, :3].T + pose[:3, 3]
    box_2d = np.stack([k["fx"] * cam[:, 0] / cam[:, 2] + k["ppx"], k["fy"] * cam[:, 1] / cam[:, 2] + k["ppy"]], 1)
    draw_box(image, box_2d)
    if joints_2d.min() >= 0:
        draw_hand(image, joints_2d)
    return image


def write_sheet(root: str | Path, out: str | Path, sequences: int = 4, columns: int = 3) -> Path:
    """Sheet of the first ``sequences`` sequences of ``synthetic_phases.json`` (first camera): an approach
    frame and the last lift frame with overlays, and for the first sequence its last frame with the exact
    de-occluded partner. Tiles are half size (320 x 240)."""

    root = Path(root)
    tiles = []
    entries = list(load_phases(root)["sequences"].values())[:sequences]
    for n, entry in enumerate(entries):
        cam_dir = root / entry["subject"] / entry["sequence"] / entry["serials"][0]
        last = len(entry["phases"]) - 1
        approach = entry["phases"].index("close") - 1
        tiles += [overlay(root, cam_dir, max(approach, 0)), overlay(root, cam_dir, last)]
        if n == 0:
            tiles += [read_rgb(cam_dir / f"color_{last:06d}.jpg"), read_rgb(cam_dir / DEOCCLUDED_NAME.format(last))]
    tiles = [cv2.resize(t, (t.shape[1] // 2, t.shape[0] // 2), interpolation=cv2.INTER_AREA) for t in tiles]
    while len(tiles) % columns:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.concatenate(tiles[i:i + columns], axis=1) for i in range(0, len(tiles), columns)]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))
    return out
