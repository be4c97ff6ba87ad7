"""The out-of-the-box demo: synthetic data -> train a small UniHOPE on the CPU -> the three evaluation scripts.

    python demo.py --out outputs/demo            # what `make demo` runs

Every step is the real pipeline a user runs on DexYCB: the stand-in hand model is written in the MANO file
format, `data_creation/make_synthetic.py` renders a DexYCB-layout tree and runs the data-creation tools on it
(annotation JSON, grasp labels, occlusion ratios, de-occluded pairs), `train.py` trains UniHOPE with the paired
self-distillation, and `eval.py`, `eval_h_ho.py`, `eval_occ_intervals.py` write and print their tables. The
trivial mean-pose baseline is fitted and evaluated the same way for comparison. Finished steps are skipped when
the demo is run again (delete the output folder to start over).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def unihope_config(out: Path, args) -> dict:
    """A small UniHOPE on the synthetic s0 split: 64 px input, 16 x 16 ROIs, non-legacy grasp head, paired
    training with self-distillation."""
    return {
        "base": {"exp_name": "unihope.synthetic", "model_dir": str(out / "unihope.synthetic"),
                 "mano_root": str(out / "mano"), "seed": 0},
        "data": {"name": "DEX_YCB", "root_dir": str(out / "data"), "data_split": "s0",
                 "input_img_shape": [args.res, args.res], "eval_type": ["test"], "contrastive": True,
                 "use_data_aug_h": True, "use_data_aug_ho": True, "use_data_aug_h_gen": True,
                 "pair_same_data_aug": True, "filter_rule": "occ", "occ_threshold": 0.9},
        "model": {"name": "unihope_net", "obj_conf_layer_legacy": False, "roi_res": args.roi_res},
        "loss": {"name": "hflnet_grasping_objconf", "weight": {"c3_h": 0.1, "x_hand": 0.1, "mano_encoding": 0.5}},
        "metric": {"obj_eval_mode": "gt", "rep_threshold": 20, "add_threshold": 0.5},
        "train": {"num_epochs": args.epochs, "batch_size": args.batch_size, "num_workers": args.workers,
                  "init_layer_weight": True},
        "test": {"batch_size": 16, "num_workers": args.workers},
        "summary": {"save_summary_steps": 10, "save_mid_freq": 0, "save_latest_freq": 1},
        "optimizer": {"name": "adam", "lr": args.lr},
        "scheduler": {"name": "step", "milestones": [max(1, int(args.epochs * 0.75))], "gamma": 0.3},
    }


def mean_pose_config(out: Path) -> dict:
    return {"base": {"exp_name": "mean_pose.synthetic", "model_dir": str(out / "mean_pose.synthetic"),
                     "mano_root": str(out / "mano")},
            "data": {"name": "DEX_YCB", "root_dir": str(out / "data"), "data_split": "s0",
                     "input_img_shape": [64, 64], "eval_type": ["test"]},
            "model": {"name": "mean_pose"}, "test": {"batch_size": 32, "num_workers": 0}}


def run(step: str, cmd: list[str]) -> None:
    """Run one pipeline command from the repository root, streaming its output."""
    print(f"\n=== {step}\n$ {' '.join(cmd)}", flush=True)
    start = time.time()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYOPENGL_PLATFORM": os.environ.get("PYOPENGL_PLATFORM", "egl")}
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)
    print(f"=== {step}: {time.time() - start:.0f} s", flush=True)


def write_config(folder: Path, cfg: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cfg.json").write_text(json.dumps(cfg, indent=2) + "\n")
    return folder


def summary(out: Path) -> str:
    """The demo's verdict: trained UniHOPE vs the trivial baseline on the synthetic test split."""
    model = json.loads((out / "unihope.synthetic" / "all" / "scores.json").read_text())
    trivial = json.loads((out / "mean_pose.synthetic" / "all" / "scores.json").read_text())
    ratio = model["mpjpe"] / trivial["mpjpe"]
    lines = ["", "=== demo summary (synthetic s0 test split)",
             f"J-PE    UniHOPE {model['mpjpe']:.2f} mm | mean-pose baseline {trivial['mpjpe']:.2f} mm "
             f"| ratio {ratio:.2f} (target <= 0.70)",
             f"PA-J-PE UniHOPE {model['pa_mpjpe']:.2f} mm | mean-pose baseline {trivial['pa_mpjpe']:.2f} mm",
             f"grasp accuracy (object switcher) {100 * model['grasp_accuracy']:.1f} % (target >= 90 %)"]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="outputs/demo", help="everything the demo writes goes here")
    parser.add_argument("--sequences", type=int, default=50, help="synthetic sequences (>= 50 for a test split)")
    parser.add_argument("--frames", type=int, default=12, help="frames per sequence")
    parser.add_argument("--cameras", type=int, default=1)
    parser.add_argument("--res", type=int, default=64, help="network input size (multiple of 32)")
    parser.add_argument("--roi_res", type=int, default=16, help="ROI feature size (official 32; 16 is 4x cheaper)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--workers", type=int, default=2, help="data-loader / render worker processes")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    py = sys.executable

    if not (out / "mano" / "MANO_RIGHT.pkl").is_file():
        run("stand-in hand model", [py, "-m", "data_creation.make_standin_mano", "--out", str(out / "mano")])
    if not (out / "data" / "dex_ycb_s0_test_data.json").is_file():
        run("synthetic DexYCB-format data + data-creation tools",
            [py, "-m", "data_creation.make_synthetic", "--out", str(out / "data"), "--mano_root", str(out / "mano"),
             "--sequences", str(args.sequences), "--frames", str(args.frames), "--cameras", str(args.cameras),
             "--workers", str(args.workers), "--prepare", "s0", "--sheet", str(out / "synthetic_sheet.png")])
    trivial = write_config(out / "mean_pose.synthetic", mean_pose_config(out))
    if not (trivial / "model_mean.pth").is_file():
        run("trivial baseline: fit the mean training pose", [py, "-m", "data_creation.fit_mean_pose",
                                                              "--model_dir", str(trivial)])
    run("trivial baseline: eval.py", [py, "eval.py", "--model_dir", str(trivial), "--resume",
                                      str(trivial / "model_mean.pth"), "--no_plots"])
    experiment = write_config(out / "unihope.synthetic", unihope_config(out, args))
    latest = experiment / "model_latest.pth"
    resume = ["--resume", str(latest)] if latest.is_file() else []
    run("train UniHOPE on the CPU", [py, "train.py", "--model_dir", str(experiment), *resume])
    checkpoint = str(experiment / "test_model_best.pth")
    for script in ("eval.py", "eval_h_ho.py", "eval_occ_intervals.py"):
        run(f"UniHOPE: {script}", [py, script, "--model_dir", str(experiment), "--resume", checkpoint])
    print(summary(out))


if __name__ == "__main__":
    main()
