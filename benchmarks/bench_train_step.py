"""Samples/s and peak memory of UniHOPE's image-pair training step: the official-style step against the project's.

One training step = forward on a batch of image pairs (6-channel images), the real loss of
``experiment/unihope.dexycb_s0/cfg.json`` (``models/losses.py``: MANO, 2D joints, object voting, grasp and
occlusion classifiers, self-distillation), backward, optimizer step. Variants, each with its own copy of the same
initial weights, alternated inside every round on the same batch:

  official  fp32, NCHW, Adam with PyTorch's default implementation, fp32 matrix products: the official step (the
            training forward maps the features of part 0 exactly as the official code does, models/hflnet.py)
  ours      what train.py runs for an official cfg.json: the same arithmetic, plus the fused Adam on CUDA
  ours+gpu  the GPU options of README "GPUs": train.channels_last, train.mixed_precision=bf16, train.tf32

Prints samples/s (best of ``--repeats`` rounds), the ratio to ``official``, and on CUDA the peak memory a
variant's step allocates above the resident weights and optimizer states of all variants.

    python -m benchmarks.bench_train_step                 # CPU-sized: B=4, 64 px, ResNet-18, 16 px ROIs
    python -m benchmarks.bench_train_step --full          # GPU-sized: B=64, 128 px, ResNet-50, 32 px ROIs

Run from the repository root. The MANO folder comes from --mano_root, else $MANO_ROOT, else a stand-in generated
into a temporary folder. Weights are random (speed does not depend on them).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import tempfile
import time
from pathlib import Path

import torch

from data_creation.standin_mano.make_standin_mano import write_standin_mano
from engine.trainer import build_optimizer, channels_last_images
from models import build_model
from models.losses import build_loss
from utils.config import load_config
from utils.runtime import make_accelerator

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"batch_size": 4, "res": 64, "backbone": "resnet18", "roi_res": 16}
FULL = {"batch_size": 64, "res": 128, "backbone": "resnet50", "roi_res": 32}


def pair_batch(batch_size: int, res: int, device) -> dict:
    """A batch in the paired loader's layout (two parts concatenated per key; part 0 grasping, not filtered)."""
    gen = torch.Generator().manual_seed(0)
    hand = torch.tensor([0.15, 0.20, 0.70, 0.80]) * res
    obj = torch.tensor([0.40, 0.45, 0.95, 0.90]) * res
    batch = {"img": torch.rand(batch_size, 6, res, res, generator=gen),
             "bbox_hand": hand.repeat(batch_size, 2), "bbox_obj": obj.repeat(batch_size, 2),
             "mano_param": torch.randn(batch_size, 116, generator=gen) * 0.3,
             "joints_img": torch.rand(batch_size, 42, 2, generator=gen),
             "obj_p2d": torch.rand(batch_size, 42, 2, generator=gen),
             "obj_mask": (torch.rand(batch_size, 64, 32, generator=gen) > 0.5).float(),
             "gt_grasping": torch.tensor([True, False]).repeat(batch_size, 1),
             "gt_occ_cls": torch.tensor([False, False]).repeat(batch_size, 1),
             "is_filtered": torch.zeros(batch_size, dtype=torch.bool)}
    return {k: v.to(device) for k, v in batch.items()}


@contextlib.contextmanager
def cuda_matmul_precision(precision: str):
    """fp32 matrix products on CUDA in ``precision`` ("tf32" or "ieee") inside the block only."""
    before = torch.backends.cuda.matmul.fp32_precision
    torch.backends.cuda.matmul.fp32_precision = precision
    try:
        yield
    finally:
        torch.backends.cuda.matmul.fp32_precision = before


class Variant:
    """One way of running the training step: its own model copy, optimizer and precision settings."""

    def __init__(self, name, model, optimizer, loss_fn, batch, channels_last=False, bf16=False, tf32=False):
        self.name, self.model, self.optimizer, self.loss_fn = name, model, optimizer, loss_fn
        self.batch = channels_last_images(batch) if channels_last else batch
        self.bf16, self.matmul = bf16, "tf32" if tf32 else "ieee"
        self.device = next(model.parameters()).device

    def step(self) -> float:
        """One training step; returns the total loss."""
        with cuda_matmul_precision(self.matmul), torch.autocast(self.device.type, torch.bfloat16, enabled=self.bf16):
            losses = self.loss_fn(self.batch, self.model(self.batch))
        losses["total"].backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(losses["total"].detach())


