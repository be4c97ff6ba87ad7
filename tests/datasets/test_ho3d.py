"""HO3D v2 loader on the tiny HO3D-format tree: OpenGL -> OpenCV, joint order, splits, crops, augmentation."""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch

from datasets import ho3d
from datasets.hand_object_sample import SampleSettings
from datasets.ho3d import HO3DDataset, encode_object_name, load_ho3d_index, val_sequences
from models.mano import ManoLayer
from utils.mano_io import load_mano_assets

RES = 256
HO3D_TO_MANOPTH = [0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20]  # docs/libraries.md D.2
TIPS = [4, 8, 12, 16, 20]  # manopth order
HO3D_TIP_VERTS = [744, 333, 444, 555, 672]


def make(tree, split, root=None):
    return HO3DDataset(root or tree.root, split, SampleSettings(res=RES, augment=split == "train", rotation="uniform"))


def crop_px(sample):
    box = sample["bbox_hand"].numpy()
    return sample["joints_img"].numpy() * (box[2:] - box[:2]) + box[:2]


def test_val_split_holds_out_the_last_sequence_of_large_groups():
    names = ["ABF10", "ABF11", "ABF12", "ABF13", "ABF14", "MC1", "MC2", "MC4", "MC5", "MC6", "SB10", "SB12",
             "SB14", "ND2", "SMu1", "SMu40", "SMu41", "SMu42"]
    assert val_sequences(names) == ["ABF14", "MC6", "SMu42"]


def test_splits_keys_and_unannotated_frames(tiny_ho3d):
    train, val, test = (make(tiny_ho3d, s) for s in ("train", "val", "test"))
    assert val.keys() == ["ABF13/0000", "ABF13/0001", "ABF13/0002"]
    assert "ABF10/0002" not in train.keys() and "ABF10/0001" in train.keys()  # no annotation -> skipped
    assert not any(k.startswith("ABF13/") for k in train.keys())
    assert len(train) == 6 * 3 - 1
    assert test.keys() == [line for line in (tiny_ho3d.root / "evaluation.txt").read_text().split()]


def test_train_sample_is_in_opencv_with_manopth_joint_order(tiny_ho3d):
    val = make(tiny_ho3d, "val")
    sample = val[1]
    truth = tiny_ho3d.manifest["train"]["ABF13/0001"]
    expected = truth["joints_cv"][HO3D_TO_MANOPTH]
    np.testing.assert_allclose(sample["joints_coord_cam"].numpy(), expected, atol=1e-5)
    assert np.all(sample["joints_coord_cam"][:, 2].numpy() > 0)  # in front of an OpenCV camera
    np.testing.assert_allclose(sample["obj_pose"].numpy(), truth["object_pose_cv"], atol=1e-5)
    np.testing.assert_allclose(sample["root_joint_ori"].numpy(), expected[0], atol=1e-5)
    assert bytes(sample["obj_cls"].numpy()).decode().lstrip() == truth["object_name"]
    fx, fy, cx, cy = sample["intrinsics"].numpy()
    np.testing.assert_allclose(sample["cam_intr"].numpy(), [[fx, 0, cx], [0, fy, cy], [0, 0, 1]], atol=1e-4)
    joints = sample["joints_coord_cam"].numpy()
    np.testing.assert_allclose(np.stack([fx * joints[:, 0] / joints[:, 2] + cx, fy * joints[:, 1] / joints[:, 2] + cy],
                                        1), crop_px(sample), atol=1e-2)


def test_mano_param_reproduces_the_ho3d_joints(tiny_ho3d):
    layer = ManoLayer(side="right", flat_hand_mean=True, use_pca=False,
                      assets=load_mano_assets(tiny_ho3d.mano_root, "right"))
    sample = make(tiny_ho3d, "val")[0]
    param = sample["mano_param"][None]
    with torch.no_grad():
        verts, joints = layer(param[:, :48], param[:, 48:])
    verts, joints = verts[0].numpy() / 1000.0, joints[0].numpy() / 1000.0
    target = sample["joints_coord_cam"].numpy()
    root = joints[0]
    non_tips = [j for j in range(21) if j not in TIPS]
    np.testing.assert_allclose(joints[non_tips] - root, (target - target[0])[non_tips], atol=1e-4)
    np.testing.assert_allclose(verts[HO3D_TIP_VERTS] - root, (target - target[0])[TIPS], atol=1e-4)


