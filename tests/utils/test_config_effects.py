"""Official keys without an effect here are reported at start-up: key, file, what the official code did."""
import argparse
import json
import logging

import pytest

from engine.cli import load_run_config
from utils.config import config_from_dict
from utils.config_effects import INERT_KEYS, config_value, inert_key_warnings

SIMPLEHAND_MODEL = {"name": "simple_hand", "BACKBONE": {"model_name": "fastvit_ma36", "pretrain": True,
                                                        "out_feature_channel": 1216, "drop_path_rate": 0.2},
                    "DEPTH_HEAD": {"in_features": 1216, "out_features": 1},
                    "LOSSES": {"UV_LOSS_WEIGHT": 1.0}}


def _messages(raw):
    return inert_key_warnings(config_from_dict(raw, source="experiment/x/cfg.json"))


def test_every_inert_key_is_reported_with_file_and_official_behaviour():
    raw = {"data": {"transforms_type": "hflnet", "load_nori": True},
           "metric": {"major_metric": "MPJPE"}, "test": {"test_part": 1},
           "loss": {"name": "hand_occ_net", "lambda_mano_verts": 1e4, "lambda_mano_joints": 1e4,
                    "lambda_mano_pose": 10, "lambda_mano_shape": 0.1, "lambda_joints_img": 100},
           "model": SIMPLEHAND_MODEL}
    messages = _messages(raw)
    reported = {message.split(": ", 1)[1].split("=", 1)[0] for message in messages}
    assert reported == {key.key for key in INERT_KEYS} - {"model.pretrain"}
    assert all(message.startswith("experiment/x/cfg.json: ") for message in messages)
    nori = next(m for m in messages if "data.load_nori" in m)
    assert "private nori storage" in nori and "local files under data.root_dir" in nori
    assert any("metric.major_metric='MPJPE'" in m and "selection always uses 'score'" in m for m in messages)


def test_values_that_match_our_behaviour_are_not_reported():
    raw = {"data": {"load_nori": False}, "metric": {"major_metric": "score"}, "test": {"test_part": 0},
           "model": {"name": "hflnet", "pretrain": True}}
    assert _messages(raw) == []


@pytest.mark.parametrize("name,weights,reported", [("mobrecon", None, True), ("h2onet", None, True),
                                                    ("mobrecon", "densestack.pth", False),
                                                    ("hand_occ_net", None, False)])
def test_model_pretrain_is_reported_where_it_loaded_weights(name, weights, reported):
    messages = _messages({"model": {"name": name, "pretrain": True, "backbone_weights": weights}})
    assert any("model.pretrain=True" in m and "densestack.pth" in m for m in messages) == reported


def test_config_value_reads_sub_dictionaries():
    cfg = config_from_dict({"model": SIMPLEHAND_MODEL})
    assert config_value(cfg, "model.BACKBONE.drop_path_rate") == 0.2
    assert config_value(cfg, "model.UV_HEAD.in_features") is None


def test_entry_points_log_the_warnings_at_start_up(tmp_path, caplog):
    (tmp_path / "cfg.json").write_text(json.dumps({"data": {"name": "DEX_YCB_HOPE", "transforms_type": "hflnet"}}))
    args = argparse.Namespace(model_dir=str(tmp_path), overrides=[])
    with caplog.at_level(logging.WARNING, logger="config"):
        load_run_config(args)
    assert f"{tmp_path / 'cfg.json'}: data.transforms_type='hflnet' has no effect here" in caplog.text


def test_official_spellings_of_simplehand_and_handoccnet_keys_load():
    cfg = config_from_dict({"data": {"name": "DEX_YCB_HOPE", "minibatch_per_epoch": 3136},
                            "loss": {"name": "hand_occ_net", "lambda_mano_verts": 1e4, "lambda_joints_img": 100}})
    assert cfg.optimizer.minibatch_per_epoch == 3136  # the SimpleHand warm-up length, wherever the file puts it
    assert cfg.loss.lambda_mano_verts == 1e4 and cfg.loss.lambda_joints_img == 100
