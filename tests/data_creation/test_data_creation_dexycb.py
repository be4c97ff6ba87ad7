"""DexYCB data-creation tools: toolkit split rules, annotation files, grasp labels, occlusion ratios."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from data_creation.labels.compute_hand_occlusion import occlusion_ratio, write_occlusion_file
from data_creation.labels.create_dataset_dexycb import write_split_file
from data_creation.fixtures.make_tiny_dexycb import write_tiny_dexycb
from data_creation.labels.prepare_grasp_dexycb import is_grasping, object_motion
from datasets.dexycb_splits import SERIALS, SUBJECTS, parse_split_name, split_rule
from datasets.geometry import mesh_silhouette
from models.mano import ManoLayer
from utils.mano_io import load_mano_assets
from utils.rotations import axis_angle_to_matrix
from utils.safe_pickle import load_npy


def selected(setup, split, sequences=100):
    rule = split_rule(setup, split)
    return set(rule.subjects), set(rule.serials), {i for i in range(sequences) if rule.selects_sequence(i)}


def test_split_rules_follow_the_toolkit():
    every_subject, every_serial = set(range(10)), set(range(8))
    assert selected("s0", "train") == (every_subject, every_serial, {i for i in range(100) if i % 5 != 4})
    assert selected("s0", "val") == ({0, 1}, every_serial, set(range(4, 100, 5)))
    assert selected("s0", "test") == (set(range(2, 10)), every_serial, set(range(4, 100, 5)))
    assert selected("s1", "train") == ({0, 1, 2, 3, 4, 5, 9}, every_serial, set(range(100)))
    assert selected("s1", "val")[0] == {6} and selected("s1", "test")[0] == {7, 8}
    assert selected("s2", "train")[1] == set(range(6)) and selected("s2", "val")[1] == {6}
    assert selected("s2", "test")[1] == {7}
    assert selected("s3", "val")[2] == set(range(15, 20)) | set(range(95, 100))
    assert selected("s3", "test")[2] == set(range(35, 40)) | set(range(55, 60)) | set(range(75, 80))
    assert len(selected("s3", "train")[2]) == 100 - 25
    for setup in ("s0", "s1", "s2", "s3"):  # the three splits partition the sequences x subjects x serials
        cells = [{(a, b, c) for a in s[0] for b in s[1] for c in s[2]} for s in
                 (selected(setup, split) for split in ("train", "val", "test"))]
        assert not (cells[0] & cells[1]) and not (cells[0] & cells[2]) and not (cells[1] & cells[2])
    with pytest.raises(KeyError, match="s4_train"):
        split_rule("s4", "train")
    assert parse_split_name("s3_test") == ("s3", "test")


def _expected_keys(manifest, setup, split, frames=4, serials=(0, 7)):
    """Toolkit numbering recomputed from the manifest: sequences -> the rule's cameras -> frames."""
    rule = split_rule(setup, split)
    keys, offset = set(), 0
    for subject_index in rule.subjects:
        sequences = sorted({f["sequence"] for f in manifest["frames"] if f["subject"] == SUBJECTS[subject_index]})
        for q, sequence in enumerate(sequences):
            if not rule.selects_sequence(q):
                continue
            for f in manifest["frames"]:
                if f["sequence"] == sequence and f["has_hand"]:
                    c = list(rule.serials).index(SERIALS.index(f["serial"]))
                    keys.add(f"id_{offset + c * frames + f['frame']}")
            offset += len(rule.serials) * frames
    return keys


@pytest.mark.parametrize("name", ["s0_train", "s0_test", "s1_val", "s1_test"])
def test_annotation_files_use_toolkit_numbering_and_skip_frames_without_hand(tiny_dexycb, name):
    setup, split = parse_split_name(name)
    records = json.loads((tiny_dexycb.root / f"dex_ycb_{name}_data.json").read_text())
    expected = _expected_keys(tiny_dexycb.manifest, setup, split)
    assert set(records) == expected and expected
    if name == "s0_test":  # subject index 2 comes first; sequence 4, serial index 0 -> id_0..3, serial 7 -> id_28..31
        assert {"id_0", "id_3", "id_28", "id_31"} <= set(records) and "id_4" not in records
    if name == "s0_train":
        assert len(records) == 4 * 4 * 2 * 4 - 4 * 2  # one frame per subject (2 cameras) has no hand


