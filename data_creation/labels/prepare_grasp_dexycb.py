"""Grasp labels of a DexYCB split: ``grasp_{setup}_{split}.npy`` (key -> bool) beside the annotation file.

Rule (docs/official-data.md §8.3): with ``P_t`` the grasped object's pose in the frame and ``P_0`` its pose in
frame 0 of the same sequence and camera, ``D = P_t^-1 P_0``; the hand grasps the object when the object has
moved since the start: rotation angle of ``D`` > 5 degrees or ``|t_D|`` > 0.05 m. (DexYCB "hand-only" frames
are the approach phase before the object moves.) The file is ``np.save`` of the dict (a 0-d object array),
written where :mod:`datasets.dexycb` reads it (the official script wrote ``nori/grasp_{split}_v2.npy``).

Usage: ``python -m data_creation.labels.prepare_grasp_dexycb --root $DEX_YCB_DIR --data_split s0_train [s0_test ...]``
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from data_creation.labels.create_dataset_dexycb import ROOT_ENV, read_yaml
from datasets.dexycb import annotation_file
from datasets.dexycb_index import load_index
from datasets.dexycb_splits import parse_split_name
from datasets.geometry import rotation_angle_deg
from datasets.label_files import write_label_dict
from utils.errors import command_main

ROTATION_THRESHOLD_DEG = 5.0
TRANSLATION_THRESHOLD_M = 0.05


def object_motion(pose_t: np.ndarray, pose_0: np.ndarray) -> tuple[float, float]:
    """(rotation degrees, translation metres) of ``D = P_t^-1 P_0`` for two (3, 4) / (4, 4) object poses."""
    def homogeneous(pose):
        out = np.eye(4)
        out[:3] = np.asarray(pose, dtype=np.float64)[:3]
        return out

    relative = np.linalg.inv(homogeneous(pose_t)) @ homogeneous(pose_0)
    return rotation_angle_deg(relative[:3, :3]), float(np.linalg.norm(relative[:3, 3]))


def is_grasping(pose_t: np.ndarray, pose_0: np.ndarray) -> bool:
    """True when the object moved more than 5 degrees or 5 cm since the first frame."""
    rotation, translation = object_motion(pose_t, pose_0)
    return rotation > ROTATION_THRESHOLD_DEG or translation > TRANSLATION_THRESHOLD_M


def first_frame_pose(root: Path, camera_dir: str, cache: dict) -> np.ndarray:
    """Grasped object's pose (3, 4) in ``labels_000000.npz`` of a camera folder (grasp index from meta.yml)."""
    if camera_dir not in cache:
        meta_path = (root / camera_dir).parent / "meta.yml"
        meta = read_yaml(meta_path)
        if "ycb_grasp_ind" not in meta:
            raise KeyError(f"{meta_path}: missing key 'ycb_grasp_ind'")
        label_path = root / camera_dir / "labels_000000.npz"
        if not label_path.is_file():
            raise FileNotFoundError(f"first-frame label file not found: {label_path}")
        with np.load(label_path, allow_pickle=False) as labels:
            cache[camera_dir] = np.asarray(labels["pose_y"][int(meta["ycb_grasp_ind"])], dtype=np.float64)
    return cache[camera_dir]


def grasp_labels(root: str | Path, setup: str, split: str) -> dict[str, bool]:
    """``id_<n>`` -> grasp flag for every record of ``dex_ycb_{setup}_{split}_data.json``."""
    root = Path(root)
    index = load_index(annotation_file(root, setup, split))
    cache: dict = {}
    return {index.key(i): is_grasping(index.grasp_pose[i],
                                      first_frame_pose(root, str(index.dirs[index.dir_index[i]]), cache))
            for i in range(len(index))}


def write_grasp_file(root: str | Path, setup: str, split: str) -> tuple[Path, dict]:
    """Write ``<root>/grasp_{setup}_{split}.npy``; returns (path, labels)."""
    labels = grasp_labels(root, setup, split)
    return write_label_dict(Path(root) / f"grasp_{setup}_{split}.npy", labels), labels


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=os.environ.get(ROOT_ENV), help=f"DexYCB root (default: ${ROOT_ENV})")
    parser.add_argument("--data_split", nargs="+", required=True, help="e.g. s0_train s0_test")
    args = parser.parse_args(argv)
    if not args.root:
        parser.error(f"give --root or set the environment variable {ROOT_ENV}")
    for name in args.data_split:
        setup, split = parse_split_name(name)
        path, labels = write_grasp_file(args.root, setup, split)
        print(f"{path}: {sum(labels.values())} grasping / {len(labels)} samples")


if __name__ == "__main__":
    command_main(main)
