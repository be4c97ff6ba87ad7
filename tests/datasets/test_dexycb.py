"""DexYCB loader on the tiny DexYCB-format tree: keys, geometry, mirroring, augmentation, MANO targets."""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch

from datasets.dexycb import DexYCBDataset, joint_box_survives
from datasets.hand_object_sample import SampleSettings, build_sample
from datasets.transforms import Augmentation, CropJitter
from models.mano import ManoLayer
from utils.mano_io import load_mano_assets

RES = 128
TRAIN_KEYS = {"sample_key", "img", "bbox_hand", "bbox_obj", "aug_rot_mat", "intrinsics", "root_joint",
              "root_joint_flip", "joints_img", "uv", "uv_valid", "xyz_valid", "joints_coord_cam", "xyz", "mano_param",
              "mano_pose", "val_mano_pose", "mano_shape", "obj_p2d", "gray", "obj_mask", "gt_grasping", "gt_occ_cls",
              "gt_occ_ratio", "is_filtered", "obj_cls_label", "do_flip"}
EVAL_KEYS = (TRAIN_KEYS - {"obj_p2d", "gray", "obj_mask"}) | {"affinetrans", "obj_bbox3d", "obj_pose", "obj_cls",
                                                               "cam_intr"}


def make_dataset(tree, split, setup="s0", res=RES, **kwargs):
    mano = tree.mano_root
    settings = SampleSettings(res=res, augment=split == "train", **kwargs.pop("settings", {}))
    return DexYCBDataset(tree.root, setup, split, load_mano_assets(mano, "right"), load_mano_assets(mano, "left"),
                         settings, **kwargs)


def raw_labels(tree, dataset, i):
    with np.load(tree.root / dataset.index.label_file(i)) as labels:
        return {key: labels[key] for key in labels}


def crop_px(sample):
    box = sample["bbox_hand"].numpy()
    return sample["joints_img"].numpy() * (box[2:] - box[:2]) + box[:2]


def project_with(intrinsics, points):
    fx, fy, cx, cy = intrinsics
    return np.stack([fx * points[:, 0] / points[:, 2] + cx, fy * points[:, 1] / points[:, 2] + cy], axis=1)


def first_index(dataset, left=None, grasping=None):
    for i in range(len(dataset)):
        if (left is None or dataset.index.is_left[i] == left) and (grasping is None or dataset.grasping[i] == grasping):
            return i
    raise AssertionError("fixture lacks the requested kind of sample")


@pytest.fixture(scope="module")
def train_set(tiny_dexycb):
    return make_dataset(tiny_dexycb, "train")


@pytest.fixture(scope="module")
def test_set(tiny_dexycb):
    return make_dataset(tiny_dexycb, "test")


def test_train_and_test_samples_have_official_keys_shapes_and_dtypes(train_set, test_set):
    torch.manual_seed(0)
    train, test = train_set[0], test_set[0]
    assert set(train) == TRAIN_KEYS
    assert set(test) == EVAL_KEYS
    assert train["sample_key"] == train_set.keys()[0] and test["sample_key"] == test_set.keys()[0]
    expected = {"img": ((3, RES, RES), torch.float32), "mano_param": ((58,), torch.float32),
                "mano_pose": ((48,), torch.float32), "mano_shape": ((10,), torch.float32),
                "bbox_hand": ((4,), torch.float32), "joints_img": ((21, 2), torch.float32),
                "joints_coord_cam": ((21, 3), torch.float32), "root_joint_flip": ((3,), torch.float32),
                "aug_rot_mat": ((3, 3), torch.float32), "gt_grasping": ((1,), torch.bool),
                "gt_occ_cls": ((1,), torch.bool), "gt_occ_ratio": ((), torch.float32), "intrinsics": ((4,), torch.float32),
                "obj_cls_label": ((1,), torch.int64), "do_flip": ((), torch.bool), "is_filtered": ((), torch.bool)}
    for key, (shape, dtype) in expected.items():
        for sample in (train, test):
            assert tuple(sample[key].shape) == shape and sample[key].dtype == dtype, key
    assert tuple(train["obj_mask"].shape) == (32, 32) and train["obj_mask"].dtype == torch.int64
    assert tuple(train["gray"].shape) == (1, RES, RES) and tuple(train["obj_p2d"].shape) == (21, 2)
    assert tuple(test["obj_bbox3d"].shape) == (21, 3) and tuple(test["obj_pose"].shape) == (4, 4)
    assert tuple(test["affinetrans"].shape) == (3, 3) and tuple(test["cam_intr"].shape) == (3, 3)
    assert 0.0 <= float(train["img"].min()) and float(train["img"].max()) <= 1.0
    assert torch.equal(test["aug_rot_mat"], torch.eye(3))
    assert int(test["obj_cls"]) == int(test_set.index.grasp_ycb_id[0]) == int(test["obj_cls_label"][0]) + 1