def test_record_schema_and_values(tiny_dexycb):
    records = json.loads((tiny_dexycb.root / "dex_ycb_s0_test_data.json").read_text())
    record = records["id_29"]
    sequence = next(f["sequence"] for f in tiny_dexycb.manifest["frames"]
                    if f["subject"] == SUBJECTS[2] and f["sequence_index"] == 4)
    assert record["color_file"] == f"{SUBJECTS[2]}/{sequence}/{SERIALS[7]}/color_000001.jpg"
    assert record["label_file"].endswith(f"{SERIALS[7]}/labels_000001.npz")
    assert record["object_seg_file"] == f"object_render/{SUBJECTS[2]}/{sequence}/{SERIALS[7]}/grasp_object_seg_000001.png"
    assert record["is_bop_target"] is False and record["is_grasp_target"] is False
    assert records["id_28"]["is_bop_target"] is True and records["id_28"]["is_grasp_target"] is True
    intrinsics = yaml.safe_load((tiny_dexycb.root / "calibration" / "intrinsics" / f"{SERIALS[7]}_640x480.yml")
                                .read_text())["color"]
    assert record["intrinsics"] == intrinsics
    meta = yaml.safe_load((tiny_dexycb.root / SUBJECTS[2] / sequence / "meta.yml").read_text())
    assert record["ycb_ids"] == meta["ycb_ids"] and record["ycb_grasp_ind"] == meta["ycb_grasp_ind"]
    assert record["mano_side"] == meta["mano_sides"][0]
    with np.load(tiny_dexycb.root / record["label_file"]) as labels:
        np.testing.assert_allclose(record["joint_3d"], labels["joint_3d"])
        np.testing.assert_allclose(record["pose_m"], labels["pose_m"])
        assert "seg" not in record
    assert np.asarray(record["pose_y"]).shape == (2, 3, 4) and len(record["mano_betas"]) == 10


def test_s3_rule_on_a_forty_sequence_tree(tmp_path, standin_mano_root):
    root = tmp_path / "dexycb"
    write_tiny_dexycb(root, standin_mano_root, subjects=(1,), sequences_per_subject=40, serials=(3,), frames=1,
                      image_size=(320, 240), object_renders=False)
    sequences = sorted(p.name for p in (root / SUBJECTS[1]).iterdir())
    for split, chosen in (("val", range(15, 20)), ("test", range(35, 40))):
        path, count = write_split_file(root, "s3", split)
        records = json.loads(path.read_text())
        assert count == len(records) == 5
        # one frame per camera, 8 cameras in the rule: sample n = 8 * (rank among selected sequences) + 3
        assert sorted(records, key=lambda k: int(k[3:])) == [f"id_{8 * r + 3}" for r in range(5)]
        assert [r["color_file"].split("/")[1] for r in records.values()] == [sequences[i] for i in chosen]
    assert write_split_file(root, "s3", "train")[1] == 40 - 10 - 1  # sequence 1 has no hand in its only frame


