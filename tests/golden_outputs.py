"""Golden outputs of every registered model: a fixed seed and a fixed batch give stored output statistics.

A wiring change inside a model (a feature pooled from the wrong box, a head fed the wrong map, a changed
activation) changes its outputs; ``tests/models/test_golden_outputs.py`` compares them with the statistics
stored in ``tests/golden/<model name>.json`` by this script. Each model is built small (ResNet-18 trunks,
16 x 16 ROIs, FastViT-T8, 64 px where the architecture allows) with ``torch.manual_seed(0)`` on the stand-in
MANO of ``write_standin_mano(seed=0)``, and run in eval mode in float32 on :func:`fixtures_models.make_batch`.
UniHOPE's grasp and occlusion heads are then biased so that exactly one sample of the batch takes the fused path
(object-stream features) and the other the hand-only path (:func:`fuse_one_sample`), so both are covered.

Per output key the file stores the shape, and for floating-point outputs the mean, the mean absolute value,
the standard deviation and eight elements at evenly spaced flat positions (integer / bool outputs: all values).
The tolerances of the test (relative 1e-4, absolute 1e-4 x the output's mean absolute value) absorb summation-order
changes of optimised kernels and keep wiring changes visible.

When a change of the outputs is intended, rewrite the files (all models, or the ones named) and commit them:

    .venv/bin/python tests/golden_outputs.py [model names...]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script from the repository root
    sys.path.insert(0, str(REPO_ROOT))

from fixtures_models import make_batch, model_config  # noqa: E402  (tests/ is this script's folder)
from models import MODELS, build_model  # noqa: E402
from models.blocks.classifier_heads import GRASPING, OCCLUDED  # noqa: E402
from utils.config import config_from_dict  # noqa: E402

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
BATCH_SIZE = 2
SAMPLES = 8
RTOL = 1e-4
SMALL_FPN = {"backbone": "resnet18"}
SMALL_ROI = {"backbone": "resnet18", "roi_res": 16}
SMALL_FASTVIT = {"BACKBONE": {"model_name": "fastvit_t8", "pretrain": False, "out_feature_channel": 768,
                              "drop_path_rate": 0.0},
                 "UV_HEAD": {"in_features": 768, "out_features": 42},
                 "MESH_HEAD": {"in_channels": 768, "depths": [1, 1, 1], "token_nums": [21, 84, 336],
                               "dims": [256, 128, 64], "dropout": 0.1, "first_prenorms": [True, True, True],
                               "block_types": ["attention", "attention", "attention"]}}
# name -> (model keys, input size): the smallest build of each registered model
CASES = {
    "classifier": ({}, 64),
    "h2onet": ({}, 128),
    "hand_occ_net": (SMALL_FPN, 256),
    "hflnet": (SMALL_ROI, 64),
    "mean_pose": ({}, 64),
    "mobrecon": ({}, 128),
    "semi_hand": (SMALL_FPN, 64),
    "semi_hand_object": (SMALL_FPN, 64),
    "simple_hand": (SMALL_FASTVIT, 224),
    "twoinone_baseline_classifier": ({"cls_model": {"name": "classifier"},
                                      "h_model": {"name": "semi_hand", "model": SMALL_FPN},
                                      "ho_model": {"name": "hflnet", "model": SMALL_ROI}}, 64),
    "unihope_net": (SMALL_ROI, 64),
}


def golden_file(name: str) -> Path:
    return GOLDEN_DIR / f"{name}.json"


def golden_outputs(mano_root: str | Path, name: str) -> dict[str, torch.Tensor]:
    """The eval-mode outputs of the small ``name`` model (seed 0) on the fixed batch."""
    model_keys, size = CASES[name]
    cfg = model_config(mano_root, name, input_size=size, **model_keys)
    if name == "twoinone_baseline_classifier":
        raw = cfg.to_dict()
        raw["data"]["input_img_shape_cls"] = [size, size]
        cfg = config_from_dict(raw, source="<golden twoinone_baseline_classifier>")
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    batch = make_batch(BATCH_SIZE, size, seed=0)
    with torch.no_grad():
        if name == "unihope_net":
            fuse_one_sample(model, batch)
        return model(batch)


def fuse_one_sample(model, batch) -> None:
    """Bias UniHOPE's switch heads so that exactly one sample of the (2-sample) batch is fused with ``x_obj``.

    The occlusion head is pushed to "not occluded" for every sample, and the grasp bias is shifted by minus the
    mean of the two samples' grasp margins, so the sample with the larger margin is "grasping" and the other not.
    """
    logits = model(batch)["pred_obj_conf"]  # (2, 2)
    margins = logits[:, GRASPING] - logits[:, 1 - GRASPING]
    if margins[0] == margins[1]:
        raise ValueError("the two samples have the same grasp margin; choose another seed or batch")
    model.occ_cls_layer[-1].bias[OCCLUDED] -= 1.0
    model.obj_conf_layer[-1].bias[GRASPING] -= margins.mean()


def output_statistics(outputs: dict[str, torch.Tensor]) -> dict[str, dict]:
    """Per output key: shape, and mean / abs_mean / std / evenly spaced samples (floats) or all values."""
    stats = {}
    for key, value in sorted(outputs.items()):
        flat = value.detach().reshape(-1)
        entry = {"shape": list(value.shape)}
        if value.is_floating_point():
            flat = flat.double()
            positions = torch.linspace(0, flat.numel() - 1, SAMPLES).round().long().unique()
            entry.update(mean=flat.mean().item(), abs_mean=flat.abs().mean().item(), std=flat.std().item(),
                         positions=positions.tolist(), samples=flat[positions].tolist())
        else:
            entry["values"] = flat.tolist()
        stats[key] = entry
    return stats


def differences(stored: dict[str, dict], current: dict[str, dict]) -> list[str]:
    """What differs between two :func:`output_statistics` results, beyond the tolerances (empty: equal)."""
    if set(stored) != set(current):
        return [f"output keys {sorted(current)} instead of {sorted(stored)}"]
    found = []
    for key, want in stored.items():
        got = current[key]
        if got["shape"] != want["shape"]:
            found.append(f"{key}: shape {got['shape']} instead of {want['shape']}")
            continue
        if "values" in want:
            if got["values"] != want["values"]:
                found.append(f"{key}: values {got['values']} instead of {want['values']}")
            continue
        atol = RTOL * want["abs_mean"] + 1e-12
        for stat in ("mean", "abs_mean", "std", "samples"):
            expected, actual = torch.tensor(want[stat]), torch.tensor(got[stat])
            if not torch.allclose(actual, expected, rtol=RTOL, atol=atol):
                found.append(f"{key}: {stat} {got[stat]} instead of {want[stat]}")
    return found


def main(argv=None) -> None:
    from data_creation.standin_mano.make_standin_mano import write_standin_mano

    parser = argparse.ArgumentParser(description="Rewrite tests/golden/<model>.json (all models by default).")
    parser.add_argument("names", nargs="*", help=f"models to rewrite, of {sorted(MODELS)}")
    names = parser.parse_args(argv).names or sorted(MODELS)
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        parser.error(f"unknown model(s) {unknown}; registered: {sorted(MODELS)}")
    GOLDEN_DIR.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as mano_root:
        write_standin_mano(mano_root, seed=0)
        for name in names:
            stats = output_statistics(golden_outputs(mano_root, name))
            lines = ",\n".join(f" {json.dumps(key)}: {json.dumps(entry)}" for key, entry in stats.items())
            golden_file(name).write_text("{\n" + lines + "\n}\n")
            print(f"wrote {golden_file(name)}")


if __name__ == "__main__":
    main()
