"""What --resume accepts: the config keys that may change without breaking step-exact resume, and those that may not."""
import logging

import pytest

from engine.fit import check_resume_config, config_changes
from utils.config import apply_overrides, config_from_dict
from utils.errors import CheckpointError

BASE = config_from_dict({"base": {"seed": 1}, "model": {"name": "hflnet"}, "train": {"batch_size": 8}})


def _changed(*overrides):
    return config_changes(BASE.to_dict(), apply_overrides(BASE, list(overrides)).to_dict())


def test_locations_epochs_workers_evaluation_and_logging_may_change():
    assert _changed("base.model_dir=\"/elsewhere\"", "data.root_dir=\"/data\"", "base.mano_root=\"/mano\"",
                    "train.num_epochs=9", "train.num_workers=4", "test.batch_size=3", "summary.save_mid_freq=2",
                    "metric.obj_eval_mode=\"pred\"", "data.eval_type=[\"val\"]") == []


@pytest.mark.parametrize("override,change", [
    ("train.batch_size=16", "train.batch_size: 8 -> 16"), ("base.seed=2", "base.seed: 1 -> 2"),
    ("data.data_split=\"s1\"", "data.data_split: 's0' -> 's1'"), ("optimizer.lr=0.5", "optimizer.lr: 0.0001 -> 0.5"),
    ("scheduler.milestones=[3]", "scheduler.milestones: [] -> [3]"), ("model.roi_res=16", "model.roi_res: 32 -> 16"),
    ("loss.weight={\"a\": 1}", "loss.weight: {} -> {'a': 1}"),
    ("train.mixed_precision=\"bf16\"", "train.mixed_precision: 'no' -> 'bf16'")])
def test_changes_that_alter_the_training_are_listed(override, change):
    assert _changed(override) == [change]


def test_check_refuses_warns_or_passes(caplog, monkeypatch):
    monkeypatch.setattr(logging.getLogger("train"), "propagate", True)  # train.py's logger does not propagate
    saved, current = BASE.to_dict(), apply_overrides(BASE, ["train.batch_size=4"]).to_dict()
    with pytest.raises(CheckpointError, match=r"m\.pth: the config changed .*train\.batch_size: 8 -> 4"):
        check_resume_config(saved, current, "m.pth", allow_change=False)
    check_resume_config(saved, current, "m.pth", allow_change=True)
    assert "train.batch_size: 8 -> 4" in caplog.text
    check_resume_config(None, current, "official.pth", allow_change=False)  # official checkpoints hold no config
    sgd = apply_overrides(BASE, ["optimizer.name=\"sgd\""]).to_dict()
    with pytest.raises(CheckpointError, match="optimizer.name='adam', the config now says 'sgd'"):
        check_resume_config(saved, sgd, "m.pth", allow_change=True)
