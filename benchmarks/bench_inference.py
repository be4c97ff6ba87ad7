"""CPU inference throughput of UniHOPE (DexYCB config: 128 px, legacy grasp head), batch 1 and 32.

Compares, in the same run:
  official  - the official test path: ``torch.no_grad``, feature mappers computed and discarded
              (``net_forward(..., feature_mapping=True)``), contiguous (NCHW) tensors;
  ours      - ``model(batch)`` in eval mode: mappers skipped, ``torch.inference_mode``;
  ours+cl   - as ``ours`` with the model and the input in channels-last memory format;
  ours+fast - ``utils.runtime.inference_model(model, channels_last=True, fuse_batchnorm=True)``, what
              ``test.channels_last`` / ``test.fuse_batchnorm`` select in eval.py.
Prints samples/s and the ratios to ``official``, and the largest joint / vertex difference (mm) of
``ours+fast`` from ``ours``. Weights are random (speed does not depend on them). bf16 autocast is
not offered: on CPUs without native bf16 (no avx512_bf16 / amx flags, as on the machine measured) it is
slower than fp32.

    python -m benchmarks.bench_inference [--mano_root DIR] [--repeats 3] [--batch_sizes 1 32] [--threads 2]

Run from the repository root. The MANO folder comes from --mano_root, else $MANO_ROOT, else a stand-in
generated into a temporary folder.
"""
import argparse
import copy
import os
import tempfile
import time

import torch

from data_creation.standin_mano.make_standin_mano import write_standin_mano
from models.blocks.mano_head import right_hand_mano_layer
from models.unihope import UniHOPENet
from utils.runtime import inference_model


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


def _official(model, batch):
    with torch.no_grad():
        return model.net_forward(batch["img"], batch["bbox_hand"], batch["bbox_obj"], feature_mapping=True)


def _ours(model, batch):
    with torch.inference_mode():
        return model(batch)


def _throughputs(variants, repeats):
    """Samples/s of each ``(run, model, batch)``, best of ``repeats`` rounds; the variants alternate inside
    each round so that load changes on a shared machine hit all of them alike."""
    for run, model, batch in variants:
        run(model, batch)  # warm-up
    best = [float("inf")] * len(variants)
    for _ in range(repeats):
        for i, (run, model, batch) in enumerate(variants):
            start = time.perf_counter()
            run(model, batch)
            best[i] = min(best[i], time.perf_counter() - start)
    return [batch["img"].shape[0] / seconds for (_, _, batch), seconds in zip(variants, best)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mano_root", default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as scratch:
        mano_layer = right_hand_mano_layer(_mano_root(args.mano_root, scratch))
    model = UniHOPENet(mano_layer, input_size=128, obj_conf_layer_legacy=True).eval()
    model_cl = copy.deepcopy(model).to(memory_format=torch.channels_last)
    model_fast = inference_model(model, channels_last=True, fuse_batchnorm=True)
    print(f"UniHOPE 128 px legacy, CPU threads {torch.get_num_threads()}, best of {args.repeats} interleaved rounds")
    print(f"{'batch':>5} {'official/s':>11} {'ours/s':>9} {'ours+cl/s':>10} {'ours+fast/s':>12} "
          f"{'ours/official':>14} {'ours+cl/official':>17} {'ours+fast/official':>19}")
    for batch_size in args.batch_sizes:
        batch = _batch(batch_size)
        batch_cl = dict(batch, img=batch["img"].contiguous(memory_format=torch.channels_last))
        official, ours, ours_cl, fast = _throughputs(
            [(_official, model, batch), (_ours, model, batch), (_ours, model_cl, batch_cl),
             (_ours, model_fast, batch)], args.repeats)
        print(f"{batch_size:>5} {official:>11.2f} {ours:>9.2f} {ours_cl:>10.2f} {fast:>12.2f} "
              f"{ours / official:>14.2f} {ours_cl / official:>17.2f} {fast / official:>19.2f}")
        reference, fast_out = _ours(model, batch), _ours(model_fast, batch)
        for key in ("pred_joints3d_cam", "pred_verts3d_cam"):
            diff = (reference[key] - fast_out[key]).abs().max().item() * 1000
            print(f"      ours+fast vs ours, {key}: max difference {diff:.2e} mm")


if __name__ == "__main__":
    main()