def test_2d_joints_land_on_projected_3d_joints_in_augmented_crops(train_set):
    torch.manual_seed(1)
    rotated = 0
    for i in range(0, len(train_set), 3):
        sample = train_set[i]
        projected = project_with(sample["intrinsics"].numpy(), sample["joints_coord_cam"].numpy())
        assert np.abs(projected - crop_px(sample)).max() < 1.0, f"sample {i}"
        rotated += not torch.allclose(sample["aug_rot_mat"], torch.eye(3))
    assert rotated > 0  # the check covered rotated crops


def test_left_hands_are_mirrored(tiny_dexycb, test_set):
    i = first_index(test_set, left=True)
    sample, raw = test_set[i], raw_labels(tiny_dexycb, test_set, i)
    width = cv2.imread(str(tiny_dexycb.root / test_set.index.color_file(i))).shape[1]
    joints_3d, joints_2d = raw["joint_3d"][0], raw["joint_2d"][0]
    assert bool(sample["do_flip"])
    np.testing.assert_allclose(sample["joints_coord_cam"].numpy(), joints_3d * [-1, 1, 1], atol=1e-6)
    np.testing.assert_allclose(sample["root_joint"].numpy(), joints_3d[0], atol=1e-6)
    np.testing.assert_allclose(sample["root_joint_flip"].numpy(), joints_3d[0] * [-1, 1, 1], atol=1e-6)
    mirrored_2d = np.stack([width - 1 - joints_2d[:, 0], joints_2d[:, 1]], axis=1)
    affine = sample["affinetrans"].numpy().astype(np.float64)
    np.testing.assert_allclose(crop_px(sample), mirrored_2d @ affine[:2, :2].T + affine[:2, 2], atol=1e-3)
    # the crop's hand pixels are the mirrored hand segmentation warped by the crop affine
    hand = (raw["seg"] == 255).astype(np.uint8)
    crop = (sample["img"].numpy().transpose(1, 2, 0) * 255).astype(np.int16)
    skin = np.all(np.abs(crop - [225, 180, 150]) < 30, axis=2)

    def iou(mask):
        warped = cv2.warpAffine(mask, affine[:2], (RES, RES), flags=cv2.INTER_NEAREST).astype(bool)
        return (warped & skin).sum() / (warped | skin).sum()

    assert iou(np.ascontiguousarray(hand[:, ::-1])) > 0.9 > iou(hand) + 0.2


def test_mano_param_reproduces_the_fixture_joints(tiny_dexycb, test_set):
    right = ManoLayer(side="right", flat_hand_mean=True, use_pca=False,
                      assets=load_mano_assets(tiny_dexycb.mano_root, "right"))
    left_fixed = ManoLayer(side="left", flat_hand_mean=False, use_pca=True, ncomps=45, fix_left_shapedirs=True,
                           assets=load_mano_assets(tiny_dexycb.mano_root, "left"))
    for is_left in (False, True):
        i = first_index(test_set, left=is_left)
        sample = test_set[i]
        param = sample["mano_param"][None]
        with torch.no_grad():
            joints = right(param[:, :48], param[:, 48:])[1][0].numpy() / 1000.0
        joints -= joints[0]
        if not is_left:  # right hands: exactly the annotated joints
            target = sample["joints_coord_cam"].numpy()
            np.testing.assert_allclose(joints, target - target[0], atol=1e-4)
        else:  # left hands: the mirror of the left model (shapedirs fixed; middle tip is vertex 445 vs 444)
            raw = raw_labels(tiny_dexycb, test_set, i)
            with torch.no_grad():
                pose_m = torch.tensor(raw["pose_m"][:, :48])
                ref = left_fixed(pose_m, torch.tensor(test_set.index.betas[i][None]))[1][0].numpy() / 1000.0
            ref = (ref - ref[0]) * [-1, 1, 1]
            keep = [j for j in range(21) if j != 12]
            np.testing.assert_allclose(joints[keep], ref[keep], atol=1e-4)


