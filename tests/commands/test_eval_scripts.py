"""eval.py, eval_h_ho.py and eval_occ_intervals.py end to end on the tiny DexYCB tree, 1 and 2 processes."""
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = {"eval.py": ["all"], "eval_h_ho.py": ["all", "h", "ho"],
           "eval_occ_intervals.py": ["occ_[0,0.25]", "occ_[0.25,0.5]", "occ_[0.5,0.75]", "occ_[0.75,1]"]}


@pytest.fixture(scope="module")
def experiment(tmp_path_factory, tiny_dexycb):
    """A small UniHOPE (64 px input, random weights) saved as an official-layout checkpoint."""
    from models import build_model
    from utils.checkpoint import save_checkpoint
    from utils.config import load_config

    folder = tmp_path_factory.mktemp("exp")
    cfg = {"base": {"exp_name": "tiny", "model_dir": str(folder), "mano_root": str(tiny_dexycb.mano_root)},
           "data": {"name": "DEX_YCB", "root_dir": str(tiny_dexycb.root), "data_split": "s0",
                    "input_img_shape": [64, 64], "eval_type": ["test"]},
           "model": {"name": "unihope_net", "obj_conf_layer_legacy": False},
           "loss": {"name": "hflnet_grasping_objconf"}, "metric": {"obj_eval_mode": "gt"},
           "test": {"batch_size": 6, "num_workers": 0}}
    (folder / "cfg.json").write_text(json.dumps(cfg))
    torch.manual_seed(0)
    model = build_model(load_config(folder))
    save_checkpoint(folder / "test_model_best.pth", model.state_dict(), epoch=1)
    return folder


def _copy_experiment(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for name in ("cfg.json", "test_model_best.pth"):
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


def _run(script, model_dir, processes, extra=(), with_stderr=False):
    """The script on the CPU (any GPU hidden): 1 process, or 2 gloo ranks whose scores must equal the 1-process
    scores, which a GPU's different float rounding would not give. Returns stdout (and stderr with
    ``with_stderr``)."""
    from test_launch import CPU_ONLY, free_port

    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1", **CPU_ONLY}
    args = [str(ROOT / script), "--model_dir", str(model_dir), "--resume", str(model_dir / "test_model_best.pth"),
            "--no_plots", *extra]
    if processes == 1:
        cmd = [sys.executable, *args]
    else:
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(free_port()), *args]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=model_dir)
    assert result.returncode == 0, result.stderr[-4000:]
    return (result.stdout, result.stderr) if with_stderr else result.stdout


def _scores(folder):
    return json.loads((folder / "scores.json").read_text())


def _assert_same_scores(a, b):
    assert a.keys() == b.keys()
    for key, value in a.items():
        if isinstance(value, float) or isinstance(b[key], float):
            if value is None or b[key] is None:
                assert value is b[key], key
            else:
                assert math.isclose(value, b[key], rel_tol=1e-4, abs_tol=1e-6), (key, value, b[key])
        elif not isinstance(value, dict):
            assert value == b[key], key


@pytest.mark.slow
def test_eval_speed_options_give_the_same_scores(experiment, tmp_path):
    plain = _copy_experiment(experiment, tmp_path / "plain")
    fast = _copy_experiment(experiment, tmp_path / "fast")
    _run("eval.py", plain, 1)
    _run("eval.py", fast, 1, ["--set", "test.channels_last=true", "--set", "test.fuse_batchnorm=true"])
    _assert_same_scores(_scores(plain / "all"), _scores(fast / "all"))
    log = (fast / "test.log").read_text()
    assert "channels_last=True fuse_batchnorm=True" in log and "fuse_batchnorm" not in (plain / "test.log").read_text()


@pytest.mark.slow
def test_eval_compiled_gives_the_same_scores(experiment, tmp_path):
    plain = _copy_experiment(experiment, tmp_path / "plain")
    compiled = _copy_experiment(experiment, tmp_path / "compiled")
    _run("eval.py", plain, 1)
    options = ["--set", "test.channels_last=true", "--set", "test.fuse_batchnorm=true", "--set", "test.compile=true",
               "--set", "test.batch_size=5"]
    _, stderr = _run("eval.py", compiled, 1, options, with_stderr=True)
    _assert_same_scores(_scores(plain / "all"), _scores(compiled / "all"))
    log = (compiled / "test.log").read_text()
    assert "compile=True" in log
    assert int(re.search(r"evaluating (\d+) test samples", log).group(1)) % 5  # a short last batch, padded
    assert "compiled forward failed" not in stderr  # it ran compiled, not eagerly


@pytest.mark.slow
@pytest.mark.parametrize("script", list(SCRIPTS))
def test_script_writes_identical_scores_with_one_and_two_processes(script, experiment, tmp_path, tiny_dexycb):
    one = _copy_experiment(experiment, tmp_path / "one")
    two = _copy_experiment(experiment, tmp_path / "two")
    stdout = _run(script, one, 1)
    _run(script, two, 2)
    groups = SCRIPTS[script]
    total = 0
    for group in groups:
        scores_one, scores_two = _scores(one / group), _scores(two / group)
        _assert_same_scores(scores_one, scores_two)
        total += scores_one["num_samples"]
    test_frames = sum(1 for f in tiny_dexycb.manifest["frames"] if f["has_hand"] and f["sequence_index"] % 5 == 4
                      and f["subject"] not in ("20200709-subject-01", "20200813-subject-02"))
    expected = {"eval.py": test_frames, "eval_h_ho.py": 2 * test_frames, "eval_occ_intervals.py": test_frames}
    assert total == expected[script]  # every sample exactly once per grouping, none duplicated by padding
    assert "MPJPE (mm)" in stdout and "PA-MPVPE (mm)" in stdout
    full = _scores(one / groups[0])
    if script == "eval.py":
        assert (one / "all" / "scores.txt").read_text().startswith("xyz_mean3d: ")
        assert math.isclose(float((one / "all" / "scores.txt").read_text().split()[1]), full["mpjpe"] / 10, rel_tol=1e-5)
        assert full["grasp_num_samples"] == total and 0.0 <= full["grasp_accuracy"] <= 1.0
        assert full["obj_num_samples"] == sum(1 for f in tiny_dexycb.manifest["frames"] if f["has_hand"]
                                              and f["grasping"] and f["sequence_index"] % 5 == 4
                                              and f["subject"] not in ("20200709-subject-01", "20200813-subject-02"))


def test_missing_weights_is_a_clear_error(experiment, tmp_path):
    folder = _copy_experiment(experiment, tmp_path / "x")
    result = subprocess.run([sys.executable, str(ROOT / "eval.py"), "--model_dir", str(folder)], capture_output=True,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: no weights given: pass --resume PATH")
