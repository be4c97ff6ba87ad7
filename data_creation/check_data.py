"""Check a DexYCB or HO3D v2 root before a run, and write a manifest of its label files.

    python -m data_creation.check_data --root /data/DexYCB --dataset dexycb --setup s0 [--images] [--manifest m.json]
    python -m data_creation.check_data --root /data/HO3D_v2 --dataset ho3d [--images] [--manifest m.json]

What is checked, with the datasets' own readers (:mod:`datasets.dexycb_index`, :mod:`datasets.ho3d`,
:mod:`datasets.label_files`):

* samples per split, counted from the annotation files (DexYCB ``dex_ycb_{s}_{split}_data.json``: train and test
  required, val when present; HO3D: the ``train/`` metas split into train / val as the loader does, and
  ``evaluation.txt`` for test);
* label files against those samples: ``grasp_*.npy`` must hold a label for every sample (missing file or
  missing keys are problems), ``hand_occ_*.npy`` likewise when present (the loaders default to 1.0 without
  it, so its absence is only noted); labels for keys outside the split are noted, not counted as problems;
* every sample's image exists and is not empty (stat only), or with ``--images`` decodes (truncated files
  are caught, see :func:`datasets.label_files.read_rgb`);
* DexYCB training samples: the grasped-object mask source (``object_render/...png`` or ``labels_*.npz``);
* calibration: DexYCB ``calibration/intrinsics/<serial>_640x480.yml`` for every camera used and each sequence's
  ``meta.yml`` with its ``calibration/mano_<calib>/mano.yml``; HO3D keeps the camera (``camMat``) in each frame's
  ``meta/<ID>.pkl``, so a test frame without its meta is reported; object models ``models/<name>/points.xyz``.

Reading the annotations builds the loaders' index caches (``*.index.npz`` beside a DexYCB annotation file,
``ho3d_{split}.index.npz`` in the HO3D root) where the folder is writable, as the first training run would.
Every problem is one line naming the file. The manifest JSON (written atomically) holds the sample counts, the
problems and notes, and the size and sha256 of every label file (annotation JSON / ``evaluation.txt``,
``grasp_*.npy``, ``hand_occ_*.npy``), so two machines can compare their data. Exit status 2 when anything is off.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from data_creation.labels.create_dataset_dexycb import Calibration, read_yaml
from datasets.dexycb import SETUPS as DEXYCB_SETUPS, annotation_file
from datasets.dexycb_index import load_index
from datasets.ho3d import load_ho3d_index, image_file, meta_file, split_keys
from datasets.label_files import load_label_dict, read_rgb
from utils.atomic import atomic_write_json
from utils.errors import DataError, command_main
from utils.ycb import YCB_CLASSES

DATASETS = ("dexycb", "ho3d")
SHOWN_KEYS = 3  # example keys listed in a problem line
HASH_CHUNK = 1 << 20


@dataclass
class DataReport:
    """What a check found: samples per split, problems (make the check fail), notes, label-file digests."""

    samples: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    label_files: dict[str, dict] = field(default_factory=dict)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _examples(keys: Sequence[str]) -> str:
    return ", ".join(keys[:SHOWN_KEYS]) + (", ..." if len(keys) > SHOWN_KEYS else "")


def check_label_file(report: DataReport, root: Path, name: str, keys: Sequence[str], what: str,
                     required: bool) -> None:
    """Compare the label file ``root/name`` (key -> label) with the sample ``keys`` of ``what``; record its digest."""
    path = root / name
    if not path.is_file():
        (report.problems if required else report.notes).append(f"{path}: missing (labels for {what})")
        return
    try:
        labels = load_label_dict(path)
    except (ValueError, OSError) as err:
        report.problems.append(f"{path}: unreadable ({err})")
        return
    report.label_files[name].update(entries=len(labels))
    unlabelled = [key for key in keys if key not in labels]
    if unlabelled:
        report.problems.append(f"{path}: {len(labels)} labels, but {len(unlabelled)} of the {len(keys)} samples of "
                               f"{what} have none ({_examples(unlabelled)})")
    extra = len(labels) - (len(keys) - len(unlabelled))
    if extra > 0:
        report.notes.append(f"{path}: {extra} labels for keys outside {what}")


def check_images(report: DataReport, paths: Iterable[Path], decode: bool) -> None:
    """Each image must exist and be non-empty; with ``decode`` it must also decode completely."""
    for path in paths:
        if not path.is_file():
            report.problems.append(f"{path}: missing image")
        elif path.stat().st_size == 0:
            report.problems.append(f"{path}: empty image")
        elif decode:
            try:
                read_rgb(path)
            except (FileNotFoundError, DataError):
                report.problems.append(f"{path}: cannot be decoded (truncated or not an image)")


def check_object_models(report: DataReport, root: Path, ycb_ids: Iterable[int]) -> None:
    for ycb_id in sorted({int(i) for i in ycb_ids}):
        path = root / "models" / YCB_CLASSES[ycb_id] / "points.xyz"
        if not path.is_file():
            report.problems.append(f"{path}: missing object model points")


def digest_label_files(report: DataReport, root: Path, names: Iterable[str]) -> None:
    for name in names:
        path = root / name
        if path.is_file():
            report.label_files[name] = {"bytes": path.stat().st_size, "sha256": sha256_of(path)}


def check_dexycb(root: Path, setup: str, decode_images: bool) -> DataReport:
    """DexYCB ``setup`` (s0 / s1 / s3): train and test required, val checked when its annotation file exists."""
    report = DataReport()
    splits = [split for split in ("train", "val", "test")
              if split != "val" or annotation_file(root, setup, split).is_file()]
    digest_label_files(report, root, [name for split in splits for name in (
        annotation_file(root, setup, split).name, f"grasp_{setup}_{split}.npy", f"hand_occ_{setup}_{split}.npy")])
    if "val" not in splits:
        report.notes.append(f"{annotation_file(root, setup, 'val')}: absent (the val split is optional)")
    camera_dirs: set[str] = set()
    for split in splits:
        try:
            index = load_index(annotation_file(root, setup, split))
        except (FileNotFoundError, KeyError, ValueError) as err:
            report.problems.append(str(err))
            continue
        report.samples[split] = len(index)
        keys = index.keys()
        check_label_file(report, root, f"grasp_{setup}_{split}.npy", keys, f"{setup}_{split}", required=True)
        check_label_file(report, root, f"hand_occ_{setup}_{split}.npy", keys, f"{setup}_{split}", required=False)
        check_images(report, (root / index.color_file(i) for i in range(len(index))), decode_images)
        if split == "train":
            for i in range(len(index)):
                if not (root / index.object_seg_file(i)).is_file() and not (root / index.label_file(i)).is_file():
                    report.problems.append(f"{root / index.object_seg_file(i)}: missing, and no "
                                           f"{index.label_file(i)} to take the object mask from")
        check_object_models(report, root, index.grasp_ycb_id)
        camera_dirs.update(str(d) for d in index.dirs[np.unique(index.dir_index)])
    check_dexycb_calibration(report, root, sorted(camera_dirs))
    return report


def check_dexycb_calibration(report: DataReport, root: Path, camera_dirs: Sequence[str]) -> None:
    """Intrinsics of every camera serial and the MANO calibration named by every sequence's ``meta.yml``."""
    calibration = Calibration(root)
    for serial in sorted({d.rsplit("/", 1)[-1] for d in camera_dirs}):
        try:
            calibration.intrinsics(serial)
        except (FileNotFoundError, KeyError, ValueError) as err:
            report.problems.append(f"calibration: {err}")
    for sequence in sorted({d.rsplit("/", 1)[0] for d in camera_dirs}):
        meta_path = root / sequence / "meta.yml"
        try:
            calibration.betas(read_yaml(meta_path)["mano_calib"][0])
        except KeyError as err:
            report.problems.append(f"calibration: {meta_path}: no 'mano_calib' ({err})")
        except (FileNotFoundError, ValueError) as err:
            report.problems.append(f"calibration: {err}")