def test_rotation_augmentation_keeps_image_2d_and_3d_consistent(tiny_dexycb, test_set):
    right = ManoLayer(side="right", flat_hand_mean=True, use_pca=False,
                      assets=load_mano_assets(tiny_dexycb.mano_root, "right"))
    theta = 0.8
    augmentation = Augmentation(CropJitter((6.0, -4.0), 1.1, theta))
    settings = dataclasses.replace(test_set.settings, res=512)  # upsampling crop: every 3x3 dot survives
    for is_left in (False, True):
        record = test_set.record(first_index(test_set, left=is_left))
        height, width = 480, 640
        image = np.zeros((height, width, 3), np.uint8)
        for u, v in np.round(record.joints_2d).astype(int):
            image[v - 1:v + 2, u - 1:u + 2] = 255  # a white 3x3 dot on every joint
        plain = build_sample(record, image, settings, np.random.default_rng(0))
        turned = build_sample(record, image, settings, np.random.default_rng(0), augmentation=augmentation)
        rotation = turned["aug_rot_mat"].astype(np.float64)
        np.testing.assert_allclose(rotation[:2, :2], [[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]],
                                   atol=1e-6)
        box = turned["bbox_hand"]
        joints_px = turned["joints_img"] * (box[2:] - box[:2]) + box[:2]
        projected = project_with(turned["intrinsics"], turned["joints_coord_cam"])
        assert np.abs(projected - joints_px).max() < 1.0
        inside = np.all((joints_px >= 2) & (joints_px < 510), axis=1)
        assert inside.sum() >= 10
        crop = turned["img"].max(axis=0)
        for u, v in np.round(joints_px[inside]).astype(int):
            assert crop[v - 1:v + 2, u - 1:u + 2].max() == 1.0  # the dot is where the 2D joint went
        np.testing.assert_allclose(turned["joints_coord_cam"], plain["joints_coord_cam"] @ rotation.T, atol=1e-5)
        with torch.no_grad():
            pose = torch.tensor(np.stack([plain["mano_param"], turned["mano_param"]]))
            joints = right(pose[:, :48], pose[:, 48:])[1].numpy() / 1000.0
        joints -= joints[:, :1]
        np.testing.assert_allclose(joints[1], joints[0] @ rotation.T, atol=1e-5)


def _expected_region(joints_2d, object_2d, fused, width, height):
    def box(points, factor):
        low, high = points.min(0), points.max(0)
        centre, half = np.trunc((low + high) / 2), (high - low) * factor / 2
        return np.concatenate([centre - half, centre + half])

    region = box(joints_2d, 1.5)
    if fused:
        other = box(object_2d, 1.5)
        region = np.concatenate([np.minimum(region[:2], other[:2]), np.maximum(region[2:], other[2:])])
    region = np.clip(region, 0, [width, height, width, height])
    return np.trunc((region[:2] + region[2:]) / 2), max(region[2] - region[0], region[3] - region[1])


