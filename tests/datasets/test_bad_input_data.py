"""Bad annotation, label, image and index files on the tiny trees: each refused with the file, record and field."""
from __future__ import annotations

import json
import math
import pickle
import shutil

import numpy as np
import pytest
import torch

from datasets.deocc_pairs import PairEntry, load_pair_index, write_pair_index
from datasets.dexycb_index import build_index, cache_path, load_index
from datasets.label_files import grasp_flags, occlusion_ratios, read_rgb, write_label_dict
from datasets.ho3d import HO3DDataset
from datasets.hand_object_sample import SampleSettings
from engine.trainer import NonFiniteLossError, check_finite
from utils.errors import DataError

ANNOTATION = "dex_ycb_s0_test_data.json"


def _mutated_annotation(tiny_dexycb, tmp_path, change):
    """A copy of the tiny s0 test annotation file with ``change(first record)`` applied; returns (path, key)."""
    records = json.loads((tiny_dexycb.root / ANNOTATION).read_text())
    key = next(iter(records))
    change(records[key])
    path = tmp_path / ANNOTATION
    path.write_text(json.dumps(records))
    return path, key


def _set(field, value):
    def change(record):
        record[field] = value
    return change


def _set_item(field, position, value):
    def change(record):
        values = np.asarray(record[field], dtype=object).ravel()
        values[position] = value
        record[field] = values.tolist()
    return change


@pytest.mark.parametrize("change,message", [
    (_set_item("joint_2d", 3, math.nan), r"field 'joint_2d' holds non-finite values .* at positions \[3\]"),
    (_set_item("pose_m", 0, math.inf), r"field 'pose_m' holds non-finite values"),
    (_set_item("joint_3d", 5, 1e39), r"field 'joint_3d' holds non-finite values"),
    (_set_item("mano_betas", 2, "0.1"), r"field 'mano_betas' must hold numbers"),
    (_set("ycb_grasp_ind", "0"), r"field 'ycb_grasp_ind' must be a whole number in \[0, \d+\], got '0'"),
    (_set("ycb_grasp_ind", 99), r"field 'ycb_grasp_ind' must be a whole number in \[0, \d+\], got 99"),
    (_set("ycb_ids", [40, 41, 42, 43, 44, 45]), r"field 'ycb_ids' must be a whole number in \[1, 21\], got 4\d"),
    (_set("intrinsics", {"fx": "600", "fy": 600, "ppx": 320, "ppy": 240}), r"field 'intrinsics' must hold numbers"),
    (_set("intrinsics", {"fx": 0, "fy": 600, "ppx": 320, "ppy": 240}), r"intrinsics fx, fy must be positive"),
    (_set("color_file", "/etc/cam/color_000001.jpg"), r"color_file '/etc/cam/color_000001.jpg' leaves the DexYCB root"),
    (_set("color_file", "20200709-subject-01/../../../etc/color_000001.jpg"), r"color_file .* leaves the DexYCB root"),
])
def test_bad_annotation_values_name_file_record_and_field(tiny_dexycb, tmp_path, change, message):
    path, key = _mutated_annotation(tiny_dexycb, tmp_path, change)
    with pytest.raises(DataError, match=rf"{ANNOTATION}: record '{key}': {message}"):
        build_index(path)


def test_toolkit_absolute_color_file_is_still_accepted(tiny_dexycb, tmp_path):
    records = json.loads((tiny_dexycb.root / ANNOTATION).read_text())
    relative = next(iter(records.values()))["color_file"]
    path, _ = _mutated_annotation(tiny_dexycb, tmp_path, _set("color_file", "/data/DexYCB/" + relative))
    assert build_index(path).color_file(0).startswith("2020")


@pytest.mark.parametrize("damage", [b"", b"PK\x03\x04 garbage", "object"])
def test_corrupt_index_cache_is_rebuilt(tiny_dexycb, tmp_path, damage):
    json_path = tmp_path / ANNOTATION
    shutil.copy(tiny_dexycb.root / ANNOTATION, json_path)
    expected = load_index(json_path)
    cache = cache_path(json_path)
    if damage == "object":  # a hostile cache: an object array where the numeric arrays should be
        stored = dict(np.load(cache))
        np.savez(cache, **{**stored, "joint_3d": np.array([{"x": 1}], dtype=object)})
    else:
        cache.write_bytes(damage)
    np.testing.assert_array_equal(load_index(json_path).joint_3d, expected.joint_3d)
    with np.load(cache, allow_pickle=False) as rebuilt:
        np.testing.assert_array_equal(rebuilt["joint_3d"], expected.joint_3d)


def test_grasp_and_occlusion_labels_must_have_the_right_type_and_range(tmp_path):
    keys = ["id_1", "id_2"]
    write_label_dict(tmp_path / "grasp.npy", {"id_1": True, "id_2": "no"})
    with pytest.raises(DataError, match=r"grasp\.npy: the label of sample 'id_2' is 'no'; expected true/false"):
        grasp_flags(keys, tmp_path / "grasp.npy", None)
    write_label_dict(tmp_path / "grasp.npy", {"id_1": np.bool_(True), "id_2": 0})
    assert grasp_flags(keys, tmp_path / "grasp.npy", None).tolist() == [True, False]
    for bad in (math.nan, 1.5, -0.1, "0.3"):
        write_label_dict(tmp_path / "occ.npy", {"id_1": 0.5, "id_2": bad})
        with pytest.raises(DataError, match=r"occ\.npy: the label of sample 'id_2' is .*; expected a visible-hand "
                                            r"ratio in \[0, 1\]"):
            occlusion_ratios(keys, tmp_path / "occ.npy")


