"""benchmarks/synthetic_baselines.py: every method's CPU config is its official folder plus valid overrides."""
import json
from pathlib import Path

import pytest

from benchmarks.synthetic_baselines import CPU_SETTINGS, merge, method_config, results_table


def test_merge_is_recursive_and_keeps_untouched_keys():
    base = {"a": {"x": 1, "y": {"p": 2, "q": 3}}, "b": [1]}
    assert merge(base, {"a": {"y": {"q": 9}}, "b": [2], "c": 4}) == {"a": {"x": 1, "y": {"p": 2, "q": 9}},
                                                                       "b": [2], "c": 4}
    assert base["a"]["y"]["q"] == 3  # the input is not modified


@pytest.mark.parametrize("method", list(CPU_SETTINGS))
def test_method_config_loads_with_the_official_model_and_loss(method, tmp_path, standin_mano_root):
    from models.losses import build_loss
    from utils.config import load_config

    folder = Path(__file__).resolve().parents[2] / "experiment" / CPU_SETTINGS[method][0]
    official = json.loads((folder / "cfg.json").read_text())
    cfg = method_config(method, tmp_path, tmp_path / "data", standin_mano_root, workers=0)
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    loaded = load_config(tmp_path)  # unknown keys / wrong types in the overrides raise here
    build_loss(loaded)  # so do loss.weight names that are not terms of the method's loss
    assert loaded.model.name == official["model"]["name"] and loaded.loss.name == official["loss"]["name"]
    assert loaded.data.root_dir == str(tmp_path / "data") and loaded.data.data_split == "s0"
    assert loaded.train.batch_size == CPU_SETTINGS[method][2]["train"]["batch_size"]
    assert not (loaded.data.use_data_aug_h or loaded.data.use_data_aug_ho or loaded.data.use_data_aug_h_gen)


def test_results_table_lists_every_row():
    row = {"method": "m", "mpjpe": 10.0, "pa_mpjpe": 5.0, "mpvpe": 9.5, "pa_mpvpe": 4.26, "ratio": 0.5, "steps": 3,
           "minutes": 1.26}
    lines = results_table([row]).splitlines()
    assert lines[0].startswith("method") and "J-PE ratio" in lines[0]
    assert [c.strip() for c in lines[2].split("|")] == ["m", "10.0", "5.0", "9.5", "4.3", "0.50", "3", "1.3"]
