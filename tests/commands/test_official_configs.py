"""Every experiment folder builds on the tiny trees; an official cfg.json runs eval.py changed in its data root only."""
import json
from pathlib import Path

import pytest
import torch

from datasets import DATASETS, build_dataset, official_dataset_name
from models import MODELS, build_model
from models.losses import LOSSES, build_loss
from utils.config import load_config

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = sorted((ROOT / "experiment").glob("*/cfg.json"))
SUB_MODELS = ("cls_model", "h_model", "ho_model")

# experiment/unihope.dexycb_s0/cfg.json exactly as the official release ships it (docs/official-data.md §7.1),
# with its relative root_dir, which the test replaces by the tiny tree.
OFFICIAL_UNIHOPE_DEXYCB_S0 = """{
    "base": {"exp_name": "unihope.dexycb_s0", "model_dir": "experiment/unihope.dexycb_s0"},
    "data": {"name": "DEX_YCB_HOPE", "transforms_type": "hflnet", "eval_type": ["test"],
             "input_img_shape": [128, 128], "root_dir": "data/DexYCB", "load_nori": false, "contrastive": true,
             "use_data_aug_h": true, "use_data_aug_ho": true, "use_data_aug_h_gen": true,
             "pair_same_data_aug": true, "filter_rule": "occ", "occ_threshold": 0.9, "gen_version": 1,
             "data_split": "s0"},
    "model": {"name": "unihope_net"},
    "loss": {"name": "hflnet_grasping_objconf", "weight": {"c3_h": 0.1, "x_hand": 0.1, "mano_encoding": 0.5}},
    "metric": {"major_metric": "score", "obj_eval_mode": "gt"},
    "train": {"num_epochs": 50, "batch_size": 40, "num_workers": 16, "init_layer_weight": true},
    "test": {"batch_size": 40, "num_workers": 16},
    "summary": {"save_summary_steps": 50, "save_mid_freq": 10, "save_latest_freq": 1, "save_best_after": 0},
    "optimizer": {"name": "adam", "lr": 1.18e-05},
    "scheduler": {"name": "step", "milestones": [10, 20, 30, 40, 50], "gamma": 0.7}
}"""


def _raw(path: Path) -> dict:
    return json.loads(path.read_text())


def _tiny_config(path, tiny_dexycb, tiny_ho3d):
    """The experiment's config on the tiny tree of its dataset (data root and MANO folder overridden)."""
    tree = tiny_ho3d if official_dataset_name(_raw(path)["data"]["name"]) == "HO3D_HOPE" else tiny_dexycb
    return load_config(path, overrides=[f"data.root_dir={json.dumps(str(tree.root))}",
                                        f"base.mano_root={json.dumps(str(tree.mano_root))}"])


def test_experiment_folders_spell_the_official_names():
    assert len(EXPERIMENTS) >= 55
    for path in EXPERIMENTS:
        raw = _raw(path)
        assert raw["data"]["name"] in DATASETS, f"{path}: data.name {raw['data']['name']!r}"
        assert raw["model"]["name"] in MODELS and raw["loss"]["name"] in LOSSES, path
        for role in SUB_MODELS:
            assert role not in raw["model"] or raw["model"][role]["name"] in MODELS, f"{path}: model.{role}"
    assert set(DATASETS) == {"DEX_YCB_HOPE", "HO3D_HOPE"}


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.parent.name for p in EXPERIMENTS])
def test_every_experiment_builds_its_evaluation_dataset_and_its_loss(path, tiny_dexycb, tiny_ho3d):
    cfg = _tiny_config(path, tiny_dexycb, tiny_ho3d)
    split = cfg.data.eval_type[0]
    dataset = build_dataset(cfg, split)
    if cfg.data.data_split == "s3" and official_dataset_name(cfg.data.name) == "DEX_YCB_HOPE":
        assert len(dataset) == 0  # the tiny tree has too few sequences per subject for the s3 held-out objects
    else:
        sample = dataset[0]
        side = int(cfg.data.input_img_shape[0])
        assert tuple(sample["img"].shape) == (3, side, side), path
    assert callable(build_loss(cfg))


def _distinct_models():
    seen = {}
    for path in EXPERIMENTS:
        seen.setdefault(json.dumps(_raw(path)["model"], sort_keys=True), path)
    return sorted(seen.values())


@pytest.mark.slow
def test_every_distinct_model_of_the_experiments_builds(tiny_dexycb, tiny_ho3d):
    """One build per distinct model section (the A+B ones with their three sub-models)."""
    built = set()
    for path in _distinct_models():
        model = build_model(_tiny_config(path, tiny_dexycb, tiny_ho3d))
        assert sum(p.numel() for p in model.parameters()) > 0
        built.add(_raw(path)["model"]["name"])
    assert built == {_raw(p)["model"]["name"] for p in EXPERIMENTS}


@pytest.mark.slow
def test_eval_py_runs_an_official_cfg_json_with_only_the_data_root_changed(tmp_path, tiny_dexycb, monkeypatch):
    import eval as eval_script
    from utils.checkpoint import save_checkpoint

    raw = json.loads(OFFICIAL_UNIHOPE_DEXYCB_S0)
    raw["data"]["root_dir"] = str(tiny_dexycb.root)
    (tmp_path / "cfg.json").write_text(json.dumps(raw, indent=4))
    monkeypatch.setenv("MANO_ROOT", str(tiny_dexycb.mano_root))
    torch.manual_seed(0)
    model = build_model(load_config(tmp_path))
    save_checkpoint(tmp_path / "test_model_best.pth", model.state_dict(), epoch=50)
    reports = eval_script.main(["--model_dir", str(tmp_path), "--resume", str(tmp_path / "test_model_best.pth"),
                                "--no_plots"])
    records = json.loads((tiny_dexycb.root / "dex_ycb_s0_test_data.json").read_text())
    scores = json.loads((tmp_path / "all" / "scores.json").read_text())
    assert reports["all"] and scores["num_samples"] == len(records) == 24
    assert scores["mpjpe"] > 0 and (tmp_path / "all" / "scores.txt").is_file()