def test_rotation_augmentation_is_uniform_and_consistent(tiny_ho3d):
    torch.manual_seed(0)
    train = make(tiny_ho3d, "train")
    angles = []
    for i in range(len(train)):
        sample = train[i]
        rotation = sample["aug_rot_mat"].numpy()
        angles.append(np.arctan2(rotation[1, 0], rotation[0, 0]))
        fx, fy, cx, cy = sample["intrinsics"].numpy()
        joints = sample["joints_coord_cam"].numpy()
        projected = np.stack([fx * joints[:, 0] / joints[:, 2] + cx, fy * joints[:, 1] / joints[:, 2] + cy], 1)
        assert np.abs(projected - crop_px(sample)).max() < 1.0
    angles = np.abs(angles)
    assert angles.max() > np.pi / 3 and np.all(angles > 0)  # beyond DexYCB's 60 degrees, never skipped


def test_test_crop_uses_the_official_hand_box(tiny_ho3d):
    from utils.safe_pickle import load_pickle

    test = make(tiny_ho3d, "test")
    for i in range(len(test)):
        if not test.grasping[i]:
            break
    sample, key = test[i], test.keys()[i]
    meta = load_pickle(tiny_ho3d.root / "evaluation" / key.split("/")[0] / "meta" / f"{key.split('/')[1]}.pkl")
    x1, y1, x2, y2 = meta["handBoundingBox"]
    side = min(max(x2 - x1, y2 - y1) * 1.5, 640)
    affine = sample["cam_intr"].numpy().astype(np.float64) @ np.linalg.inv(meta["camMat"])
    assert RES / affine[0, 0] == pytest.approx(side, rel=1e-4)
    assert not {"joints_img", "mano_param", "joints_coord_cam"} & set(sample)
    np.testing.assert_allclose(sample["root_joint"].numpy(), meta["handJoints3D"] * [1, -1, -1], atol=1e-6)
    truth = tiny_ho3d.manifest["evaluation"][key]
    np.testing.assert_allclose(sample["obj_pose"].numpy(), truth["object_pose_cv"], atol=1e-5)


def test_object_name_encoding():
    code = encode_object_name("006_mustard_bottle")
    assert code.dtype == np.uint8 and code.shape == (21,)
    assert bytes(code).decode() == "   006_mustard_bottle"


def test_index_cache_follows_the_meta_files(tiny_ho3d, tmp_path, monkeypatch):
    root = tmp_path / "HO3D_v2"
    shutil.copytree(tiny_ho3d.root, root, ignore=shutil.ignore_patterns("*.index.npz"))
    first = load_ho3d_index(root, "val")
    assert (root / "ho3d_val.index.npz").is_file()
    monkeypatch.setattr(ho3d, "build_ho3d_index", lambda *a: pytest.fail("cache not used"))
    np.testing.assert_array_equal(load_ho3d_index(root, "val").joints_3d, first.joints_3d)
    monkeypatch.undo()
    meta = root / "train" / "ABF13" / "meta" / "0001.pkl"
    stat = meta.stat()
    os.utime(meta, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    calls = []
    original = ho3d.build_ho3d_index
    monkeypatch.setattr(ho3d, "build_ho3d_index", lambda *a: calls.append(a) or original(*a))
    load_ho3d_index(root, "val")
    assert len(calls) == 1


def test_bad_meta_names_file_and_key(tiny_ho3d, tmp_path):
    import pickle

    root = tmp_path / "HO3D_v2"
    shutil.copytree(tiny_ho3d.root, root, ignore=shutil.ignore_patterns("*.index.npz"))
    meta_path = root / "train" / "ABF13" / "meta" / "0000.pkl"
    with meta_path.open("rb") as f:
        meta = pickle.load(f)
    del meta["camMat"]
    with meta_path.open("wb") as f:
        pickle.dump(meta, f, protocol=2)
    with pytest.raises(KeyError, match=r"ABF13/meta/0000.pkl.*'camMat'"):
        make(tiny_ho3d, "val", root=root)
