"""MANO forward speed: the vectorised ``ManoLayer`` vs a per-sample loop implementation of the same maths.

``python -m benchmarks.bench_mano [--mano_root DIR]`` (default: a stand-in model written to a temp folder).
Both run on CPU in the same process; the baseline is the loop-based manopth reference of the tests
(tests/fixtures_mano.py, float64 numpy, one sample and one joint at a time). Prints times and the ratio.
"""
from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch

from data_creation.standin_mano.make_standin_mano import write_standin_mano
from models.mano import ManoLayer
from tests.fixtures_mano import manopth_reference
from utils.mano_io import load_mano_assets, resolve_mano_root


def _best_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def run(mano_root: str, batches=(1, 256), repeats: int = 5) -> None:
    assets = load_mano_assets(resolve_mano_root(mano_root), "right")
    layer = ManoLayer.from_assets(assets, use_pca=False, flat_hand_mean=True)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, float32 CPU")
    for batch in batches:
        rng = np.random.default_rng(batch)
        pose, betas = rng.normal(scale=0.5, size=(batch, 48)), rng.normal(size=(batch, 10))
        pose_t, betas_t = torch.tensor(pose, dtype=torch.float32), torch.tensor(betas, dtype=torch.float32)

        def vectorised():
            with torch.no_grad():
                layer(pose_t, betas_t)

        def per_sample():
            manopth_reference(assets, pose, betas, use_pca=False)

        t_layer = _best_time(vectorised, repeats)
        t_loop = _best_time(per_sample, max(1, repeats // 2 if batch > 16 else repeats))
        print(f"batch {batch:4d}: ManoLayer {t_layer * 1e3:8.2f} ms ({t_layer / batch * 1e6:8.1f} us/sample)  "
              f"per-sample loop {t_loop * 1e3:9.2f} ms  speed-up x{t_loop / t_layer:6.1f}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mano_root", default=None, help="MANO folder (default: a fresh stand-in)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.mano_root is not None:
        run(args.mano_root, repeats=args.repeats)
        return
    with tempfile.TemporaryDirectory() as folder:
        write_standin_mano(folder)
        print("model: stand-in (not MANO)")
        run(folder, repeats=args.repeats)


if __name__ == "__main__":
    main()