def test_create_dataset_cli_reads_root_from_the_environment(tmp_path, tiny_dexycb):
    env = {"DEX_YCB_DIR": str(tiny_dexycb.root), "PYTHONPATH": "."}
    out = tmp_path / "out"
    out.mkdir()
    run = subprocess.run([sys.executable, "-m", "data_creation.labels.create_dataset_dexycb", "--setups", "s1",
                          "--splits", "test", "--out", str(out)], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert (out / "dex_ycb_s1_test_data.json").read_text() == (tiny_dexycb.root / "dex_ycb_s1_test_data.json").read_text()
    missing = subprocess.run([sys.executable, "-m", "data_creation.labels.create_dataset_dexycb"], env={"PYTHONPATH": "."},
                             capture_output=True, text=True)
    assert missing.returncode != 0 and "DEX_YCB_DIR" in missing.stderr


def rotated_pose(degrees, axis=(0.3, -0.5, 0.8), translation=(0.0, 0.0, 0.0)):
    axis = np.asarray(axis) / np.linalg.norm(axis)
    pose = np.zeros((3, 4))
    pose[:, :3] = axis_angle_to_matrix(axis * np.radians(degrees))
    pose[:, 3] = translation
    return pose


def test_grasp_rule_thresholds_are_5_degrees_and_5_cm():
    start = rotated_pose(30.0, axis=(1, 1, 0), translation=(0.1, -0.2, 0.7))

    def moved(degrees, shift):
        motion = np.eye(4)
        motion[:3] = rotated_pose(degrees, translation=shift)
        return (motion @ np.vstack([start, [0, 0, 0, 1]]))[:3]

    assert object_motion(moved(4.9, (0, 0, 0)), start)[0] == pytest.approx(4.9, abs=1e-6)
    assert not is_grasping(moved(4.9, (0, 0, 0)), start)
    assert is_grasping(moved(5.1, (0, 0, 0)), start)
    assert not is_grasping(moved(0.0, (0.049, 0, 0)), start)
    assert is_grasping(moved(0.0, (0.0, 0.051, 0)), start)
    assert object_motion(moved(0.0, (0.03, 0.04, 0)), start)[1] == pytest.approx(0.05, abs=1e-9)


def test_grasp_files_match_the_fixture_motion(tiny_dexycb):
    labels = load_npy(tiny_dexycb.root / "grasp_s0_train.npy")
    records = json.loads((tiny_dexycb.root / "dex_ycb_s0_train_data.json").read_text())
    assert set(labels) == set(records)
    truth = {f["color_file"]: f["grasping"] for f in tiny_dexycb.manifest["frames"]}
    assert all(labels[key] == truth[record["color_file"]] for key, record in records.items())
    assert 0 < sum(labels.values()) < len(labels)


def test_occlusion_ratio_definition_and_files(tiny_dexycb, tmp_path):
    silhouette = np.zeros((4, 5), bool)
    silhouette[1:3, 1:4] = True                 # 6 hand pixels
    seg = np.zeros((4, 5), bool)
    seg[1, 1:4] = True                          # 3 visible
    seg[0, 0] = True                            # outside the silhouette: ignored
    assert occlusion_ratio(seg, silhouette) == 0.5
    assert occlusion_ratio(seg, np.zeros_like(silhouette)) == 0.0
    ratios = load_npy(tiny_dexycb.root / "hand_occ_s0_train.npy")
    records = json.loads((tiny_dexycb.root / "dex_ycb_s0_train_data.json").read_text())
    assert set(ratios) == set(records)
    values = np.array(list(ratios.values()))
    assert np.all((values >= 0) & (values <= 1)) and values.max() > 0.99 and values.min() < 0.95

    # known answer: relabel the seg so that exactly the left half of the GT MANO silhouette is visible hand
    layers = {side: ManoLayer(side=side, flat_hand_mean=False, use_pca=True, ncomps=45,
                              assets=load_mano_assets(tiny_dexycb.mano_root, side)) for side in ("right", "left")}
    chosen = {key: records[key] for key in (next(k for k, r in records.items() if r["mano_side"] == side)
                                            for side in ("right", "left"))}
    expected = {}
    for key, record in chosen.items():
        pose_m = torch.tensor(record["pose_m"], dtype=torch.float32)
        with torch.no_grad():
            verts = layers[record["mano_side"]](pose_m[:, :48], torch.tensor([record["mano_betas"]]),
                                                pose_m[:, 48:])[0][0].double().numpy() / 1000.0
        intr = record["intrinsics"]
        k = np.array([[intr["fx"], 0, intr["ppx"]], [0, intr["fy"], intr["ppy"]], [0, 0, 1]])
        full = mesh_silhouette(verts, layers["right"].th_faces.numpy(), k, 640, 480)
        columns = np.flatnonzero(full.any(axis=0))
        visible = full.copy()
        visible[:, (columns[0] + columns[-1]) // 2:] = False
        seg = np.where(visible, 255, 0).astype(np.uint8)
        label = tmp_path / record["label_file"]
        label.parent.mkdir(parents=True, exist_ok=True)
        np.savez(label, seg=seg)
        expected[key] = visible.sum() / full.sum()
    (tmp_path / "dex_ycb_s0_train_data.json").write_text(json.dumps(chosen))
    _, got = write_occlusion_file(tmp_path, "s0", "train", tiny_dexycb.mano_root)
    assert got.keys() == expected.keys()
    for key in expected:
        assert 0.2 < expected[key] < 0.8 and got[key] == pytest.approx(expected[key], abs=1e-9)
