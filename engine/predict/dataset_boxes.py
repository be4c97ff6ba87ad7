"""A boxes file for ``predict.py`` from a dataset split's ground truth (a handful of evenly spread frames).

    python -m engine.predict.dataset_boxes --model_dir outputs/demo/unihope.synthetic --count 6 --out boxes.json

Each record: the frame's image path, the tight box of its GT 2D joints, its side, the box of its projected object
keypoints for grasping frames (the crop the evaluation uses there), and the frame's camera intrinsics. Running
``predict.py --boxes boxes.json`` without inputs then reconstructs those frames: the boxes are what a perfect
hand detector would give.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from datasets import build_dataset, geometry as geo
from engine.cli import base_parser, load_run_config
from engine.prediction_sheet import sheet_indices
from utils.atomic import atomic_write_json


def _box(points: np.ndarray) -> list:
    return [round(float(v), 2) for v in np.concatenate([points.min(0), points.max(0)])]


def frame_record(record) -> dict:
    """The boxes-file record of one dataset frame (a :class:`datasets.hand_object_sample.HandObjectRecord`)."""
    k = record.intrinsics
    item = {"image": record.image_path, "box": _box(record.hand_points_2d),
            "side": "left" if record.is_left else "right",
            "intrinsics": [float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2])]}
    if record.grasping:
        item["object_box"] = _box(geo.project_points(geo.transform_points(record.object_pose, record.object_keypoints),
                                                     k))
    return item


def main(argv=None) -> Path:
    parser = base_parser("Write a predict.py boxes file from the GT of a few frames of an experiment's dataset split.")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"))
    parser.add_argument("--count", type=int, default=6, help="frames, spread evenly over the split")
    parser.add_argument("--out", required=True, help="boxes JSON to write")
    args = parser.parse_args(argv)
    dataset = build_dataset(load_run_config(args), args.split)
    records = [frame_record(dataset.record(int(i))) for i in sheet_indices(len(dataset), args.count)]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, records)
    print(f"{len(records)} hand record(s) written to {args.out}")
    return Path(args.out)


if __name__ == "__main__":
    main()