def test_truncated_and_corrupt_images_are_refused_with_the_path(tiny_dexycb, tmp_path):
    source = next(tiny_dexycb.root.glob("2020*/*/*/color_*.jpg"))
    data = source.read_bytes()
    assert read_rgb(source).ndim == 3
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(DataError, match=r"cut\.jpg: truncated JPEG"):
        read_rgb(tmp_path / "cut.jpg")
    (tmp_path / "noise.png").write_bytes(b"\x89PNG" + bytes(100))
    with pytest.raises(DataError, match=r"noise\.png: not a readable image"):
        read_rgb(tmp_path / "noise.png")


@pytest.mark.parametrize("image", ["/etc/passwd", "../../secret.png", "crops/../../x.png", "C:/x.png"])
def test_pair_index_paths_must_stay_in_the_index_folder(tmp_path, image):
    index = tmp_path / "deocc" / "dexycb_s0_train_v1.json"
    write_pair_index(index, {"id_1": PairEntry(str(tmp_path / "deocc" / "crops" / "a.png"), 3.0, 2.0, 0.5)})
    assert load_pair_index(index)["id_1"].gen_image_path == str(tmp_path / "deocc" / "crops" / "a.png")
    content = json.loads(index.read_text())
    content["pairs"]["id_1"]["gen_image_path"] = image
    index.write_text(json.dumps(content))
    with pytest.raises(DataError, match=r"dexycb_s0_train_v1\.json: pair 'id_1': gen_image_path .* must be a path "
                                        r"relative to the index's folder"):
        load_pair_index(index)
    with pytest.raises(DataError, match="pair 'id_2'"):
        write_pair_index(index, {"id_2": PairEntry(str(tmp_path / "elsewhere.png"), 3.0, 2.0, 0.5)})


def _ho3d_copy(tiny_ho3d, tmp_path):
    root = tmp_path / "HO3D_v2"
    shutil.copytree(tiny_ho3d.root, root, ignore=shutil.ignore_patterns("*.index.npz"))
    return root


def test_non_finite_ho3d_meta_names_file_and_key(tiny_ho3d, tmp_path):
    root = _ho3d_copy(tiny_ho3d, tmp_path)
    meta_path = root / "train" / "ABF13" / "meta" / "0000.pkl"
    meta = pickle.loads(meta_path.read_bytes())
    meta["handPose"] = np.asarray(meta["handPose"], np.float64).copy()
    meta["handPose"][1] = np.nan
    meta_path.write_bytes(pickle.dumps(meta, protocol=2))
    with pytest.raises(DataError, match=r"ABF13/meta/0000\.pkl: 'handPose' holds non-finite values"):
        HO3DDataset(root, "val", SampleSettings(res=64, rotation="uniform"))


def test_ho3d_evaluation_list_must_name_frames_inside_the_dataset(tiny_ho3d, tmp_path):
    root = _ho3d_copy(tiny_ho3d, tmp_path)
    listing = root / "evaluation.txt"
    listing.write_text(listing.read_text() + "../../etc/0000\n")
    with pytest.raises(DataError, match=r"evaluation\.txt: 1 line\(s\) are not 'SEQUENCE/FRAME' .*'\.\./\.\./etc/"):
        HO3DDataset(root, "test", SampleSettings(res=64, rotation="uniform"))


def _first_batch(dataset, size=2):
    return next(iter(torch.utils.data.DataLoader(dataset, batch_size=size)))


def test_non_finite_loss_names_the_sample_keys_of_real_batches(tiny_dexycb, tiny_ho3d):
    from datasets.dexycb import DexYCBDataset
    from utils.mano_io import load_mano_assets

    mano = tiny_dexycb.mano_root
    dexycb = DexYCBDataset(tiny_dexycb.root, "s0", "test", load_mano_assets(mano, "right"),
                           load_mano_assets(mano, "left"), SampleSettings(res=64))
    ho3d = HO3DDataset(tiny_ho3d.root, "train", SampleSettings(res=64, augment=True, rotation="uniform"))
    for dataset in (dexycb, ho3d):
        batch = _first_batch(dataset)
        assert batch["sample_key"] == dataset.keys()[:2]
        with pytest.raises(NonFiniteLossError, match=r"batch sample ids: \[(.*)\]") as err:
            check_finite({"total": torch.tensor(math.nan), "mse": torch.tensor(math.nan)}, 7, batch)
        assert all(repr(key) in str(err.value) for key in dataset.keys()[:2])


def test_label_npz_with_object_arrays_or_garbage_is_named(tiny_dexycb, tmp_path):
    from datasets.dexycb import DexYCBDataset
    from utils.mano_io import load_mano_assets

    mano = tiny_dexycb.mano_root
    dataset = DexYCBDataset(tiny_dexycb.root, "s0", "train", load_mano_assets(mano, "right"),
                            load_mano_assets(mano, "left"), SampleSettings(res=64, augment=True))
    dataset.root = tmp_path  # no grasped-object render here: the mask comes from labels_XXXXXX.npz
    record = dataset.record(0)
    labels = tmp_path / dataset.index.label_file(0)
    labels.parent.mkdir(parents=True)
    np.savez(labels, seg=np.array([{"seg": 1}], dtype=object))
    with pytest.raises(DataError, match=rf"{labels.name}: not a readable \.npz of numeric arrays \(sample "
                                        rf"'{record.key}'; .*object arrays"):
        dataset.object_mask(0, record, (480, 640))
    labels.write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(DataError, match=rf"{labels.name}: not a readable \.npz"):
        dataset.object_mask(0, record, (480, 640))
