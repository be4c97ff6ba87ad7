"""Write DexYCB annotation files ``dex_ycb_{setup}_{split}_data.json`` from a DexYCB tree.

A working version of the official script (docs/official-data.md §8.2, §9.3). The tree is walked with the
toolkit's split rules (:mod:`datasets.dexycb_splits`); samples are numbered in the toolkit's order (selected
sequences -> the split's cameras -> frames; a camera folder missing from the tree still takes its numbers, so
keys match the toolkit on a full tree) and keyed ``id_<n>``. Frames without a hand (all ``joint_3d`` = -1, all
``joint_2d`` = -1 or all ``pose_m`` = 0) are skipped, so keys are sparse. Each record holds the toolkit sample
(paths relative to the root, calibration intrinsics, ``ycb_ids``, ``ycb_grasp_ind``, ``mano_side``,
``mano_betas``; ``is_bop_target`` / ``is_grasp_target`` for test splits), the label arrays except ``seg``
(``pose_y``, ``pose_m``, ``joint_3d``, ``joint_2d``) and ``object_seg_file``.

Usage: ``python -m data_creation.labels.create_dataset_dexycb --root $DEX_YCB_DIR [--setups s0 s1 s3]
[--splits train val test] [--out DIR]`` (root defaults to the environment variable ``DEX_YCB_DIR``).
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Iterator

import numpy as np
import yaml

from datasets.dexycb_splits import BOP_SUBSAMPLING, SERIALS, SUBJECTS, split_rule
from utils.atomic import atomic_write
from utils.errors import command_main

ROOT_ENV = "DEX_YCB_DIR"


def read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"DexYCB file not found: {path}")
    with path.open() as f:
        content = yaml.safe_load(f)
    if not isinstance(content, dict):
        raise ValueError(f"{path}: expected a YAML mapping")
    return content


def _meta_field(meta: dict, key: str, path: Path):
    if key not in meta:
        raise KeyError(f"{path}: missing key '{key}'")
    return meta[key]


def iter_split_frames(root: Path, setup: str, split: str) -> Iterator[tuple[int, dict]]:
    """Yield ``(n, sample)`` for every frame of a split in the toolkit's order (frames with or without hand).

    ``sample`` has ``subject, sequence, sequence_index, serial, frame, meta, camera_dir`` (Path).
    """
    rule = split_rule(setup, split)
    offset = 0
    for subject_index in rule.subjects:
        subject_dir = root / SUBJECTS[subject_index]
        if not subject_dir.is_dir():
            continue
        sequences = sorted(p.name for p in subject_dir.iterdir() if p.is_dir())
        for q, sequence in enumerate(sequences):
            if not rule.selects_sequence(q):
                continue
            meta_path = subject_dir / sequence / "meta.yml"
            meta = read_yaml(meta_path)
            num_frames = int(_meta_field(meta, "num_frames", meta_path))
            for c, serial_index in enumerate(rule.serials):
                camera_dir = subject_dir / sequence / SERIALS[serial_index]
                if camera_dir.is_dir():
                    for frame in range(num_frames):
                        yield offset + c * num_frames + frame, dict(
                            subject=SUBJECTS[subject_index], sequence=sequence, sequence_index=q,
                            serial=SERIALS[serial_index], frame=frame, meta=meta, meta_path=meta_path,
                            camera_dir=camera_dir, num_frames=num_frames)
            offset += len(rule.serials) * num_frames


def has_hand(labels) -> bool:
    """False when the frame's labels mark the hand as absent (toolkit convention)."""
    return not (np.all(labels["joint_3d"] == -1) or np.all(labels["joint_2d"] == -1)
                or np.all(labels["pose_m"] == 0))


class Calibration:
    """Cached calibration files: camera intrinsics per serial, MANO betas per calibration name."""

    def __init__(self, root: Path):
        self.root = root
        self._intrinsics: dict = {}
        self._betas: dict = {}

    def intrinsics(self, serial: str) -> dict:
        if serial not in self._intrinsics:
            path = self.root / "calibration" / "intrinsics" / f"{serial}_640x480.yml"
            self._intrinsics[serial] = dict(_meta_field(read_yaml(path), "color", path))
        return self._intrinsics[serial]

    def betas(self, name: str) -> list:
        if name not in self._betas:
            path = self.root / "calibration" / f"mano_{name}" / "mano.yml"
            self._betas[name] = [float(b) for b in _meta_field(read_yaml(path), "betas", path)]
        return self._betas[name]


