"""Bad input through the real commands: one clear message naming the file / record / key and exit status 2.

The commands run in-process through :func:`utils.errors.command_main` (what their ``__main__`` does) except where the
process itself matters (exit status, traceback on stderr), which runs them as subprocesses.
"""
from __future__ import annotations

import json
import math
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import eval as eval_script
import eval_occ_intervals
import train
from utils.errors import command_main

ROOT = Path(__file__).resolve().parents[2]


def _experiment(folder: Path, tree, **sections) -> Path:
    """A cheap HFL-Net (ResNet-18 trunk, 64 px, 16 px ROIs) experiment on the tiny DexYCB tree."""
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {"base": {"exp_name": "bad_input", "model_dir": str(folder), "mano_root": str(tree.mano_root), "seed": 3},
           "data": {"name": "DEX_YCB", "root_dir": str(tree.root), "data_split": "s0", "input_img_shape": [64, 64],
                    "eval_type": ["test"], "use_data_aug_h": False, "use_data_aug_ho": False},
           "model": {"name": "hflnet", "backbone": "resnet18", "roi_res": 16}, "loss": {"name": "hflnet"},
           "train": {"num_epochs": 1, "batch_size": 2, "num_workers": 0},
           "test": {"batch_size": 4, "num_workers": 0},
           "summary": {"save_summary_steps": 50, "save_mid_freq": 0, "save_latest_freq": 1},
           "optimizer": {"name": "adam", "lr": 1e-4}, "scheduler": {"name": "step", "milestones": [5], "gamma": 0.5}}
    for section, values in sections.items():
        cfg[section].update(values)
    (folder / "cfg.json").write_text(json.dumps(cfg))
    return folder