def build_variants(cfg, device, batch_size: int) -> list[Variant]:
    torch.manual_seed(0)
    base = build_model(cfg).train()
    loss_fn = build_loss(cfg)
    batch = pair_batch(batch_size, cfg.data.input_img_shape[0], device)
    official = copy.deepcopy(base).to(device)
    ours = copy.deepcopy(base).to(device)
    fast = copy.deepcopy(base).to(device).to(memory_format=torch.channels_last)
    return [
        Variant("official", official, torch.optim.Adam(official.parameters(), lr=cfg.optimizer.lr), loss_fn, batch),
        Variant("ours", ours, build_optimizer(ours.parameters(), cfg.optimizer, device), loss_fn, batch),
        Variant("ours+gpu", fast, build_optimizer(fast.parameters(), cfg.optimizer, device), loss_fn, batch,
                channels_last=True, bf16=True, tf32=True)]


def measure(variants: list[Variant], repeats: int, batch_size: int) -> list[dict]:
    """Best-of-``repeats`` samples/s per variant (variants alternate inside each round), CUDA peak memory, and
    the loss of each variant's first step (equal weights and batch: the variants differ only by rounding)."""
    cuda = variants[0].device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    peaks, first_losses = [], []
    for variant in variants:  # warm-up (kernel selection, allocator) and, on CUDA, the memory of one step
        torch.manual_seed(0)  # the same dropout draws in every variant's first step
        first_losses.append(variant.step())
        sync()
        peak = None
        if cuda:
            resident = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            variant.step()
            sync()
            peak = (torch.cuda.max_memory_allocated() - resident) / 2**30
        peaks.append(peak)
        if not math.isfinite(first_losses[-1]):
            raise RuntimeError(f"{variant.name}: non-finite loss {first_losses[-1]}")
    best = [float("inf")] * len(variants)
    for _ in range(repeats):
        for i, variant in enumerate(variants):
            start = time.perf_counter()
            variant.step()
            sync()
            best[i] = min(best[i], time.perf_counter() - start)
    return [{"variant": v.name, "samples_per_s": batch_size / seconds, "peak_gib": peak, "first_loss": loss}
            for v, seconds, peak, loss in zip(variants, best, peaks, first_losses)]


def benchmark_config(mano_root, sizes: dict):
    """``experiment/unihope.dexycb_s0/cfg.json`` at the benchmark's sizes (legacy grasp head at 128 px, as the
    released DexYCB checkpoints)."""
    overrides = {"base.mano_root": str(mano_root), "data.input_img_shape": [sizes["res"]] * 2,
                 "model.backbone": sizes["backbone"], "model.roi_res": sizes["roi_res"],
                 "model.obj_conf_layer_legacy": sizes["res"] == 128}
    return load_config(ROOT / "experiment" / "unihope.dexycb_s0",
                       [f"{key}={json.dumps(value)}" for key, value in overrides.items()])


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="GPU sizes: B=64, 128 px, ResNet-50, 32 px ROIs")
    parser.add_argument("--batch_size", type=int, default=None)
    parser.add_argument("--res", type=int, default=None, help="input size (multiple of 32)")
    parser.add_argument("--backbone", default=None, choices=["resnet18", "resnet34", "resnet50"])
    parser.add_argument("--roi_res", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--mano_root", default=None)
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    sizes = {key: getattr(args, key) if getattr(args, key) is not None else default
             for key, default in (FULL if args.full else SMALL).items()}

    device = make_accelerator().device
    with tempfile.TemporaryDirectory() as scratch:
        mano_root = args.mano_root or os.environ.get("MANO_ROOT")
        if mano_root is None:
            write_standin_mano(scratch, seed=0)
            mano_root = scratch
        variants = build_variants(benchmark_config(mano_root, sizes), device, sizes["batch_size"])
    results = measure(variants, args.repeats, sizes["batch_size"])
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"UniHOPE pair training step, B={sizes['batch_size']}, {sizes['res']} px, {sizes['backbone']}, "
          f"ROI {sizes['roi_res']}; {name}; best of {args.repeats} interleaved rounds")
    print(f"{'variant':<10} {'samples/s':>10} {'x official':>11} {'peak GiB':>9}")
    for row in results:
        peak = "-" if row["peak_gib"] is None else f"{row['peak_gib']:.2f}"
        print(f"{row['variant']:<10} {row['samples_per_s']:>10.2f} "
              f"{row['samples_per_s'] / results[0]['samples_per_s']:>11.2f} {peak:>9}")
    if args.json:
        Path(args.json).write_text(json.dumps({"sizes": sizes, "device": name, "results": results}, indent=2))
    return results


if __name__ == "__main__":
    main()