def frame_record(root: Path, sample: dict, labels, calibration: Calibration, test_split: bool) -> dict:
    """The JSON record of one frame (schema of docs/official-data.md §8.2)."""
    meta, meta_path, frame = sample["meta"], sample["meta_path"], sample["frame"]
    rel_dir = sample["camera_dir"].relative_to(root).as_posix()
    color_file = f"{rel_dir}/color_{frame:06d}.jpg"
    record = {
        "color_file": color_file,
        "depth_file": f"{rel_dir}/aligned_depth_to_color_{frame:06d}.png",
        "label_file": f"{rel_dir}/labels_{frame:06d}.npz",
        "intrinsics": calibration.intrinsics(sample["serial"]),
        "ycb_ids": [int(i) for i in _meta_field(meta, "ycb_ids", meta_path)],
        "ycb_grasp_ind": int(_meta_field(meta, "ycb_grasp_ind", meta_path)),
        "mano_side": _meta_field(meta, "mano_sides", meta_path)[0],
        "mano_betas": calibration.betas(_meta_field(meta, "mano_calib", meta_path)[0]),
    }
    if test_split:
        last_keyframe = (sample["num_frames"] - 1) // BOP_SUBSAMPLING * BOP_SUBSAMPLING
        record["is_bop_target"] = frame % BOP_SUBSAMPLING == 0
        record["is_grasp_target"] = frame == last_keyframe
    for key in ("pose_y", "pose_m", "joint_3d", "joint_2d"):
        record[key] = labels[key].tolist()
    record["object_seg_file"] = f"object_render/{rel_dir}/grasp_object_seg_{frame:06d}.png"
    return record


def iter_records(root: Path, setup: str, split: str) -> Iterator[tuple[str, dict]]:
    """Yield ``("id_<n>", record)`` for the frames of a split that show a hand."""
    calibration = Calibration(root)
    for n, sample in iter_split_frames(root, setup, split):
        label_path = sample["camera_dir"] / f"labels_{sample['frame']:06d}.npz"
        if not label_path.is_file():
            raise FileNotFoundError(f"DexYCB label file not found: {label_path}")
        with np.load(label_path, allow_pickle=False) as labels:
            missing = [k for k in ("pose_y", "pose_m", "joint_3d", "joint_2d") if k not in labels]
            if missing:
                raise KeyError(f"{label_path}: missing arrays {missing}")
            if has_hand(labels):
                yield f"id_{n}", frame_record(root, sample, labels, calibration, split == "test")


def write_split_file(root: str | Path, setup: str, split: str, out_dir: str | Path | None = None) -> tuple[Path, int]:
    """Write ``dex_ycb_{setup}_{split}_data.json`` (streamed, atomically); returns (path, number of records)."""
    root = Path(root)
    out = Path(out_dir if out_dir is not None else root) / f"dex_ycb_{setup}_{split}_data.json"
    count = 0
    with atomic_write(out, "w") as f:
        f.write("{")
        for key, record in iter_records(root, setup, split):
            f.write(("," if count else "") + "\n" + json.dumps(key) + ": " + json.dumps(record))
            count += 1
        f.write("\n}\n")
    return out, count


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=os.environ.get(ROOT_ENV),
                        help=f"DexYCB root folder (default: ${ROOT_ENV})")
    parser.add_argument("--setups", nargs="+", default=["s0", "s1", "s3"], choices=["s0", "s1", "s2", "s3"])
    parser.add_argument("--splits", nargs="+", default=["train", "val", "test"], choices=["train", "val", "test"])
    parser.add_argument("--out", default=None, help="output folder (default: the root)")
    args = parser.parse_args(argv)
    if not args.root:
        parser.error(f"give --root or set the environment variable {ROOT_ENV}")
    for setup in args.setups:
        for split in args.splits:
            path, count = write_split_file(args.root, setup, split, args.out)
            print(f"{path}: {count} samples")


if __name__ == "__main__":
    command_main(main)