def _fails(main, argv, capsys) -> str:
    """Run ``main`` as its command does; assert exit status 2 and return the one-line message."""
    with pytest.raises(SystemExit) as exit_info:
        command_main(main, [str(a) for a in argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and "Traceback" not in "\n".join(err)
    return err[-1]


def _succeeds(main, argv):
    return command_main(main, [str(a) for a in argv])


def _no_heavy_work(monkeypatch):
    """Fail the test if a model or dataset is built (settings must be checked before)."""
    import datasets
    import models

    monkeypatch.setattr(models, "build_model", lambda *a: pytest.fail("model built before the check"))
    monkeypatch.setattr(datasets, "build_dataset", lambda *a: pytest.fail("dataset built before the check"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_dexycb):
    """One training step of the cheap experiment: model_latest.pth with the run's config."""
    folder = _experiment(tmp_path_factory.mktemp("trained"), tiny_dexycb)
    command_main(train.main, ["--model_dir", str(folder), "--stop_after_steps", "1", "--skip_evaluate"])
    return folder


@pytest.mark.parametrize("flag,value,message", [("--stop_after_steps", "0", "must be >= 1, got 0"),
                                                ("--stop_after_steps", "-5", "must be >= 1, got -5"),
                                                ("--save_every_steps", "-1", "must be >= 0, got -1"),
                                                ("--save_every_steps", "2.5", "expected a whole number, got '2.5'")])
def test_invalid_step_options_are_refused(tmp_path, tiny_dexycb, capsys, flag, value, message):
    folder = _experiment(tmp_path / "run", tiny_dexycb)
    with pytest.raises(SystemExit) as exit_info:
        command_main(train.main, ["--model_dir", str(folder), flag, value])
    assert exit_info.value.code == 2
    assert f"argument {flag}: {message}" in capsys.readouterr().err


@pytest.mark.parametrize("override,message", [("train.batch_size=2.5", "expected a whole number, got 2.5"),
                                              ("train.num_epochs=1.5", "expected a whole number, got 1.5")])
def test_invalid_numbers_in_set_are_blamed_on_set(tmp_path, tiny_dexycb, capsys, monkeypatch, override, message):
    _no_heavy_work(monkeypatch)
    folder = _experiment(tmp_path / "run", tiny_dexycb)
    line = _fails(train.main, ["--model_dir", folder, "--set", override], capsys)
    assert line.startswith(f"error: --set {override}: key '{override.split('=')[0]}': {message}")


def test_batch_larger_than_the_split_is_refused_before_training(tmp_path, tiny_dexycb, capsys):
    folder = _experiment(tmp_path / "run", tiny_dexycb, train={"batch_size": 10_000})
    line = _fails(train.main, ["--model_dir", folder], capsys)
    assert "fewer than train.batch_size=10000; every epoch would train on no batch" in line
    assert not (folder / "model_latest.pth").exists()


@pytest.mark.parametrize("edges", ["[0,NaN,1]", "[0,0.5,0.25,1]", "[0.5]", '["a","b"]'])
def test_invalid_occlusion_bins_are_refused_before_the_pass(tmp_path, tiny_dexycb, capsys, monkeypatch, edges):
    _no_heavy_work(monkeypatch)
    folder = _experiment(tmp_path / "run", tiny_dexycb)
    line = _fails(eval_occ_intervals.main, ["--model_dir", folder, "--resume", folder / "x.pth",
                                            "--set", f"data.occ_intervals={edges}"], capsys)
    assert "data.occ_intervals must be at least 2 finite, strictly increasing bin edges" in line


@pytest.mark.parametrize("content,message", [(b"", "the checkpoint file is empty"),
                                             (os.urandom(4096), "not a PyTorch checkpoint, or truncated"),
                                             ({"state_dict": [1, 2]}, "'state_dict' must map parameter names")])
def test_garbage_checkpoints_are_named(tmp_path, tiny_dexycb, capsys, content, message):
    folder = _experiment(tmp_path / "run", tiny_dexycb)
    path = folder / "model.pth"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    line = _fails(eval_script.main, ["--model_dir", folder, "--resume", path], capsys)
    assert line.startswith(f"error: {path}: ") and message in line


def test_nan_weights_and_bad_backbone_weights_are_named_before_the_pass(tmp_path, tiny_dexycb, trained, capsys):
    from utils.checkpoint import load_checkpoint, save_checkpoint

    folder = _experiment(tmp_path / "run", tiny_dexycb)
    state = load_checkpoint(trained / "model_latest.pth")["state_dict"]
    name = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 4)
    state[name].view(-1)[0] = math.nan
    save_checkpoint(folder / "nan.pth", state)
    line = _fails(eval_script.main, ["--model_dir", folder, "--resume", folder / "nan.pth"], capsys)
    assert f"nan.pth: non-finite weights (NaN or infinity) in 1 ({name} (1 of " in line
    (folder / "imagenet.pth").write_bytes(b"not torch")
    line = _fails(eval_script.main, ["--model_dir", folder, "--resume", folder / "nan.pth",
                                     "--set", f'model.backbone_weights="{folder / "imagenet.pth"}"'], capsys)
    assert line.startswith(f"error: {folder / 'imagenet.pth'}: cannot be loaded as a weights-only checkpoint")


def test_train_log_never_follows_a_symlink(tmp_path, tiny_dexycb, capsys):
    folder = _experiment(tmp_path / "run", tiny_dexycb)
    target = tmp_path / "precious.txt"
    target.write_text("keep me\n")
    (folder / "train.log").symlink_to(target)
    line = _fails(train.main, ["--model_dir", folder], capsys)
    assert "train.log is a symbolic link; refusing to append the log to its target" in line
    assert target.read_text() == "keep me\n"


def test_resume_refuses_config_changes_unless_allowed(tmp_path, tiny_dexycb, trained, capsys):
    from utils.checkpoint import load_checkpoint

    checkpoint = trained / "model_latest.pth"
    saved = load_checkpoint(checkpoint)["config"]
    assert saved["train"]["batch_size"] == 2 and saved["base"]["seed"] == 3
    folder = _experiment(tmp_path / "run", tiny_dexycb, base={"seed": 4}, train={"batch_size": 4})
    line = _fails(train.main, ["--model_dir", folder, "--resume", checkpoint], capsys)
    assert f"{checkpoint}: the config changed since this checkpoint was written (base.seed: 3 -> 4; " \
           f"train.batch_size: 2 -> 4)" in line and "--allow_config_change" in line
    # allowed: a warning, and the run continues from the checkpoint's step
    _succeeds(train.main, ["--model_dir", folder, "--resume", checkpoint, "--allow_config_change",
                           "--stop_after_steps", "2", "--skip_evaluate"])
    assert "resuming" in capsys.readouterr().err and load_checkpoint(folder / "model_latest.pth")["step"] == 2


def test_changed_optimizer_is_a_clear_error_with_or_without_a_stored_config(tmp_path, tiny_dexycb, trained, capsys):
    from utils.checkpoint import load_checkpoint

    folder = _experiment(tmp_path / "run", tiny_dexycb, optimizer={"name": "sgd", "lr": 1e-4})
    line = _fails(train.main, ["--model_dir", folder, "--resume", trained / "model_latest.pth",
                               "--allow_config_change"], capsys)
    assert "written with optimizer.name='adam', the config now says 'sgd'" in line and "--only_weights" in line
    official = load_checkpoint(trained / "model_latest.pth")
    official.pop("config")  # the official layout: no config
    torch.save(official, folder / "official.pth")
    line = _fails(train.main, ["--model_dir", folder, "--resume", folder / "official.pth"], capsys)
    assert "official.pth: its optimizer state was written by another optimizer than SGD (it lacks ['dampening'" in line


def test_leftover_temporaries_are_removed_at_the_next_start(tmp_path, tiny_dexycb, capsys):
    folder = _experiment(tmp_path / "run", tiny_dexycb, train={"batch_size": 10_000})
    leftover = folder / ".model_latest.pth.k3x_9abc.tmp"
    leftover.write_bytes(b"\0" * 1000)
    _fails(train.main, ["--model_dir", folder], capsys)  # the run stops early; the cleanup happened at start
    assert not leftover.exists()
    assert f"removed {leftover}, left by an interrupted save" in (folder / "train.log").read_text()


def _run(args, cwd, **env):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1", **env}
    return subprocess.run([sys.executable, *map(str, args)], env=env, capture_output=True, text=True, timeout=600,
                          cwd=cwd)


def test_memo_bomb_mano_file_ends_eval_with_one_message_and_exit_2(tmp_path, tiny_dexycb):
    mano = tmp_path / "mano"
    mano.mkdir()
    bomb = [0.0] * 40
    for _ in range(6):
        bomb = [bomb] * 40
    for side in ("RIGHT", "LEFT"):
        (mano / f"MANO_{side}.pkl").write_bytes(pickle.dumps({"shapedirs": bomb}, protocol=2))
    folder = _experiment(tmp_path / "run", tiny_dexycb, base={"mano_root": str(mano)})
    args = [ROOT / "eval.py", "--model_dir", folder, "--resume", folder / "x.pth"]
    result = _run(args, tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {mano / 'MANO_RIGHT.pkl'}: refusing a pickle "
                                                             f"that expands to more than")
    assert "Traceback" not in result.stderr
    debug = _run([*args, "--debug"], tmp_path)
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "DataError" in debug.stderr


def test_data_creation_tool_reports_a_bad_annotation_with_exit_2(tmp_path, tiny_dexycb):
    records = json.loads((tiny_dexycb.root / "dex_ycb_s0_test_data.json").read_text())
    key = sorted(records)[1]
    joints = np.asarray(records[key]["joint_3d"], dtype=np.float64)
    joints.flat[0] = math.nan
    records[key]["joint_3d"] = joints.tolist()
    (tmp_path / "dex_ycb_s0_test_data.json").write_text(json.dumps(records))
    result = _run(["-m", "data_creation.labels.prepare_grasp_dexycb", "--root", tmp_path, "--data_split", "s0_test"],
                  tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"error: {tmp_path / 'dex_ycb_s0_test_data.json'}: record '{key}': field "
                                     f"'joint_3d' holds non-finite values (NaN or infinity) at positions [0]")
