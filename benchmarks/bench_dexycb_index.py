"""DexYCB start-up and loading: compact index vs naive JSON dicts, and loader throughput.

1. Writes a synthetic annotation file with ``--records`` records (default 400k, the size of s0 train; schema of
   docs/official-data.md §8.2, full-precision floats like ``ndarray.tolist()`` gives) and measures, each in a
   fresh process: naive ``json.load`` into dicts; building the index (streaming parse + ``.npz`` cache); loading
   the cached index. Printed: wall time, peak and resident memory, and the ratios.
2. Generates the tiny DexYCB tree (stand-in MANO) and measures DataLoader throughput (samples/s) of the
   training split with 0 and 2 workers.

Usage: ``python -m benchmarks.bench_dexycb_index [--records 400000] [--workdir /tmp/bench_dexycb]``
The annotation file for 400k records takes ~2 GB of disk; the naive load needs several GB of memory.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from data_creation.fixtures.make_tiny_dexycb import write_tiny_dexycb
from data_creation.labels.compute_hand_occlusion import write_occlusion_file
from data_creation.labels.create_dataset_dexycb import write_split_file
from data_creation.labels.prepare_grasp_dexycb import write_grasp_file
from data_creation.standin_mano.make_standin_mano import write_standin_mano
from datasets import build_loader
from utils.config import config_from_dict

_CHILD = r"""
import json, resource, sys, time
from pathlib import Path
sys.path.insert(0, {repo!r})
def resident_mb():
    return int(open('/proc/self/statm').read().split()[1]) * 4096 / 2**20
mode, path = {mode!r}, Path({path!r})
if mode != 'naive':
    from datasets.dexycb_index import load_index  # imports (torch, cv2, ...) are not part of the measure
before = resident_mb()
start = time.perf_counter()
if mode == 'naive':
    with open(path) as f:
        data = json.load(f)
else:
    data = load_index(path)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before
print(json.dumps(dict(seconds=seconds, peak_mb=peak, resident_mb=resident_mb() - before, count=len(data))))
"""


def write_synthetic_annotations(path: Path, records: int, seed: int = 0) -> None:
    """Stream ``records`` DexYCB-schema records to ``path`` (values random, structure real)."""
    rng = np.random.default_rng(seed)
    serials = ["836212060125", "839512060362", "840412060917", "841412060263"]
    with path.open("w") as f:
        f.write("{")
        for n in range(records):
            d = f"20200709-subject-01/20200709_{141754 + n // 288:06d}/{serials[(n // 72) % 4]}"
            frame = n % 72
            record = {
                "color_file": f"{d}/color_{frame:06d}.jpg", "depth_file": f"{d}/aligned_depth_to_color_{frame:06d}.png",
                "label_file": f"{d}/labels_{frame:06d}.npz",
                "intrinsics": {"fx": 615.3, "fy": 615.1, "ppx": 320.4, "ppy": 241.2},
                "ycb_ids": [1, 11, 12, 20], "ycb_grasp_ind": int(n % 4), "mano_side": "right" if n % 3 else "left",
                "mano_betas": rng.normal(size=10).tolist(),
                "pose_y": rng.normal(size=(4, 3, 4)).astype(np.float32).tolist(),
                "pose_m": rng.normal(size=(1, 51)).astype(np.float32).tolist(),
                "joint_3d": rng.normal(size=(1, 21, 3)).astype(np.float32).tolist(),
                "joint_2d": (rng.uniform(0, 480, size=(1, 21, 2))).astype(np.float32).tolist(),
                "object_seg_file": f"object_render/{d}/grasp_object_seg_{frame:06d}.png",
            }
            f.write(("," if n else "") + json.dumps(f"id_{n}") + ": " + json.dumps(record))
        f.write("}")


def measure(mode: str, path: Path) -> dict:
    repo = str(Path(__file__).resolve().parents[1])
    out = subprocess.run([sys.executable, "-c", _CHILD.format(repo=repo, mode=mode, path=str(path))],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def index_benchmark(workdir: Path, records: int) -> None:
    path = workdir / "dex_ycb_s0_train_data.json"
    start = time.perf_counter()
    write_synthetic_annotations(path, records)
    print(f"synthetic annotation file: {records} records, {path.stat().st_size / 2**30:.2f} GiB "
          f"(written in {time.perf_counter() - start:.0f} s)")
    cache = path.with_name(path.stem + ".index.npz")
    cache.unlink(missing_ok=True)
    naive = measure("naive", path)
    build = measure("index", path)
    cached = measure("index", path)
    print("memory = growth of the process during the load (imports excluded)")
    print(f"{'':28s}{'time s':>10s}{'peak MiB':>12s}{'resident MiB':>14s}")
    for name, m in (("naive json.load -> dicts", naive), ("index build (cold)", build), ("index load (cached)", cached)):
        print(f"{name:28s}{m['seconds']:10.2f}{m['peak_mb']:12.0f}{m['resident_mb']:14.0f}")
    print(f"cache file: {cache.stat().st_size / 2**20:.0f} MiB")
    print(f"start-up speed-up, cached index vs naive load: {naive['seconds'] / cached['seconds']:.1f}x")
    print(f"first build vs naive load (time): {build['seconds'] / naive['seconds']:.2f}x")
    print(f"resident memory, naive / cached index: {naive['resident_mb'] / cached['resident_mb']:.1f}x")
    print(f"peak memory, naive / index build: {naive['peak_mb'] / build['peak_mb']:.1f}x")


def loader_benchmark(workdir: Path, epochs: int) -> None:
    mano, root = workdir / "mano", workdir / "tiny_dexycb"
    write_standin_mano(mano, seed=0)
    write_tiny_dexycb(root, mano, seed=0)
    write_split_file(root, "s0", "train")
    write_grasp_file(root, "s0", "train")
    write_occlusion_file(root, "s0", "train", mano)
    rates = {}
    for workers in (0, 2):
        cfg = config_from_dict({"base": {"mano_root": str(mano)},
                                "data": {"name": "DEX_YCB", "root_dir": str(root), "input_img_shape": [128, 128]},
                                "train": {"batch_size": 8, "num_workers": workers}})
        loader = build_loader(cfg, "train")
        torch.manual_seed(0)
        start, count = time.perf_counter(), 0
        for _ in range(epochs):
            for batch in loader:
                count += len(batch["img"])
        rates[workers] = count / (time.perf_counter() - start)
        print(f"loader, {workers} workers: {rates[workers]:.0f} samples/s ({count} samples, 128 px, augmentation on)")
    print(f"2 workers / 0 workers: {rates[2] / rates[0]:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=400_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workdir", default=None, help="scratch folder (default: a temporary folder, removed)")
    args = parser.parse_args()
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench_dexycb_"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        index_benchmark(workdir, args.records)
        loader_benchmark(workdir, args.epochs)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
