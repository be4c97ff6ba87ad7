"""The trivial mean-pose baseline: fitted mean equals an independent average; evaluates through eval.py."""
import json

import numpy as np
import torch

from engine.mean_pose_fit import main as fit_main


def _config(folder, tiny_dexycb):
    cfg = {"base": {"model_dir": str(folder), "mano_root": str(tiny_dexycb.mano_root)},
           "data": {"name": "DEX_YCB", "root_dir": str(tiny_dexycb.root), "data_split": "s0",
                    "input_img_shape": [64, 64]},
           "model": {"name": "mean_pose"}, "test": {"batch_size": 5}}
    (folder / "cfg.json").write_text(json.dumps(cfg))


def test_fit_writes_the_average_wrist_relative_mesh(tmp_path, tiny_dexycb):
    from datasets import build_dataset
    from models import build_model
    from utils.checkpoint import load_model_checkpoint
    from utils.config import load_config

    _config(tmp_path, tiny_dexycb)
    path = fit_main(["--model_dir", str(tmp_path)])
    cfg = load_config(tmp_path, overrides=["data.use_data_aug_h=false", "data.use_data_aug_ho=false"])
    model = build_model(cfg)
    load_model_checkpoint(model, path)
    dataset = build_dataset(cfg, "train")
    params = torch.stack([dataset[i]["mano_param"][:58] for i in range(len(dataset))])
    verts, joints = model.gt_meshes(params)
    expected = (joints - joints[:, :1]).mean(0)
    assert torch.allclose(model.mean_joints, expected, atol=1e-6)
    assert torch.allclose(model.mean_joints[0], torch.zeros(3))
    out = model({"img": torch.zeros(3, 3, 64, 64), "mano_param": params[:3]})
    assert out["pred_joints3d_cam"].shape == (3, 21, 3)
    assert torch.allclose(out["pred_joints3d_cam"][1], expected, atol=1e-6)
    assert torch.allclose(out["gt_joints3d_cam"], joints[:3])


def test_mean_pose_evaluates_with_eval_py(tmp_path, tiny_dexycb):
    import eval as eval_script

    _config(tmp_path, tiny_dexycb)
    path = fit_main(["--model_dir", str(tmp_path)])
    reports = eval_script.main(["--model_dir", str(tmp_path), "--resume", str(path), "--no_plots"])
    scores = json.loads((tmp_path / "all" / "scores.json").read_text())
    assert scores["num_samples"] == reports["all"].scores["num_samples"] > 0
    assert 1.0 < scores["mpjpe"] < 200.0 and np.isfinite(scores["pa_mpjpe"])


def test_mean_pose_config_written_as_an_experiment_loads(tmp_path):
    from engine.mean_pose_fit import mean_pose_config
    from utils.config import load_config, write_experiment

    folder = write_experiment(tmp_path / "mean_pose.x", mean_pose_config(tmp_path / "mean_pose.x", tmp_path / "d",
                                                                         tmp_path / "m", split="s1"))
    cfg = load_config(folder)
    assert cfg.model.name == "mean_pose" and cfg.data.data_split == "s1" and cfg.base.exp_name == "mean_pose.x"
    assert cfg.data.root_dir == str(tmp_path / "d") and cfg.base.mano_root == str(tmp_path / "m")
    assert json.loads((folder / "cfg.json").read_text())["test"]["batch_size"] == 32
