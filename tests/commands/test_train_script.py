"""train.py end to end on the tiny DexYCB tree: paired UniHOPE training, files, resume, two processes."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
RUN_FILES = {"model_latest.pth", "model_1.pth", "model_2.pth", "test_model_best.pth", "test_metric_latest.json",
             "test_metric_best.json", "train.log", "cfg_resolved.json", "summary"}


@pytest.fixture(scope="module")
def paired_tree(tmp_path_factory, tiny_dexycb):
    """A copy of the tiny tree with a de-occluded pair (a flat grey crop) for every grasping training frame."""
    from datasets.deocc_pairs import PairEntry, pair_index_path, write_pair_index
    from datasets.label_files import grasp_flags
    from datasets.dexycb_index import load_index

    root = tmp_path_factory.mktemp("paired") / "dexycb"
    shutil.copytree(tiny_dexycb.root, root)
    keys = load_index(root / "dex_ycb_s0_train_data.json").keys()
    grasping = grasp_flags(keys, root / "grasp_s0_train.npy", None)
    crop = root / "deocc" / "grey.png"
    crop.parent.mkdir()
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(crop)
    pairs = {k: PairEntry(str(crop), ori_score=10.0, gen_score=5.0, strength=0.7)
             for k, g in zip(keys, grasping) if g}
    assert pairs
    write_pair_index(pair_index_path(root, "dexycb_s0", 1, 1), pairs)
    return root


def _experiment(folder: Path, tree: Path, mano_root: Path, **train) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {"base": {"exp_name": "tiny", "model_dir": str(folder), "mano_root": str(mano_root), "seed": 1},
           "data": {"name": "DEX_YCB", "root_dir": str(tree), "data_split": "s0", "input_img_shape": [64, 64],
                    "eval_type": ["test"], "contrastive": True, "use_data_aug_h_gen": True,
                    "pair_same_data_aug": True, "filter_rule": "occ", "occ_threshold": 1.1},
           "model": {"name": "unihope_net", "obj_conf_layer_legacy": False, "roi_res": 16},  # 16: cheaper heads
           "loss": {"name": "hflnet_grasping_objconf", "weight": {"c3_h": 0.1, "x_hand": 0.1, "mano_encoding": 0.5}},
           "train": {"num_epochs": 2, "batch_size": 2, "num_workers": 0, **train},
           "test": {"batch_size": 4, "num_workers": 0},
           "summary": {"save_summary_steps": 5, "save_mid_freq": 1, "save_latest_freq": 1},
           "optimizer": {"name": "adam", "lr": 3e-4}, "scheduler": {"name": "step", "milestones": [5], "gamma": 0.5}}
    (folder / "cfg.json").write_text(json.dumps(cfg))
    return folder


def _train(folder, *extra, processes=1, cpu=False):
    """train.py in a subprocess; ``cpu`` (always with several processes: gloo ranks) hides any GPU from it."""
    from test_launch import CPU_ONLY, free_port

    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1",
           **(CPU_ONLY if cpu or processes > 1 else {})}
    args = [str(ROOT / "train.py"), "--model_dir", str(folder), "--debug", *extra]
    if processes == 1:
        cmd = [sys.executable, *args]
    else:
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(free_port()), *args]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, cwd=folder)
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stderr


def _epoch_losses(log: str) -> list[float]:
    return [float(m) for m in re.findall(r"epoch \d+: train .*? total=([0-9.e+-]+)", log)]


@pytest.mark.slow
def test_two_paired_epochs_reduce_the_loss_and_write_every_file(tmp_path, paired_tree, tiny_dexycb):
    folder = _experiment(tmp_path / "run", paired_tree, tiny_dexycb.mano_root)
    log = _train(folder)
    assert RUN_FILES <= {p.name for p in folder.iterdir()}
    assert list((folder / "summary").glob("events.out.tfevents.*"))
    first, second = _epoch_losses((folder / "train.log").read_text())
    assert second < first
    assert "c3_h=" in log and "mano_encoding=" in log  # the distillation terms ran
    latest = torch.load(folder / "model_latest.pth", map_location="cpu", weights_only=True)
    assert latest["epoch"] == 2 and latest["step"] == 20
    metrics = json.loads((folder / "test_metric_latest.json").read_text())
    assert metrics["epoch"] == 2 and np.isfinite(metrics["score"]) and 0 <= metrics["grasp_acc"] <= 1


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_weights(tmp_path, paired_tree, tiny_dexycb):
    """On the CPU: equal weights to 1e-6 need deterministic kernels, and CUDA's backward of the ROI pooling
    (roi_align, grid_sample) adds with atomics in a varying order."""
    straight = _experiment(tmp_path / "straight", paired_tree, tiny_dexycb.mano_root, num_epochs=1)
    _train(straight, "--skip_evaluate", "--stop_after_steps", "4", cpu=True)
    killed = _experiment(tmp_path / "killed", paired_tree, tiny_dexycb.mano_root, num_epochs=1)
    _train(killed, "--skip_evaluate", "--stop_after_steps", "2", cpu=True)
    _train(killed, "--skip_evaluate", "--stop_after_steps", "4", "--resume", str(killed / "model_latest.pth"),
           cpu=True)
    a = torch.load(straight / "model_latest.pth", map_location="cpu", weights_only=True)
    b = torch.load(killed / "model_latest.pth", map_location="cpu", weights_only=True)
    assert a["step"] == b["step"] == 4
    for key, value in a["state_dict"].items():
        assert torch.allclose(value.float(), b["state_dict"][key].float(), atol=1e-6), key


@pytest.mark.slow
def test_two_process_training_keeps_replicas_identical(tmp_path, paired_tree, tiny_dexycb):
    folder = _experiment(tmp_path / "ddp", paired_tree, tiny_dexycb.mano_root, batch_size=4)
    log = _train(folder, "--skip_evaluate", "--stop_after_steps", "2", processes=2)
    match = re.search(r"replica parameter checksums: \[([^\]]+)\]", log)
    assert match, log[-2000:]
    sums = [float(v) for v in match.group(1).split(",")]
    assert len(sums) == 2 and sums[0] == sums[1]
    assert torch.load(folder / "model_latest.pth", map_location="cpu", weights_only=True)["step"] == 2