def check_ho3d(root: Path, decode_images: bool) -> DataReport:
    """HO3D v2: train / val from ``train/`` (the loader's split), test from ``evaluation.txt``."""
    report = DataReport()
    digest_label_files(report, root, ["evaluation.txt", "grasp_trainval.npy", "grasp_test.npy",
                                      *(f"hand_occ_{split}.npy" for split in ("train", "val", "test"))])
    keys_by_split: dict[str, list[str]] = {}
    for split in ("train", "val", "test"):
        try:
            listed = split_keys(root, split)
        except FileNotFoundError as err:
            report.problems.append(str(err))
            continue
        metas_missing = [key for key in listed if not meta_file(root, split, key).is_file()]
        for key in metas_missing:
            report.problems.append(f"{meta_file(root, split, key)}: missing (camera, object pose and hand box "
                                   f"of the listed frame {key})")
        if metas_missing:
            continue
        try:
            index = load_ho3d_index(root, split)
        except (FileNotFoundError, KeyError, ValueError) as err:
            report.problems.append(str(err))
            continue
        keys_by_split[split] = [str(k) for k in index.keys]
        report.samples[split] = len(index)
        check_label_file(report, root, f"hand_occ_{split}.npy", keys_by_split[split], split, required=False)
        check_images(report, (image_file(root, split, key) for key in keys_by_split[split]), decode_images)
        check_object_models(report, root, index.object_id)
    if "train" in keys_by_split and "val" in keys_by_split:
        check_label_file(report, root, "grasp_trainval.npy", keys_by_split["train"] + keys_by_split["val"],
                         "train + val", required=True)
    if "test" in keys_by_split:
        check_label_file(report, root, "grasp_test.npy", keys_by_split["test"], "test", required=True)
    return report


