"""State-dict compatibility with the official checkpoints (docs/official-model.md §1.2, §2, §5)."""
from collections import Counter

import pytest
import torch
from fixtures_models import (model_config, official_classifier_keys, official_hflnet_keys, official_unihope_keys,
                             read_key_file, state_dict_entries)

from models import build_model


def _diff(expected, actual):
    missing = sorted(set(expected) - set(actual))
    unexpected = sorted(set(actual) - set(expected))
    mismatched = sorted(k for k in expected if k in actual and expected[k] != actual[k])
    return missing[:5], unexpected[:5], [(k, expected[k], actual[k]) for k in mismatched[:5]]


def test_key_file_is_the_official_listing():
    keys = read_key_file()
    assert len(keys) == 1122
    assert keys["obj_conf_layer.2.weight"] == ((1024, 65536), "float32")
    assert keys["mano_branch.mano_layer.th_faces"] == ((1538, 3), "int64")
    # derived variants have the counts docs/official-model.md §1.2, §2.1 and §2.4 state
    assert len(official_unihope_keys(256, legacy=False)) == 1120
    assert len(official_hflnet_keys()) == 1093
    assert len(official_classifier_keys()) == 534


def test_unihope_dexycb_matches_official_keys_and_parameter_count(unihope_dexycb):
    assert _diff(read_key_file(), state_dict_entries(unihope_dexycb)) == ([], [], [])
    assert sum(p.numel() for p in unihope_dexycb.parameters()) == 124_108_567


def test_unihope_ho3d_matches_official_keys(standin_mano_root):
    model = build_model(model_config(standin_mano_root, "unihope_net", input_size=256, obj_conf_layer_legacy=False))
    assert _diff(official_unihope_keys(256, legacy=False), state_dict_entries(model)) == ([], [], [])
    assert sum(p.numel() for p in model.parameters()) == 57_914_135


def test_hflnet_matches_official_keys(standin_mano_root):
    model = build_model(model_config(standin_mano_root, "hflnet"))
    assert _diff(official_hflnet_keys(), state_dict_entries(model)) == ([], [], [])
    assert sum(p.numel() for p in model.parameters()) == 46_080_659


def test_classifier_matches_official_keys(standin_mano_root):
    model = build_model(model_config(standin_mano_root, "classifier"))
    assert _diff(official_classifier_keys(), state_dict_entries(model)) == ([], [], [])
    assert sum(p.numel() for p in model.parameters()) == 35_121_794


def test_official_layout_checkpoint_loads_strictly(unihope_dexycb, tmp_path):
    """A checkpoint as official train.py writes it loads with weights_only=True and restores every tensor."""
    model = unihope_dexycb
    optimizer = torch.optim.Adam(model.parameters(), lr=1.18e-5)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[10, 20, 30, 40, 50], gamma=0.7)
    state = {"state_dict": model.state_dict(), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "step": 1234, "epoch": 7,
             "score_status": {"test": {"cur": 41.5, "best": 40.25}}}
    assert isinstance(state["scheduler"]["milestones"], Counter)
    path = tmp_path / "test_model_best.pth"
    torch.save(state, path)

    probes = ["hand_head.betas", "obj_conf_layer.3.weight", "base_net.layer1_h.0.0.bn1.running_mean",
              "mano_branch.mano_layer.th_v_template", "transformer_hand.layers.0.mlp.fc1.weight"]
    saved = {name: model.state_dict()[name].clone() for name in probes}
    with torch.no_grad():
        for name in probes:
            model.state_dict()[name].add_(1.0)  # state_dict tensors share storage with the model

    loaded = torch.load(path, map_location="cpu", weights_only=True)
    result = model.load_state_dict(loaded["state_dict"], strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert loaded["epoch"] == 7 and loaded["score_status"]["test"]["best"] == 40.25
    for name in probes:
        assert torch.equal(model.state_dict()[name], saved[name]), name


def test_checkpoint_with_missing_key_is_refused(unihope_dexycb):
    state = dict(unihope_dexycb.state_dict())
    del state["occ_cls_layer.2.bias"]
    with pytest.raises(RuntimeError, match="occ_cls_layer.2.bias"):
        unihope_dexycb.load_state_dict(state, strict=True)
