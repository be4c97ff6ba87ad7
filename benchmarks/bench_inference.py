"""CPU inference throughput of UniHOPE (DexYCB config: 128 px, legacy grasp head), batch 1 and 32, and the float32
lower bound on its time on this machine.

Compares, in the same run:
  official     - the official test path and arithmetic: ``torch.no_grad``, feature mappers computed and discarded
                 (``net_forward(..., feature_mapping=True)``), the hand CR block computing all 512 output
                 channels of which 256 are used, contiguous (NCHW) tensors;
  ours         - ``model(batch)`` in eval mode: mappers skipped, the hand CR block computing the 256 used channels
                 only (``CRBlock`` ``out_channels``), ``torch.inference_mode``;
  ours+cl      - as ``ours`` with the model and the input in channels-last memory format;
  ours+fast    - ``utils.runtime.inference_model(model, channels_last=True, fuse_batchnorm=True)``, what
                 ``test.channels_last`` / ``test.fuse_batchnorm`` select in eval.py;
  ours+compile - the same with ``compiled=True`` (``test.compile``): torch.compile (inductor) with the weights
                 frozen into the graph; its compile time is printed (``--no_compile`` leaves it out).
Prints samples/s and the ratios to ``official``; for every variant the largest difference from ``official`` of the
3D joints (mm) and of all outputs (metres for meshes and joints; box units, probabilities or logits for the rest),
and whether all outputs are within the model tolerance (``torch.allclose`` with rtol = atol = 1e-5).

The bound: GFLOPs per forward (``torch.utils.flop_counter``, plus 4 * B * heads * N^2 * d per attention call, which
it does not count on the CPU), the GFLOPS each variant achieves, and this machine's float32 matrix-product rate
(the best 2048^3 or 4096^3 ``torch.mm`` of the run, timed between the rounds). No float32 forward doing ``ours``'
arithmetic can take less than its FLOPs divided by that rate, so ``official`` time / that minimum is the largest
ratio reachable without changing the arithmetic (bf16 is emulated, and slower, on CPUs without avx512_bf16 / AMX,
as on the machine measured). Weights are random (speed does not depend on them).

    python -m benchmarks.bench_inference [--mano_root DIR] [--repeats 3] [--batch_sizes 1 32] [--threads 2]
                                         [--no_compile]

Run from the repository root. The MANO folder comes from --mano_root, else $MANO_ROOT, else a stand-in
generated into a temporary folder.
"""
import argparse
import copy
import os
import tempfile
import time

import torch

from benchmarks.bench_mano import best_times
from benchmarks.compute_bound import counted_flops, gemm_gflops, gemm_runs
from data_creation.standin_mano.make_standin_mano import write_standin_mano
from models.blocks.mano_head import right_hand_mano_layer
from models.unihope import UniHOPENet
from utils.runtime import inference_model

TOLERANCE = 1e-5  # rtol and atol of the output comparison


def _mano_root(explicit, scratch):
    if explicit or os.environ.get("MANO_ROOT"):
        return explicit or os.environ["MANO_ROOT"]
    write_standin_mano(scratch, seed=0)
    return scratch


def _batch(batch_size, size=128):
    gen = torch.Generator().manual_seed(0)
    box = torch.tensor([0.15, 0.2, 0.7, 0.8]) * size
    return {"img": torch.rand(batch_size, 3, size, size, generator=gen),
            "bbox_hand": box.expand(batch_size, 4).clone(),
            "bbox_obj": (box + 0.1 * size).expand(batch_size, 4).clone()}


def _official_arithmetic(model):
    """A copy of ``model`` whose hand CR block computes all its output channels, as the official code does."""
    official = copy.deepcopy(model)
    for block in official.transformer_hand.layers:
        block.out_channels = block.mlp.fc2.out_features
    return official


def _official(model, batch):
    with torch.no_grad():
        return model.net_forward(batch["img"], batch["bbox_hand"], batch["bbox_obj"], feature_mapping=True)


def _ours(model, batch):
    with torch.inference_mode():
        return model(batch)