@pytest.mark.parametrize("grasping", [False, True])
def test_crop_is_hand_only_or_fused_by_grasp_label(tiny_dexycb, test_set, grasping):
    i = first_index(test_set, grasping=grasping)
    sample = test_set[i]
    pose, k = sample["obj_pose"].numpy().astype(np.float64), sample["cam_intr"].numpy().astype(np.float64)
    object_2d = project_with([k[0, 0], k[1, 1], k[0, 2], k[1, 2]], sample["obj_bbox3d"].numpy() @ pose[:3, :3].T
                             + pose[:3, 3])
    joints_2d = test_set.index.joint_2d[i].astype(np.float64)
    if test_set.index.is_left[i]:
        joints_2d[:, 0], object_2d[:, 0] = 639 - joints_2d[:, 0], 639 - object_2d[:, 0]
    centre, scale = _expected_region(joints_2d, object_2d, grasping, 640, 480)
    affine = sample["affinetrans"].numpy()
    assert bool(sample["gt_grasping"][0]) == grasping
    assert RES / affine[0, 0] == pytest.approx(scale, rel=1e-5)
    np.testing.assert_allclose(-affine[:2, 2] / affine[0, 0] + scale / 2, centre, atol=1e-3)


@pytest.mark.parametrize("mode,flag", [("h", False), ("ho", True)])
def test_input_mode_overrides_grasp_labels(tiny_dexycb, mode, flag):
    dataset = make_dataset(tiny_dexycb, "test", input_mode=mode)
    assert dataset.grasping.dtype == bool and np.all(dataset.grasping == flag)
    assert bool(dataset[0]["gt_grasping"][0]) == flag


def test_training_filter_follows_the_official_box_sanitisation():
    width, height = np.full(5, 640.0), np.full(5, 480.0)
    joints = np.zeros((5, 21, 2))
    joints[0] = [[100, 100]] * 20 + [[140, 160]]   # normal hand: kept
    joints[1] = [[50, 50]] * 21                      # all joints in one point: w * h = 0, dropped
    joints[2] = [[680, 100]] * 20 + [[720, 120]]     # box x from 670 > W - 1 = 639: dropped
    joints[3] = [[-80, 100]] * 20 + [[-40, 120]]     # box left of the image: x1 clipped to 0, kept (official)
    joints[4] = [[100, 470]] * 20 + [[120, 478]]     # box starts at y = 468: kept
    np.testing.assert_array_equal(joint_box_survives(joints, width, height), [True, False, False, True, True])


def test_val_split_reads_the_toolkit_val_file(tiny_dexycb):
    dataset = make_dataset(tiny_dexycb, "val")
    expected = [f for f in tiny_dexycb.manifest["frames"] if f["subject"] == "20200709-subject-01"
                and f["sequence_index"] == 4 and f["has_hand"]]
    assert len(dataset) == len(expected) == 8
    assert {dataset.index.color_file(i) for i in range(len(dataset))} == {f["color_file"] for f in expected}


def test_object_mask_is_the_render_cut_to_the_object_box(tiny_dexycb, train_set):
    i = first_index(train_set, grasping=True)
    record = train_set.record(i)
    image = cv2.cvtColor(cv2.imread(str(tiny_dexycb.root / train_set.index.color_file(i))), cv2.COLOR_BGR2RGB)
    render = cv2.imread(str(tiny_dexycb.root / train_set.index.object_seg_file(i)), cv2.IMREAD_GRAYSCALE)
    identity = Augmentation()
    sample = build_sample(record, image, train_set.settings, np.random.default_rng(0), mask=render,
                          augmentation=identity)
    affine = sample["affinetrans"].astype(np.float64)
    if record.is_left:
        render = np.ascontiguousarray(render[:, ::-1])
    warped = cv2.warpAffine(render, affine[:2], (RES, RES), flags=cv2.INTER_NEAREST)
    assert (sample["gray"][0] == warped / 255.0).mean() > 0.99  # PIL vs cv2 nearest differ on edge pixels
    x1, y1, x2, y2 = np.round(sample["bbox_obj"]).astype(int)
    padded = np.pad(warped, RES)
    cut = padded[y1 + RES:y2 + RES, x1 + RES:x2 + RES]
    expected = cv2.resize(cut, (32, 32), interpolation=cv2.INTER_NEAREST) > 0
    assert expected.sum() > 100
    assert (sample["obj_mask"].astype(bool) == expected).mean() > 0.9  # nearest-resize conventions differ at edges
