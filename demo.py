"""The out-of-the-box demo: synthetic data -> train a small UniHOPE (GPU if any, else CPU) -> the three evaluations.

    python demo.py --out outputs/demo            # what `make demo` runs

Every step is the real pipeline a user runs on DexYCB: the stand-in hand model is written in the MANO file
format, `data_creation/synthetic/make_synthetic.py` renders a DexYCB-layout tree and runs the data-creation tools on it
(annotation JSON, grasp labels, occlusion ratios, de-occluded pairs), `train.py` trains UniHOPE with the paired
self-distillation, and `eval.py`, `eval_h_ho.py`, `eval_occ_intervals.py` write and print their tables. The
trivial mean-pose baseline is fitted and evaluated the same way for comparison. Finished steps are skipped when
the demo is run again (delete the output folder to start over). The end of the output lists each stage's wall
time (also in ``<out>/demo_timings.json``).
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
    """``experiment/unihope.synthetic/cfg.json`` (a small UniHOPE: ResNet-18 trunk, 64 px input, 16 x 16 ROIs,
    non-legacy grasp head, paired training with self-distillation, no augmentation, selection on the val split)
    pointed at the demo's folders, with the sizes given on the command line."""
    from utils.runtime import resolve_mixed_precision  # lazy (entry point): --help answers without torch

    cfg = json.loads((ROOT / "experiment" / "unihope.synthetic" / "cfg.json").read_text())
    cfg["base"].update(model_dir=str(out / "unihope.synthetic"), mano_root=str(out / "mano"))
    cfg["data"].update(root_dir=str(out / "data"), input_img_shape=[args.res, args.res])
    cfg["model"]["roi_res"] = args.roi_res
    cfg["train"].update(num_epochs=args.epochs, batch_size=args.batch_size, num_workers=args.workers,
                        mixed_precision=resolve_mixed_precision(args.mixed_precision))
    cfg["test"]["num_workers"] = args.workers
    cfg["optimizer"]["lr"] = args.lr
    cfg["scheduler"]["milestones"] = [max(1, int(args.epochs * 0.75))]
    return cfg


def run(step: str, cmd: list[str], timings: dict) -> None:
    """Run one pipeline command from the repository root, streaming its output; records its wall time
    (seconds) in ``timings[step]``."""
    print(f"\n=== {step}\n$ {' '.join(cmd)}", flush=True)
    start = time.time()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)
    timings[step] = time.time() - start
    print(f"=== {step}: {timings[step]:.0f} s", flush=True)


def timing_table(timings: dict, total: float) -> str:
    """The stages this run executed (skipped ones are absent) with their minutes, and the run's wall time."""
    lines = ["", "=== demo stages (wall time of this run)"]
    lines += [f"{seconds / 60:6.2f} min  {step}" for step, seconds in timings.items()]
    lines.append(f"{total / 60:6.2f} min  total")
    return "\n".join(lines)


def summary(out: Path) -> str:
    """The demo's verdict: trained UniHOPE vs the trivial baseline on the synthetic test split."""
    model = json.loads((out / "unihope.synthetic" / "all" / "scores.json").read_text())
    trivial = json.loads((out / "mean_pose.synthetic" / "all" / "scores.json").read_text())
    ratio = model["mpjpe"] / trivial["mpjpe"]
    accuracy = 100 * model["grasp_accuracy"]
    verdict = {True: "met", False: "NOT met"}
    lines = ["", f"=== demo summary (synthetic s0 test split, {model['num_samples']} samples)",
             f"J-PE    UniHOPE {model['mpjpe']:.2f} mm | mean-pose baseline {trivial['mpjpe']:.2f} mm "
             f"| ratio {ratio:.2f} (target <= 0.70: {verdict[ratio <= 0.70]})",
             f"PA-J-PE UniHOPE {model['pa_mpjpe']:.2f} mm | mean-pose baseline {trivial['pa_mpjpe']:.2f} mm",
             f"grasp accuracy (object switcher) {accuracy:.1f} % (target >= 90 %: {verdict[accuracy >= 90.0]})",
             f"prediction sheet: {out / 'unihope.synthetic' / 'prediction_sheet.png'}"]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="outputs/demo", help="everything the demo writes goes here")
    parser.add_argument("--sequences", type=int, default=100, help="synthetic sequences (>= 50 for a test split)")
    parser.add_argument("--frames", type=int, default=5, help="frames per sequence (>= 4)")
    parser.add_argument("--cameras", type=int, default=4, help="camera views per sequence (1-8)")
    parser.add_argument("--res", type=int, default=64, help="network input size (multiple of 32)")
    parser.add_argument("--roi_res", type=int, default=16, help="ROI feature size (official 32; 16 is 4x cheaper)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--mixed_precision", default="auto", choices=["auto", "no", "bf16"],
                        help="training precision (auto: bf16 when the CPU/GPU has native bf16 instructions)")
    parser.add_argument("--workers", type=int, default=2, help="data-loader / render worker processes")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    py = sys.executable
    started, timings = time.time(), {}
    # lazy (entry point): --help answers without torch
    from engine.mean_pose_fit import mean_pose_config
    from utils.atomic import atomic_write_json
    from utils.config import write_experiment
    from utils.runtime import training_device_name

    if not (out / "mano" / "MANO_RIGHT.pkl").is_file():
        run("stand-in hand model",
            [py, "-m", "data_creation.standin_mano.make_standin_mano", "--out", str(out / "mano")], timings)
    if not (out / "data" / "dex_ycb_s0_test_data.json").is_file():
        run("synthetic DexYCB-format data + data-creation tools",
            [py, "-m", "data_creation.synthetic.make_synthetic", "--out", str(out / "data"),
             "--mano_root", str(out / "mano"),
             "--sequences", str(args.sequences), "--frames", str(args.frames), "--cameras", str(args.cameras),
             "--workers", str(args.workers), "--prepare", "s0", "--sheet", str(out / "synthetic_sheet.png")], timings)
    trivial = write_experiment(out / "mean_pose.synthetic",
                               mean_pose_config(out / "mean_pose.synthetic", out / "data", out / "mano"))
    if not (trivial / "model_mean.pth").is_file():
        run("trivial baseline: fit the mean training pose", [py, "-m", "engine.mean_pose_fit",
                                                              "--model_dir", str(trivial)], timings)
    run("trivial baseline: eval.py", [py, "eval.py", "--model_dir", str(trivial), "--resume",
                                      str(trivial / "model_mean.pth"), "--no_plots"], timings)
    experiment = write_experiment(out / "unihope.synthetic", unihope_config(out, args))
    latest = experiment / "model_latest.pth"
    # a rerun with another --epochs moves the learning-rate milestone: resume anyway (train.py warns)
    resume = ["--resume", str(latest), "--allow_config_change"] if latest.is_file() else []
    run(f"train UniHOPE on the {training_device_name()}",
        [py, "train.py", "--model_dir", str(experiment), *resume], timings)
    checkpoint = str(experiment / "val_model_best.pth")
    for script in ("eval.py", "eval_h_ho.py", "eval_occ_intervals.py"):
        sheet = ["--sheet", "12"] if script == "eval.py" else []
        run(f"UniHOPE: {script}",
            [py, script, "--model_dir", str(experiment), "--resume", checkpoint, *sheet], timings)
    print(summary(out))
    total = time.time() - started
    print(timing_table(timings, total))
    atomic_write_json(out / "demo_timings.json", {"stages_s": timings, "total_s": total})


if __name__ == "__main__":
    main()