def manifest(report: DataReport, root: Path, dataset: str, setup: str | None, decode_images: bool) -> dict:
    return {"dataset": dataset, "root": str(root.resolve()), "setup": setup, "images_decoded": decode_images,
            "samples": report.samples, "label_files": report.label_files, "problems": report.problems,
            "notes": report.notes}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", required=True, type=Path, help="the DexYCB or HO3D_v2 folder")
    parser.add_argument("--dataset", required=True, choices=DATASETS)
    parser.add_argument("--setup", default="s0", choices=DEXYCB_SETUPS,
                        help="DexYCB setup whose split files are checked (default s0; ignored for HO3D)")
    parser.add_argument("--images", action="store_true", help="decode every image (slow) instead of stat only")
    parser.add_argument("--manifest", type=Path, help="write counts, problems and label-file sha256 here (JSON)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if not args.root.is_dir():
        print(f"check_data: --root {args.root} is not a folder", file=sys.stderr)
        raise SystemExit(2)
    if args.dataset == "dexycb":
        report, setup = check_dexycb(args.root, args.setup, args.images), args.setup
    else:
        report, setup = check_ho3d(args.root, args.images), None
    for split, count in report.samples.items():
        print(f"{split:>6}: {count} samples")
    for note in report.notes:
        print(f"note: {note}")
    if args.manifest is not None:
        args.manifest.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(args.manifest, manifest(report, args.root, args.dataset, setup, args.images))
        print(f"manifest: {args.manifest} ({len(report.label_files)} label files)")
    if report.problems:
        print(f"{len(report.problems)} problem(s):", file=sys.stderr)
        for problem in report.problems:
            print(f"  {problem}", file=sys.stderr)
        raise SystemExit(2)
    print("data OK")
    return 0


if __name__ == "__main__":
    command_main(main)
