"""Render a synthetic hand-object dataset in the exact DexYCB on-disk layout, with exact de-occluded pairs.

Each sequence: a stand-in (or real) MANO hand, left or right, of one of the 10 DexYCB subjects (own shape,
skin tone) approaches a YCB-like object resting on a textured table (hand-only frames), closes its digits
around it and lifts it (hand-object frames; the object moves rigidly with the hand), seen by ``--cameras``
of the 8 DexYCB camera serials. Objects: :mod:`data_creation.synthetic.objects`; grasps:
:mod:`data_creation.synthetic.grasp`; motion: :mod:`data_creation.synthetic.scene`; files:
:mod:`data_creation.synthetic.sequence_writer` and :mod:`data_creation.dexycb_layout`.

Splits: sequence ``j`` belongs to subject ``j % 10`` with index ``j // 10``, so the toolkit's rules apply
unchanged. With 5 or more sequences per subject (``--sequences`` >= 50) setup **s0** gives train =
``index % 5 != 4`` of all subjects, val = ``index % 5 == 4`` of subjects 1-2, test = ``index % 5 == 4`` of
subjects 3-10; s1 splits by subject; s3 needs >= 40 sequences per subject for a non-empty test split.

Also written: ``synthetic_phases.json`` (per sequence: side, objects, per-frame phase ``approach`` /
``close`` / ``lift``, the DexYCB grasp label of the planned motion, object rotation / translation since frame 0)
and, with ``--prepare``, the real pipeline's files for the given setups: annotation files
(``create_dataset_dexycb``), grasp labels (``prepare_grasp_dexycb``), hand-occlusion ratios
(``compute_hand_occlusion``) and the exact de-occluded pair index (:mod:`data_creation.synthetic.pairs`).

Usage::

    python -m data_creation.synthetic.make_synthetic --out data/synthetic_dexycb --mano_root data/mano_standin \\
        [--seed 0] [--sequences 50] [--frames 24] [--cameras 2] [--workers 2] [--prepare s0] [--sheet sheet.png]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time
from pathlib import Path

import torch
from tqdm import tqdm

from data_creation import dexycb_layout as layout
from data_creation.labels.compute_hand_occlusion import write_occlusion_file
from data_creation.labels.create_dataset_dexycb import write_split_file
from data_creation.labels.prepare_grasp_dexycb import write_grasp_file
from data_creation.synthetic.objects import build_objects
from data_creation.synthetic.pairs import write_exact_pairs
from data_creation.synthetic.phases import PHASES_FILE, PHASES_FORMAT
from data_creation.synthetic.sequence_writer import SequenceWriter, subject_betas
from data_creation.synthetic.sheet import write_sheet
from data_creation.synthetic.views import serial_intrinsics
from datasets.dexycb_splits import SERIALS
from utils.errors import command_main
from utils.mano_io import resolve_mano_root

POINTS_PER_OBJECT = 2048

_WORKER = {}


def _start_worker(root: str, mano_root: str, seed: int, intrinsics: dict) -> None:
    torch.set_num_threads(1)
    _WORKER["writer"] = SequenceWriter(root, mano_root, seed, intrinsics)


def _write_sequence(task: tuple) -> dict:
    index, frames, cameras = task
    return _WORKER["writer"].write(index, frames, cameras)


def write_shared_files(root: Path, seed: int, intrinsics: dict) -> None:
    """Calibration (intrinsics of every serial, MANO shapes of every subject and side) and object models."""
    for serial in SERIALS:
        layout.write_intrinsics(root, serial, **intrinsics[serial])
    for subject, betas in enumerate(subject_betas(seed)):
        for side in ("right", "left"):
            layout.write_mano_calibration(root, layout.mano_calib_name(subject, side), betas)
    for ycb_id, obj in build_objects().items():
        verts, faces = obj.mesh()
        layout.write_object_model(root, ycb_id, obj.surface_points(POINTS_PER_OBJECT, seed=ycb_id), verts, faces)


def write_synthetic(root: str | Path, mano_root: str | Path, seed: int = 0, sequences: int = 50, frames: int = 24,
                    cameras: int = 2, workers: int = 1, progress: bool = True) -> dict:
    """Write the tree; returns the phases manifest (also saved as ``synthetic_phases.json``) plus timing.

    Returns:
        ``{"format", "seed", "frames_written", "seconds", "sequences": {"<subject>/<sequence>": {...}}}``.
    """
    if not 1 <= cameras <= len(SERIALS):
        raise ValueError(f"--cameras must be within 1..{len(SERIALS)}, got {cameras}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    intrinsics = serial_intrinsics(seed)
    write_shared_files(root, seed, intrinsics)
    tasks = [(j, frames, cameras) for j in range(sequences)]
    start = time.perf_counter()
    entries = []
    bar = _progress(len(tasks) * frames * cameras, progress)
    worker_args = (str(root), str(mano_root), seed, intrinsics)
    if workers <= 1:
        _start_worker(*worker_args)
        try:
            for task in tasks:
                entries.append(_write_sequence(task))
                bar.update(frames * cameras)
        finally:
            _WORKER.pop("writer").close()
    else:
        context = multiprocessing.get_context("spawn")
        with context.Pool(workers, initializer=_start_worker, initargs=worker_args) as pool:
            for entry in pool.imap_unordered(_write_sequence, tasks):
                entries.append(entry)
                bar.update(frames * cameras)
    bar.close()
    seconds = time.perf_counter() - start
    manifest = {"format": PHASES_FORMAT, "version": 1, "seed": seed,
                "sequences": {f"{e['subject']}/{e['sequence']}": e
                              for e in sorted(entries, key=lambda e: (e["subject"], e["sequence"]))}}
    (root / PHASES_FILE).write_text(json.dumps(manifest, indent=1))
    return {**manifest, "frames_written": len(tasks) * frames * cameras, "seconds": seconds}


def _progress(total: int, enabled: bool):
    return tqdm(total=total, unit="frame", disable=not enabled, desc="rendering")


def prepare_setup(root: Path, mano_root: Path, setup: str) -> dict:
    """Run the real pipeline on the tree for ``setup``: annotation files, grasp labels, occlusion ratios (all
    splits) and the exact pair index (train). Returns sample counts per split and the number of pairs."""
    counts = {}
    for split in ("train", "val", "test"):
        _, counts[split] = write_split_file(root, setup, split)
        write_grasp_file(root, setup, split)
        write_occlusion_file(root, setup, split, mano_root)
    _, counts["pairs"] = write_exact_pairs(root, setup, mano_root)
    return counts


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="folder to write the DexYCB-layout tree into")
    parser.add_argument("--mano_root", default=None, help="folder with MANO_RIGHT.pkl / MANO_LEFT.pkl "
                                                          "(default: $MANO_ROOT)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sequences", type=int, default=50, help="sequences (spread over the 10 subjects)")
    parser.add_argument("--frames", type=int, default=24, help="frames per sequence (>= 4)")
    parser.add_argument("--cameras", type=int, default=2, help="camera serials per sequence (1-8)")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="render processes")
    parser.add_argument("--prepare", nargs="*", default=["s0"], choices=["s0", "s1", "s3"],
                        help="setups to run the data-creation pipeline for (none: give the flag alone)")
    parser.add_argument("--sheet", default=None, help="also write an overlay sheet PNG here")
    args = parser.parse_args(argv)
    mano_root = resolve_mano_root(args.mano_root)
    result = write_synthetic(args.out, mano_root, args.seed, args.sequences, args.frames, args.cameras, args.workers)
    print(f"wrote {result['frames_written']} frames in {result['seconds']:.1f} s "
          f"({result['frames_written'] / result['seconds']:.1f} frames/s, {args.workers} worker(s)) to {args.out}")
    for setup in args.prepare:
        print(f"{setup}: {prepare_setup(Path(args.out), mano_root, setup)}")
    if args.sheet:
        print(f"sheet: {write_sheet(args.out, args.sheet)}")


if __name__ == "__main__":
    command_main(main)
