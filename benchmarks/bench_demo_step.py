"""Where a demo training step spends its time: data path, forward + backward, optimizer (CPU).

Builds the demo's UniHOPE config (experiment/unihope.synthetic/cfg.json: ResNet-18, 64 px, batch 16,
contrastive pairs) on a synthetic DexYCB-format tree and times, in one run with alternating rounds:
  data      - 16 ``dataset[i]`` calls + collation (read, decode, crop; what one loader batch costs);
  fwd+bwd   - model forward, loss and backward on one batch;
  adam loop - ``torch.optim.Adam``'s default per-parameter loop (the official code's optimizer);
  adam fused- ``torch.optim.Adam(fused=True)``, what the trainer builds on the CPU and CUDA (one kernel over
              all parameters; same update up to rounding, the largest parameter difference after one step is
              printed).
Prints the best time of each, each part's share of a step, and the step ratio loop / fused; then the
step's FLOPs (``benchmarks/compute_bound.py``), the rate it runs at, and the least time any float32 step of
the same arithmetic can take at this machine's matrix-product rate (timed in the same rounds).

    python -m benchmarks.bench_demo_step [--data_root outputs/demo/data --mano_root outputs/demo/mano]

Without ``--data_root`` a small tree (50 sequences x 4 frames x 1 camera) is rendered into a temporary
folder first (about 2 minutes on 2 cores).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from torch.utils.data import default_collate

from benchmarks.bench_mano import best_times
from benchmarks.compute_bound import counted_flops, gemm_gflops, gemm_runs
from datasets import build_dataset
from models import build_model
from models.losses import build_loss
from utils.config import config_from_dict

DEMO_CONFIG = Path(__file__).resolve().parents[1] / "experiment" / "unihope.synthetic" / "cfg.json"


def _small_tree(folder: Path) -> tuple[Path, Path]:
    """Render a small synthetic tree with the project's generators; returns (data root, MANO folder)."""
    mano, data = folder / "mano", folder / "data"
    subprocess.run([sys.executable, "-m", "data_creation.standin_mano.make_standin_mano", "--out", str(mano)],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run([sys.executable, "-m", "data_creation.synthetic.make_synthetic", "--out", str(data),
                    "--mano_root", str(mano), "--sequences", "50", "--frames", "4", "--cameras", "1",
                    "--workers", "1", "--prepare", "s0"], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return data, mano


def _adam(params, grads, fused: bool) -> torch.optim.Adam:
    """An Adam over copies of ``params`` with ``grads`` attached (one warm-up step taken)."""
    copies = [p.detach().clone().requires_grad_() for p in params]
    for copy, grad in zip(copies, grads):
        copy.grad = grad.clone()
    optimizer = torch.optim.Adam(copies, lr=3e-4, fused=fused)
    optimizer.step()
    return optimizer


def run(data_root: Path, mano_root: Path, model_dir: Path, repeats: int) -> None:
    raw = json.loads(DEMO_CONFIG.read_text())
    raw["base"].update(mano_root=str(mano_root), model_dir=str(model_dir))
    raw["data"]["root_dir"] = str(data_root)
    cfg = config_from_dict(raw, str(DEMO_CONFIG))
    dataset = build_dataset(cfg, "train")
    size = cfg.train.batch_size
    batch = default_collate([dataset[i] for i in range(size)])
    torch.manual_seed(0)
    model, loss_fn = build_model(cfg).train(), build_loss(cfg)
    params = [p for p in model.parameters() if p.requires_grad]

    def forward_backward():
        model.zero_grad(set_to_none=True)
        loss_fn(batch, model(batch))["total"].backward()

    forward_backward()
    params = [p for p in params if p.grad is not None]  # Adam skips parameters without gradients
    grads = [p.grad.detach().clone() for p in params]
    loop, fused = _adam(params, grads, fused=False), _adam(params, grads, fused=True)
    diff = max((a - b).abs().max().item() for a, b in zip(loop.param_groups[0]["params"],
                                                          fused.param_groups[0]["params"]))
    flops = counted_flops(forward_backward)
    t_data, t_model, t_loop, t_fused, *t_gemm = best_times(
        [lambda: default_collate([dataset[i] for i in range(size)]), forward_backward, loop.step, fused.step,
         *gemm_runs()], repeats)
    peak = gemm_gflops(t_gemm)
    step_loop, step_fused = t_data + t_model + t_loop, t_data + t_model + t_fused
    print(f"batch {size}, {sum(p.numel() for p in params) / 1e6:.1f} M parameters in {len(params)} tensors, "
          f"threads {torch.get_num_threads()}, best of {repeats} alternating rounds")
    for name, seconds in (("data (16 samples)", t_data), ("forward+backward", t_model), ("adam loop", t_loop)):
        print(f"{name:<20}{seconds * 1e3:10.1f} ms  {seconds / step_loop * 100:5.1f} % of a step")
    print(f"{'adam fused':<20}{t_fused * 1e3:10.1f} ms  (x{t_loop / t_fused:.1f} the loop; parameters differ "
          f"by at most {diff:.1e} after one step)")
    print(f"step with the loop {step_loop:.2f} s, with fused Adam {step_fused:.2f} s: x{step_loop / step_fused:.2f}")
    print(f"forward+backward: {flops / 1e9:.0f} GFLOP per step at {flops / t_model / 1e9:.0f} GFLOPS; this machine's "
          f"float32 matrix products run at {peak:.0f} GFLOPS, so no float32 step of this arithmetic takes less than "
          f"{flops / peak / 1e9:.2f} s")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_root", default=None, help="a synthetic tree (default: render a small one)")
    parser.add_argument("--mano_root", default=None, help="its MANO folder (with --data_root)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        if args.data_root is None:
            data_root, mano_root = _small_tree(Path(scratch))
        else:
            data_root, mano_root = Path(args.data_root), Path(args.mano_root or "outputs/demo/mano")
        run(data_root, mano_root, Path(scratch) / "model", args.repeats)


if __name__ == "__main__":
    main()
