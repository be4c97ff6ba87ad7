"""Experiment configuration: official files load, unknown keys are named, overrides apply."""
import json
from pathlib import Path

import pytest

from utils.config import ConfigError, apply_overrides, load_config, save_config

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = sorted(p.parent for p in (ROOT / "experiment").glob("*/cfg.json"))


def test_every_experiment_is_present():
    names = {p.name for p in EXPERIMENTS}
    for required in ("unihope.dexycb_s0", "unihope.dexycb_s1", "unihope.dexycb_s3", "unihope.ho3d",
                     "hflnet.dexycb_s0.h-ho_train", "classifier.dexycb_s0.h-ho_train",
                     "classifier_h2onet_hflnet.dexycb_s3", "classifier_handoccnet_hflnet.ho3d"):
        assert required in names


@pytest.mark.parametrize("folder", EXPERIMENTS, ids=[p.name for p in EXPERIMENTS])
def test_official_config_loads_and_keeps_its_values(folder):
    raw = json.loads((folder / "cfg.json").read_text())
    cfg = load_config(folder)
    for section, values in raw.items():
        for key, value in values.items():
            assert getattr(getattr(cfg, section), key) == value, f"{section}.{key}"
    assert cfg.base.exp_name == folder.name


def test_official_defaults_fill_missing_keys():
    cfg = load_config(ROOT / "experiment/hflnet.dexycb_s0.h-ho_train")
    assert cfg.data.occ_intervals == [0, 0.25, 0.5, 0.75, 1]
    assert cfg.data.filter_rule == "score" and cfg.data.occ_threshold == 0.8
    assert cfg.metric.rep_threshold == 5 and cfg.metric.add_threshold == 0.1
    assert cfg.train.train_part == [0, 1] and cfg.loss.loss_func == "l1_loss"
    assert cfg.model.obj_conf_layer_legacy is True


def test_unihope_values_follow_the_official_table():
    s0 = load_config(ROOT / "experiment/unihope.dexycb_s0")
    ho3d = load_config(ROOT / "experiment/unihope.ho3d")
    assert s0.loss.weight == {"c3_h": 0.1, "x_hand": 0.1, "mano_encoding": 0.5}
    assert s0.optimizer.lr == pytest.approx(1.18e-5) and s0.train.batch_size == 40
    assert ho3d.model.obj_conf_layer_legacy is False and ho3d.data.input_img_shape == [256, 256]
    assert ho3d.optimizer.weight_decay_l2 == pytest.approx(5e-4) and ho3d.data.gen_part == 2


def _write(tmp_path, raw):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(raw))
    return path


def test_unknown_key_error_names_file_section_key_and_suggestion(tmp_path):
    path = _write(tmp_path, {"train": {"batch_sise": 8}})
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert str(path) in message and "train.batch_sise" in message and "batch_size" in message


def test_unknown_section_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown section 'trian'.*'train'"):
        load_config(_write(tmp_path, {"trian": {}}))


def test_wrong_type_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="data.contrastive.*true/false"):
        load_config(_write(tmp_path, {"data": {"contrastive": "yes"}}))


def test_overrides_and_model_dir(tmp_path):
    cfg = load_config(ROOT / "experiment/unihope.dexycb_s0",
                      overrides=["train.batch_size=8", "data.root_dir=/data/dex", "loss.weight={\"c3_h\": 1}"],
                      model_dir=str(tmp_path))
    assert cfg.train.batch_size == 8
    assert cfg.data.root_dir == "/data/dex"
    assert cfg.loss.weight == {"c3_h": 1}
    assert cfg.base.model_dir == str(tmp_path)
    assert cfg.data.data_split == "s0"  # untouched


def test_override_errors_name_the_key():
    cfg = load_config(ROOT / "experiment/unihope.dexycb_s0")
    with pytest.raises(ConfigError, match="train.batch_sise.*batch_size"):
        apply_overrides(cfg, ["train.batch_sise=8"])
    with pytest.raises(ConfigError, match="section.key=value"):
        apply_overrides(cfg, ["batch_size=8"])


def test_config_is_frozen_and_round_trips(tmp_path):
    cfg = load_config(ROOT / "experiment/unihope.ho3d")
    with pytest.raises(AttributeError):
        cfg.train.batch_size = 3
    save_config(cfg, tmp_path / "resolved.json")
    again = load_config(tmp_path / "resolved.json")
    assert again == cfg


def test_missing_file_and_bad_json(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere"):
        load_config(tmp_path / "nothere" / "cfg.json")
    bad = tmp_path / "cfg.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="invalid JSON"):
        load_config(bad)


@pytest.mark.parametrize("override,message", [
    ("train.batch_size=2.5", "expected a whole number, got 2.5"),
    ("train.num_epochs=1.5", "expected a whole number, got 1.5"),
    ("train.batch_size=0", "must be >= 1, got 0"), ("test.batch_size=-4", "must be >= 1, got -4"),
    ("train.num_epochs=-1", "must be >= 0"), ("optimizer.lr=NaN", "expected a finite number, got nan"),
    ("optimizer.lr=-0.1", "must be >= 0.0")])
def test_invalid_numbers_are_refused_and_blamed_on_the_override(override, message):
    cfg = load_config(ROOT / "experiment/unihope.dexycb_s0")
    dotted = override.split("=")[0]
    with pytest.raises(ConfigError, match=rf"^--set {dotted}=.*: key '{dotted}': {message}"):
        apply_overrides(cfg, [override])


def test_whole_float_is_accepted_as_an_integer():
    cfg = apply_overrides(load_config(ROOT / "experiment/unihope.dexycb_s0"), ["train.batch_size=8.0"])
    assert cfg.train.batch_size == 8 and isinstance(cfg.train.batch_size, int)


def test_invalid_value_in_the_file_is_blamed_on_the_file(tmp_path):
    (tmp_path / "cfg.json").write_text(json.dumps({"train": {"batch_size": 2.5}}))
    with pytest.raises(ConfigError, match=rf"^{tmp_path}/cfg.json: key 'train.batch_size': expected a whole number"):
        load_config(tmp_path)
