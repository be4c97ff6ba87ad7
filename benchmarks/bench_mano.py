"""MANO forward speed: the project's ``ManoLayer`` against manopth's own batched torch forward.

``python -m benchmarks.bench_mano [--mano_root DIR] [--batch 256] [--threads 2]`` (default model: a stand-in
written to a temp folder). Axis-angle pose (48 values), random betas, float32, CPU, no autograd. The baseline
is benchmarks/manopth_forward.py (manopth's algorithm as manopth runs it: batched torch, same inputs and
buffers). The two alternate inside each round so load changes on a shared machine hit both alike; the best
round of each is reported, with the ratio, after checking that both give the same vertices and joints.
"""
from __future__ import annotations

import argparse
import tempfile
import time

import torch

from benchmarks.manopth_forward import ManopthForward
from data_creation.standin_mano.make_standin_mano import write_standin_mano
from models.mano import ManoLayer
from utils.mano_io import load_mano_assets, resolve_mano_root


def best_times(functions, repeats: int) -> list[float]:
    """Best wall time (s) of each zero-argument function, calls alternating inside each of ``repeats`` rounds."""
    for fn in functions:
        fn()  # warm-up
    best = [float("inf")] * len(functions)
    for _ in range(repeats):
        for i, fn in enumerate(functions):
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def run(mano_root: str, batch: int, repeats: int) -> float:
    """Print both times and the ratio for one batch size; returns manopth time / ManoLayer time."""
    assets = load_mano_assets(resolve_mano_root(mano_root), "right")
    layer = ManoLayer.from_assets(assets, use_pca=False, flat_hand_mean=True)
    official = ManopthForward(layer)
    gen = torch.Generator().manual_seed(batch)
    pose, betas = torch.randn(batch, 48, generator=gen) * 0.5, torch.randn(batch, 10, generator=gen)
    with torch.no_grad():
        ours_out, ref_out = layer(pose, betas), official(pose, betas)
        for name, ours, ref in zip(("vertices", "joints"), ours_out, ref_out):
            diff = (ours - ref).abs().max().item()
            assert diff < 1e-3, f"{name} differ from manopth's forward by {diff:.2e} mm (tolerance 1e-3 mm)"
        t_ours, t_ref = best_times([lambda: layer(pose, betas), lambda: official(pose, betas)], repeats)
    print(f"batch {batch:4d}: ManoLayer {t_ours * 1e3:8.2f} ms   manopth forward {t_ref * 1e3:8.2f} ms   "
          f"speed-up x{t_ref / t_ours:5.2f}   (max vertex difference {diff:.1e} mm)")
    return t_ref / t_ours


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mano_root", default=None, help="MANO folder (default: a fresh stand-in)")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 256])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, float32 CPU, best of {args.repeats} "
          f"alternating rounds")
    with tempfile.TemporaryDirectory() as folder:
        if args.mano_root is None:
            write_standin_mano(folder)
            print("model: stand-in (not MANO; same sizes)")
        for batch in args.batch:
            run(args.mano_root or folder, batch, args.repeats)


if __name__ == "__main__":
    main()
