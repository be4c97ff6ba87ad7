"""data_creation/check_data.py on the tiny DexYCB / HO3D trees: clean trees pass, planted faults are named."""
import hashlib
import json
import shutil

import pytest

from data_creation.check_data import main
from datasets.dexycb import annotation_file
from datasets.dexycb_index import load_index
from datasets.label_files import load_label_dict, write_label_dict


def _run(capsys, *args):
    """Run the command; returns (exit status, stdout, stderr)."""
    try:
        status = main([str(a) for a in args])
    except SystemExit as stop:
        status = stop.code
    out = capsys.readouterr()
    return status, out.out, out.err


def _sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_clean_dexycb_tree_passes_and_manifest_holds_the_files_sha256(tiny_dexycb, tmp_path, capsys):
    root = tiny_dexycb.root
    status, out, err = _run(capsys, "--root", root, "--dataset", "dexycb", "--setup", "s0", "--images",
                            "--manifest", tmp_path / "manifest.json")
    assert status == 0, err
    assert "data OK" in out
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["problems"] == []
    for split in ("train", "val", "test"):
        assert manifest["samples"][split] == len(load_index(annotation_file(root, "s0", split)))
    names = {f"{prefix}_s0_{split}.npy" for prefix in ("grasp", "hand_occ") for split in ("train", "val", "test")}
    names |= {f"dex_ycb_s0_{split}_data.json" for split in ("train", "val", "test")}
    assert set(manifest["label_files"]) == names
    for name, entry in manifest["label_files"].items():
        assert entry["sha256"] == _sha256(root / name)
        assert entry["bytes"] == (root / name).stat().st_size
    assert manifest["label_files"]["grasp_s0_test.npy"]["entries"] == manifest["samples"]["test"]


def test_planted_dexycb_faults_are_each_named(tiny_dexycb, tmp_path, capsys):
    root = tmp_path / "dexycb"
    shutil.copytree(tiny_dexycb.root, root)
    test_index = load_index(annotation_file(root, "s0", "test"))
    missing_image = root / test_index.color_file(0)
    missing_image.unlink()
    truncated = root / test_index.color_file(1)
    truncated.write_bytes(truncated.read_bytes()[:truncated.stat().st_size // 2])
    grasp = load_label_dict(root / "grasp_s0_test.npy")
    dropped_key = test_index.key(2)
    del grasp[dropped_key]
    write_label_dict(root / "grasp_s0_test.npy", grasp)
    (root / "grasp_s0_val.npy").unlink()
    serial = str(test_index.dirs[0]).rsplit("/", 1)[-1]
    (root / "calibration" / "intrinsics" / f"{serial}_640x480.yml").unlink()

    status, _, err = _run(capsys, "--root", root, "--dataset", "dexycb", "--manifest", tmp_path / "m.json")
    assert status == 2
    assert f"{missing_image}: missing image" in err
    assert f"grasp_s0_test.npy: {len(grasp)} labels, but 1 of the {len(test_index)} samples" in err
    assert dropped_key in err
    assert "grasp_s0_val.npy: missing" in err
    assert f"calibration: DexYCB file not found: {root}/calibration/intrinsics/{serial}_640x480.yml" in err
    assert str(truncated) not in err  # stat only: a truncated file is not decoded
    assert "4 problem(s)" in err
    assert len(json.loads((tmp_path / "m.json").read_text())["problems"]) == 4

    status, _, err = _run(capsys, "--root", root, "--dataset", "dexycb", "--images")
    assert status == 2
    assert f"{truncated}: cannot be decoded (truncated or not an image)" in err
    assert "5 problem(s)" in err


def test_clean_ho3d_tree_passes(tiny_ho3d, capsys):
    status, out, err = _run(capsys, "--root", tiny_ho3d.root, "--dataset", "ho3d", "--images")
    assert status == 0, err
    assert "data OK" in out
    assert f"test: {len(tiny_ho3d.manifest['evaluation'])} samples" in out


def test_planted_ho3d_faults_are_each_named(tiny_ho3d, tmp_path, capsys):
    root = tmp_path / "ho3d"
    shutil.copytree(tiny_ho3d.root, root)
    keys = sorted(tiny_ho3d.manifest["evaluation"])
    sequence, frame = keys[0].split("/")
    missing_meta = root / "evaluation" / sequence / "meta" / f"{frame}.pkl"
    missing_meta.unlink()
    sequence, frame = "MC1", "0001"
    missing_image = root / "train" / sequence / "rgb" / f"{frame}.png"
    missing_image.unlink()
    (root / "grasp_trainval.npy").unlink()

    status, _, err = _run(capsys, "--root", root, "--dataset", "ho3d")
    assert status == 2
    assert f"{missing_meta}: missing (camera, object pose and hand box of the listed frame {keys[0]})" in err
    assert f"{missing_image}: missing image" in err
    assert "grasp_trainval.npy: missing (labels for train + val)" in err
    assert "3 problem(s)" in err


def test_missing_root_exits_2(tmp_path, capsys):
    status, _, err = _run(capsys, "--root", tmp_path / "nowhere", "--dataset", "ho3d")
    assert status == 2
    assert "nowhere is not a folder" in err


@pytest.mark.parametrize("bad", ["--dataset=freihand", "--setup=s2"])
def test_unknown_dataset_or_setup_is_refused(bad, tmp_path, capsys):
    args = ["--root", str(tmp_path), "--dataset", "dexycb", bad]
    status, _, err = _run(capsys, *args)
    assert status == 2
    assert "invalid choice" in err
