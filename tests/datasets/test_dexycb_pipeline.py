"""DexYCB index cache, error messages, de-occluded pairs, registry and loaders."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import datasets
from datasets import dexycb_index
from datasets.deocc_pairs import PairEntry, load_pair_index, pair_index_path, write_pair_index
from datasets.dexycb_index import cache_path, load_index
from datasets.hand_object_sample import pair_is_filtered
from datasets.label_files import grasp_flags, read_rgb
from utils.config import config_from_dict

from test_dexycb import make_dataset

RES = 64


def copy_tree(src, dst):
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.index.npz"))
    return dst


def write_json(path, records):
    path.write_text(json.dumps(records))


def test_index_is_cached_and_rebuilt_when_the_json_changes(tiny_dexycb, tmp_path, monkeypatch):
    source = json.loads((tiny_dexycb.root / "dex_ycb_s0_test_data.json").read_text())
    path = tmp_path / "dex_ycb_s0_test_data.json"
    write_json(path, source)
    first = load_index(path)
    assert cache_path(path).is_file() and len(first) == len(source)
    assert first.keys() == sorted(source, key=lambda k: int(k[3:]))
    key = first.key(3)
    np.testing.assert_allclose(first.joint_3d[3], np.asarray(source[key]["joint_3d"][0]), atol=1e-7)
    monkeypatch.setattr(dexycb_index, "build_index", lambda p: pytest.fail("cache not used"))
    again = load_index(path)
    np.testing.assert_array_equal(again.pose_m, first.pose_m)
    monkeypatch.undo()

    del source[key]  # content (and size) change -> rebuilt
    write_json(path, source)
    assert len(load_index(path)) == len(first) - 1 and key not in load_index(path).keys()

    stat = path.stat()  # same size, new mtime -> rebuilt too
    calls = []
    original = dexycb_index.build_index
    monkeypatch.setattr(dexycb_index, "build_index", lambda p: calls.append(p) or original(p))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    load_index(path)
    assert calls == [path]


def test_index_reads_absolute_toolkit_paths(tiny_dexycb, tmp_path):
    source = json.loads((tiny_dexycb.root / "dex_ycb_s0_val_data.json").read_text())
    for record in source.values():
        record["color_file"] = "/research/somewhere/DexYCB/" + record["color_file"]
    path = tmp_path / "dex_ycb_s0_val_data.json"
    write_json(path, source)
    index = load_index(path)
    assert index.color_file(0) == next(iter(json.loads(
        (tiny_dexycb.root / "dex_ycb_s0_val_data.json").read_text()).values()))["color_file"]


def test_bad_records_name_file_key_and_field(tiny_dexycb, tmp_path):
    source = json.loads((tiny_dexycb.root / "dex_ycb_s0_val_data.json").read_text())
    key = next(iter(source))
    path = tmp_path / "dex_ycb_s0_val_data.json"
    broken = json.loads(json.dumps(source))
    del broken[key]["pose_m"]
    write_json(path, broken)
    with pytest.raises(KeyError, match=rf"{path}.*'{key}'.*'pose_m'"):
        load_index(path)
    broken = json.loads(json.dumps(source))
    broken[key]["joint_2d"] = [[1.0, 2.0]]
    write_json(path, broken)
    with pytest.raises(ValueError, match=rf"{path}.*'{key}'.*'joint_2d' has 2 values, expected 42"):
        load_index(path)
    path.write_text('{"id_1": {"color_file": "a/color_000001.jpg"}, "oops"')
    with pytest.raises((KeyError, ValueError), match=str(path)):
        load_index(path)
    with pytest.raises(FileNotFoundError, match="dex_ycb_s0_train_data.json"):
        load_index(tmp_path / "dex_ycb_s0_train_data.json")


def test_label_file_errors_name_file_and_key(tmp_path):
    path = tmp_path / "grasp_s0_test.npy"
    np.save(path, np.array({"id_1": True}, dtype=object), allow_pickle=True)
    assert grasp_flags(["id_1"], path, None).tolist() == [True]
    with pytest.raises(KeyError, match=rf"{path}.*'id_2'"):
        grasp_flags(["id_1", "id_2"], path, None)
    np.save(path, np.array([1, 2, 3]))
    with pytest.raises(ValueError, match=rf"{path}.*expected a pickled dict"):
        grasp_flags(["id_1"], path, None)
    with pytest.raises(FileNotFoundError, match="grasp_s1_test.npy.*input_mode"):
        grasp_flags(["id_1"], tmp_path / "grasp_s1_test.npy", None)
    with pytest.raises(FileNotFoundError, match="color_000123.jpg"):
        read_rgb(tmp_path / "color_000123.jpg")


@pytest.mark.parametrize("rule,expected", [
    ("score", [True, False, True, False]), ("occ", [True, True, False, False]),
    ("and", [True, False, False, False]), ("or", [True, True, True, False]), ("none", [True] * 4)])
def test_pair_filter_rules(rule, expected):
    cases = [(0.95, PairEntry("g", ori_score=10.0, gen_score=12.0, strength=1.0)),  # visible, generated worse
             (0.95, PairEntry("g", ori_score=10.0, gen_score=8.0, strength=1.0)),   # visible, generated better
             (0.50, PairEntry("g", ori_score=10.0, gen_score=10.0, strength=1.0)),  # occluded, tie -> score filters
             (0.50, PairEntry("g", ori_score=10.0, gen_score=9.0, strength=1.0))]   # occluded, generated better
    got = [pair_is_filtered(rule, occ, 0.9, entry, score_threshold=0.0) for occ, entry in cases]
    assert got == expected


def test_pair_index_round_trip_and_errors(tmp_path, monkeypatch):
    path = pair_index_path(tmp_path, "dexycb_s0", gen_version=1, gen_part=2)
    assert path == tmp_path / "deocc" / "dexycb_s0_train_v1_p2.json"
    write_pair_index(path, {"id_5": PairEntry(str(tmp_path / "deocc" / "crops" / "5.png"), 9.0, 7.5, 0.8)})
    stored = json.loads(path.read_text())
    assert stored["pairs"]["id_5"]["gen_image_path"] == "crops/5.png"
    assert load_pair_index(path) == {"id_5": PairEntry(str(path.parent / "crops" / "5.png"), 9.0, 7.5, 0.8)}
    monkeypatch.chdir(tmp_path)  # an index path relative to the working directory, absolute image paths
    write_pair_index(Path("deocc") / "relative.json", {"id_6": PairEntry(str(tmp_path / "deocc" / "crops" / "6.png"),
                                                                         9.0, 7.5, 0.8)})
    assert json.loads((tmp_path / "deocc" / "relative.json").read_text())["pairs"]["id_6"]["gen_image_path"] == \
        "crops/6.png"
    stored["pairs"]["id_5"].pop("gen_score")
    path.write_text(json.dumps(stored))
    with pytest.raises(ValueError, match=r"dexycb_s0_train_v1_p2.json.*'id_5'.*gen_score"):
        load_pair_index(path)


@pytest.fixture(scope="module")
def contrastive_tree(tiny_dexycb, tmp_path_factory):
    """A copy of the tiny tree with a pair index: every grasping training frame gets a pure-green crop."""
    root = copy_tree(tiny_dexycb.root, tmp_path_factory.mktemp("contrastive") / "DexYCB")
    dataset = make_dataset(tiny_dexycb, "train")
    crop_dir = root / "deocc" / "crops"
    crop_dir.mkdir(parents=True)
    green = np.zeros((128, 128, 3), np.uint8)
    green[..., 1] = 255
    cv2.imwrite(str(crop_dir / "green.png"), green)
    pairs = {dataset.index.key(i): PairEntry(str(crop_dir / "green.png"), 10.0, 5.0, 1.0)
             for i in range(len(dataset)) if dataset.grasping[i]}
    write_pair_index(pair_index_path(root, "dexycb_s0", 1, 1), pairs)
    return root


def contrastive_cfg(root, mano_root, **data):
    return config_from_dict({
        "base": {"mano_root": str(mano_root)},
        "data": {"name": "DEX_YCB", "root_dir": str(root), "data_split": "s0", "input_img_shape": [RES, RES],
                 "contrastive": True, "use_data_aug_h_gen": True, "pair_same_data_aug": True,
                 "filter_rule": "occ", "occ_threshold": 0.999, **data},
        "train": {"batch_size": 4}})


def test_contrastive_samples_pair_original_and_deoccluded_crops(tiny_dexycb, contrastive_tree):
    torch.manual_seed(0)
    dataset = datasets.build_dataset(contrastive_cfg(contrastive_tree, tiny_dexycb.mano_root), "train")
    paired = [i for i in range(len(dataset)) if dataset.grasping[i] and dataset.occ_ratio[i] <= 0.999]
    single = [i for i in range(len(dataset)) if not dataset.grasping[i]]
    assert paired and single
    sample = dataset[paired[0]]
    assert tuple(sample["img"].shape) == (6, RES, RES) and not bool(sample["is_filtered"])
    assert sample["gt_grasping"].tolist() == [True, False]
    assert sample["gt_occ_cls"].tolist() == [True, False]
    assert tuple(sample["mano_param"].shape) == (116,) and tuple(sample["joints_img"].shape) == (42, 2)
    assert tuple(sample["obj_mask"].shape) == (64, 32) and tuple(sample["aug_rot_mat"].shape) == (6, 3)
    assert torch.equal(sample["aug_rot_mat"][:3], sample["aug_rot_mat"][3:])  # one shared augmentation draw
    assert torch.equal(sample["joints_img"][:21], sample["joints_img"][21:])

    def greenness(img):
        return float(((img[1] > 0.6) & (img[0] < 0.4) & (img[2] < 0.4)).float().mean())

    assert greenness(sample["img"][3:]) > 0.3 > greenness(sample["img"][:3]) + 0.2
    lone = dataset[single[0]]
    assert bool(lone["is_filtered"]) and lone["gt_grasping"].tolist() == [False, False]
    assert torch.equal(lone["img"][:3], lone["img"][3:]) and torch.equal(lone["mano_param"][:58], lone["mano_param"][58:])


def test_contrastive_training_needs_the_pair_index(tiny_dexycb, tmp_path):
    cfg = contrastive_cfg(tiny_dexycb.root, tiny_dexycb.mano_root, gen_version=7)
    with pytest.raises(FileNotFoundError, match="dexycb_s0_train_v7.json"):
        datasets.build_dataset(cfg, "train")


def test_registry_and_loaders(tiny_dexycb):
    cfg = config_from_dict({"base": {"mano_root": str(tiny_dexycb.mano_root)},
                            "data": {"name": "DEX_YCB", "root_dir": str(tiny_dexycb.root), "input_img_shape": [RES, RES]},
                            "train": {"batch_size": 5}, "test": {"batch_size": 4}})
    with pytest.raises(KeyError, match=r"'NOPE'.*known: \['DEX_YCB_HOPE', 'HO3D_HOPE'\] \(also accepted: \['DEX_YCB', 'HO3D'\]\)"):
        datasets.build_dataset(config_from_dict({"data": {"name": "NOPE"}}), "train")
    train = datasets.build_loader(cfg, "train")
    assert train.drop_last and len(train) == len(train.dataset) // 5
    batch = next(iter(train))
    assert tuple(batch["img"].shape) == (5, 3, RES, RES) and tuple(batch["mano_param"].shape) == (5, 58)
    test = datasets.build_loader(cfg, "test")
    assert not test.drop_last and len(test) == -(-len(test.dataset) // 4)
    first = next(iter(test))
    expected = torch.stack([test.dataset[i]["joints_coord_cam"] for i in range(4)])
    assert torch.equal(first["joints_coord_cam"], expected)  # no shuffling at test time
