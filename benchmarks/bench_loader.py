"""Samples/s of the paired DexYCB training loader per worker: how many workers feed one GPU.

The loader is the one train.py builds for ``experiment/unihope.dexycb_s0/cfg.json`` (image pairs with their
de-occluded partners, the official augmentation, ``data.input_img_shape`` 128 px by default), on a DexYCB-layout
tree: the demo's (``outputs/demo/data`` after ``make demo``) or, when none is given, a small synthetic tree that
this script renders into a temporary folder first (data_creation/synthetic/make_synthetic.py). For each worker
count it reports the steady rate (the first batch, which includes starting the workers, is timed apart) and the
rate per worker; with ``--step_rate`` (the training step's samples/s from bench_train_step.py) it also prints how
many workers keep such a step fed.

    python -m benchmarks.bench_loader --data outputs/demo/data --mano_root outputs/demo/mano --workers 1 2 4 8 12
    python -m benchmarks.bench_loader --workers 0 2            # renders its own small tree first

Run from the repository root.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from pathlib import Path

import torch

from data_creation.standin_mano.make_standin_mano import write_standin_mano
from data_creation.synthetic.make_synthetic import prepare_setup, write_synthetic
from datasets import build_dataset, build_loader
from engine.trainer import SeededSamples
from utils.config import load_config

ROOT = Path(__file__).resolve().parents[1]


def loader_config(data_root, mano_root, res: int, batch_size: int, workers: int):
    """The official UniHOPE DexYCB s0 config pointed at ``data_root``, at ``res`` px with ``workers`` workers."""
    overrides = {"data.root_dir": str(data_root), "base.mano_root": str(mano_root), "data.input_img_shape": [res, res],
                 "train.batch_size": batch_size, "train.num_workers": workers}
    return load_config(ROOT / "experiment" / "unihope.dexycb_s0",
                       [f"{key}={json.dumps(value)}" for key, value in overrides.items()])


def loader_rate(cfg, samples: int) -> dict:
    """Time the training loader of ``cfg`` over at least ``samples`` samples (the training set repeated as needed).

    Returns ``{"workers", "first_batch_s", "samples_per_s"}``; the rate excludes the first batch.
    """

    dataset = SeededSamples(build_dataset(cfg, "train"), cfg.base.seed)
    batch_size = cfg.train.batch_size
    needed = (math.ceil(samples / batch_size) + 1) * batch_size
    repeated = torch.utils.data.Subset(dataset, [i % len(dataset) for i in range(needed)])
    start = time.perf_counter()
    loaded, first = 0, None
    for batch in build_loader(cfg, "train", repeated):
        if first is None:
            first = time.perf_counter()
            continue
        loaded += batch["img"].shape[0]
    seconds = time.perf_counter() - first
    return {"workers": cfg.train.num_workers, "first_batch_s": first - start, "samples_per_s": loaded / seconds}


def synthetic_tree(folder: Path, sequences: int) -> tuple[Path, Path]:
    """Render a small DexYCB-layout tree with its label files and pair index; returns (data root, MANO folder)."""
    mano_root, data_root = folder / "mano", folder / "data"
    write_standin_mano(mano_root, seed=0)
    write_synthetic(data_root, mano_root, seed=0, sequences=sequences, frames=4, cameras=2,
                    workers=min(4, os.cpu_count() or 1), progress=False)
    prepare_setup(data_root, mano_root, "s0")
    return data_root, mano_root


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="DexYCB-layout tree with s0 label files and the pair index "
                                                     "(default: render a small synthetic one)")
    parser.add_argument("--mano_root", default=None, help="MANO folder of that tree (default: $MANO_ROOT)")
    parser.add_argument("--sequences", type=int, default=10, help="sequences of the rendered tree (no --data)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--res", type=int, default=128)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--samples", type=int, default=256, help="samples timed per worker count")
    parser.add_argument("--step_rate", type=float, default=None,
                        help="training-step samples/s to feed (prints the workers needed)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as scratch:
        if args.data is None:
            data_root, mano_root = synthetic_tree(Path(scratch), args.sequences)
        else:
            data_root, mano_root = args.data, args.mano_root or os.environ.get("MANO_ROOT")
        results = [loader_rate(loader_config(data_root, mano_root, args.res, args.batch_size, workers), args.samples)
                   for workers in args.workers]
    print(f"paired DexYCB training loader, {args.res} px, batch {args.batch_size}, {args.samples} samples timed, "
          f"{os.cpu_count()} CPUs")
    print(f"{'workers':>7} {'samples/s':>10} {'per worker':>11} {'first batch s':>14}")
    for row in results:
        per_worker = row["samples_per_s"] / max(1, row["workers"])
        print(f"{row['workers']:>7} {row['samples_per_s']:>10.1f} {per_worker:>11.1f} {row['first_batch_s']:>14.2f}")
    if args.step_rate:
        most = max(results, key=lambda row: row["workers"])  # the per-worker rate when the most workers share the CPU
        per_worker = most["samples_per_s"] / max(1, most["workers"])
        print(f"a training step of {args.step_rate:.0f} samples/s needs about {math.ceil(args.step_rate / per_worker)} "
              f"workers at {per_worker:.1f} samples/s each (the rate per worker with {most['workers']} workers)")
    return results


if __name__ == "__main__":
    main()
