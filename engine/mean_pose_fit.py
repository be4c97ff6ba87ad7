"""Fit the trivial ``mean_pose`` baseline on a training split and write its checkpoint.

    python -m engine.mean_pose_fit --model_dir experiment/mean_pose.synthetic
    python eval.py --model_dir experiment/mean_pose.synthetic --resume experiment/mean_pose.synthetic/model_mean.pth

The experiment's cfg.json names ``model.name = "mean_pose"`` and the dataset; training samples are read
without augmentation or pairs, their GT meshes come from ``mano_param`` through the MANO layer.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from datasets import build_dataset, build_loader
from models import build_model
from utils.checkpoint import save_checkpoint
from utils.config import load_config
from utils.errors import command_main

NO_AUGMENTATION = ["data.use_data_aug_h=false", "data.use_data_aug_ho=false", "data.contrastive=false"]


def mean_pose_config(model_dir: Path, data_root: Path, mano_root: Path, split: str = "s0") -> dict:
    """cfg.json contents of the trivial baseline on a DexYCB-format tree (``split`` setup, scored on its test
    split; the 64 px input is only read, never used by the model)."""
    return {"base": {"exp_name": Path(model_dir).name, "model_dir": str(model_dir), "mano_root": str(mano_root)},
            "data": {"name": "DEX_YCB_HOPE", "root_dir": str(data_root), "data_split": split,
                     "input_img_shape": [64, 64], "eval_type": ["test"]},
            "model": {"name": "mean_pose"}, "test": {"batch_size": 32, "num_workers": 0}}


def fit_mean_pose(model, loader) -> int:
    """Average the wrist-relative GT meshes of every sample of ``loader`` into ``model``; returns the count."""
    verts_sum = joints_sum = None
    count = 0
    for batch in loader:
        verts, joints = model.gt_meshes(batch["mano_param"][:, :58])
        wrist = joints[:, :1]
        verts_sum = (verts - wrist).sum(0) + (0 if verts_sum is None else verts_sum)
        joints_sum = (joints - wrist).sum(0) + (0 if joints_sum is None else joints_sum)
        count += len(verts)
    if count == 0:
        raise ValueError("fit_mean_pose: the training split is empty")
    model.set_mean(verts_sum[None] / count, joints_sum[None] / count)
    return count


def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_dir", required=True, help="experiment folder with a mean_pose cfg.json")
    parser.add_argument("--split", default="train")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    args = parser.parse_args(argv)

    cfg = load_config(args.model_dir, overrides=[*NO_AUGMENTATION, *args.overrides], model_dir=args.model_dir)
    model = build_model(cfg).eval()
    loader = build_loader(cfg, "test", build_dataset(cfg, args.split))  # test-style loader: ordered, all samples
    with torch.no_grad():
        count = fit_mean_pose(model, loader)
    path = save_checkpoint(Path(cfg.base.model_dir) / "model_mean.pth", model.state_dict())
    print(f"mean pose of {count} {args.split} samples written to {path}")
    return path


if __name__ == "__main__":
    command_main(main)