def _largest_difference(reference, outputs):
    """(largest |difference|, its key, all within rtol = atol = TOLERANCE) over the floating-point outputs."""
    worst, worst_key, close = 0.0, "-", True
    for key, expected in reference.items():
        if not expected.is_floating_point():
            close = close and torch.equal(expected, outputs[key])
            continue
        diff = (expected - outputs[key]).abs().max().item()
        if diff > worst:
            worst, worst_key = diff, key
        close = close and torch.allclose(outputs[key], expected, rtol=TOLERANCE, atol=TOLERANCE)
    return worst, worst_key, close


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mano_root", default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--no_compile", action="store_true", help="leave out ours+compile (saves its compile time)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as scratch:
        mano_layer = right_hand_mano_layer(_mano_root(args.mano_root, scratch))
    model = UniHOPENet(mano_layer, input_size=128, obj_conf_layer_legacy=True).eval()
    official_model = _official_arithmetic(model)
    model_cl = copy.deepcopy(model).to(memory_format=torch.channels_last)
    model_fast = inference_model(model, channels_last=True, fuse_batchnorm=True)
    names = ["official", "ours", "ours+cl", "ours+fast"] + ([] if args.no_compile else ["ours+compile"])
    print(f"UniHOPE 128 px legacy, CPU threads {torch.get_num_threads()}, best of {args.repeats} interleaved rounds, "
          f"load average {os.getloadavg()[0]:.1f} at the start")
    for batch_size in args.batch_sizes:
        batch = _batch(batch_size)
        batch_cl = dict(batch, img=batch["img"].contiguous(memory_format=torch.channels_last))
        variants = [(_official, official_model, batch), (_ours, model, batch), (_ours, model_cl, batch_cl),
                    (_ours, model_fast, batch)]
        compile_note = ""
        if not args.no_compile:
            compiled = inference_model(model, channels_last=True, fuse_batchnorm=True, compiled=True)
            start = time.perf_counter()
            _ours(compiled, batch)
            compile_note = f", ours+compile compiled in {time.perf_counter() - start:.0f} s"
            variants.append((_ours, compiled, batch))
        official_flops = counted_flops(lambda: _official(official_model, batch))
        ours_flops = counted_flops(lambda: _ours(model, batch))
        # variants and matrix products alternate inside each round: load changes hit all of them alike
        times = best_times([lambda v=v: v[0](v[1], v[2]) for v in variants] + gemm_runs(), args.repeats)
        seconds = times[:len(variants)]
        peak_gflops = gemm_gflops(times[len(variants):])
        flops = [official_flops] + [ours_flops] * (len(variants) - 1)

        print(f"\nbatch {batch_size}{compile_note}, load average {os.getloadavg()[0]:.1f} at the end")
        print(f"  {'variant':<13} {'samples/s':>9} {'x official':>10} {'GFLOP/fwd':>10} {'GFLOPS':>7}   "
              f"difference from official: joints (mm), largest of all outputs")
        reference = _ours(official_model, batch)
        for name, (run, variant_model, variant_batch), secs, count in zip(names, variants, seconds, flops):
            outputs = _ours(variant_model, variant_batch)
            diff, key, close = _largest_difference(reference, outputs)
            joints_mm = (outputs["pred_joints3d_cam"] - reference["pred_joints3d_cam"]).abs().max().item() * 1000
            print(f"  {name:<13} {batch_size / secs:>9.2f} {seconds[0] / secs:>10.2f} {count / 1e9:>10.1f} "
                  f"{count / secs / 1e9:>7.1f}   {joints_mm:.1e} mm, {diff:.1e} ({key}), within {TOLERANCE:g}: "
                  f"{'yes' if close else 'NO'}")
        floor = ours_flops / (peak_gflops * 1e9)
        print(f"  fp32 bound: best square matrix product {peak_gflops:.0f} GFLOPS on this machine -> "
              f"{ours_flops / 1e9:.1f} GFLOP take at least {floor:.2f} s ({batch_size / floor:.2f} samples/s); "
              f"official {seconds[0]:.2f} s -> best reachable ratio x{seconds[0] / floor:.2f}")


if __name__ == "__main__":
    main()
