"""The synthetic DexYCB-format generator: layout, labels vs renders, exact de-occluded pairs, grasp phases,
and the real data pipeline + loader on its output."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
import yaml

from data_creation import dexycb_layout as layout
from data_creation.synthetic.make_synthetic import prepare_setup, write_synthetic
from data_creation.synthetic.phases import load_phases
from data_creation.synthetic.pairs import deoccluded_path
from datasets.deocc_pairs import load_pair_index, pair_index_path
from datasets.dexycb import DexYCBDataset, annotation_file
from datasets.dexycb_index import load_index
from datasets.geometry import mesh_silhouette
from datasets.hand_object_sample import SampleSettings
from datasets.label_files import read_rgb
from models.mano import ManoLayer
from utils.mano_io import load_mano_assets

SEQUENCES, FRAMES, CAMERAS = 10, 6, 1
MCU = 16  # JPEG 4:2:0 block size: blocks away from a change decode to identical pixels


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory, standin_mano_root):
    root = tmp_path_factory.mktemp("synthetic")
    result = write_synthetic(root, standin_mano_root, seed=3, sequences=SEQUENCES, frames=FRAMES, cameras=CAMERAS,
                             workers=1, progress=False)
    counts = prepare_setup(root, standin_mano_root, "s0")
    return root, result, counts


def camera_dirs(root):
    return sorted(p for p in root.glob("*-subject-*/*/*") if p.is_dir())


def test_tree_has_the_dexycb_layout(synthetic, standin_mano_root):
    root, result, _ = synthetic
    assert result["frames_written"] == SEQUENCES * FRAMES * CAMERAS
    subjects = sorted(p.name for p in root.glob("*-subject-*"))
    assert len(subjects) == 10 and subjects[0] == "20200709-subject-01"
    for cam_dir in camera_dirs(root):
        meta = yaml.safe_load((cam_dir.parent / "meta.yml").read_text())
        assert meta["num_frames"] == FRAMES and meta["serials"] == [cam_dir.name]
        assert (root / "calibration" / "intrinsics" / f"{cam_dir.name}_640x480.yml").is_file()
        betas = yaml.safe_load((root / "calibration" / f"mano_{meta['mano_calib'][0]}" / "mano.yml").read_text())
        assert len(betas["betas"]) == 10
        assert meta["mano_calib"][0].endswith(meta["mano_sides"][0])
        for f in range(FRAMES):
            assert cv2.imread(str(cam_dir / f"color_{f:06d}.jpg")).shape == (480, 640, 3)
            depth = cv2.imread(str(cam_dir / f"aligned_depth_to_color_{f:06d}.png"), cv2.IMREAD_UNCHANGED)
            assert depth.dtype == np.uint16 and depth.max() > 300  # millimetres
            with np.load(cam_dir / f"labels_{f:06d}.npz") as labels:
                assert set(labels.files) == set(layout.LABEL_KEYS)
                assert labels["pose_y"].shape == (len(meta["ycb_ids"]), 3, 4) and labels["pose_m"].shape == (1, 51)
                assert labels["joint_3d"].shape == (1, 21, 3) and labels["joint_2d"].shape == (1, 21, 2)
                assert set(np.unique(labels["seg"])) <= {0, 255, *meta["ycb_ids"]}
    for name in ("003_cracker_box", "025_mug", "061_foam_brick"):
        points = np.loadtxt(root / "models" / name / "points.xyz")
        assert points.shape[1] == 3 and len(points) > 2048
        assert (root / "models" / name / "textured_simple.obj").read_text().startswith("v ")


def test_labels_match_the_rendered_hand(synthetic, standin_mano_root):
    """joint_2d = projected joint_3d; the MANO mesh of pose_m covers the rendered hand pixels; every finger joint
    lands on the hand or on an object in front of it, never on the table."""
    root, _, _ = synthetic
    layers = {side: ManoLayer.from_assets(load_mano_assets(standin_mano_root, side), use_pca=True, ncomps=45,
                                          flat_hand_mean=False) for side in ("right", "left")}
    for cam_dir in camera_dirs(root)[:4]:
        meta = yaml.safe_load((cam_dir.parent / "meta.yml").read_text())
        side = meta["mano_sides"][0]
        betas = yaml.safe_load((root / "calibration" / f"mano_{meta['mano_calib'][0]}" / "mano.yml").read_text())
        k = layout.k_matrix(yaml.safe_load(
            (root / "calibration" / "intrinsics" / f"{cam_dir.name}_640x480.yml").read_text())["color"])
        for f in range(0, FRAMES, 2):
            with np.load(cam_dir / f"labels_{f:06d}.npz") as labels:
                seg, pose_m = labels["seg"], labels["pose_m"].astype(np.float64)
                joint_3d, joint_2d = labels["joint_3d"][0].astype(np.float64), labels["joint_2d"][0]
            uvw = joint_3d @ k.T
            np.testing.assert_allclose(joint_2d, uvw[:, :2] / uvw[:, 2:], atol=1e-3)
            with torch.no_grad():
                verts, joints = layers[side](torch.tensor(pose_m[:, :48], dtype=torch.float32),
                                             torch.tensor([betas["betas"]], dtype=torch.float32),
                                             torch.tensor(pose_m[:, 48:], dtype=torch.float32))
            np.testing.assert_allclose(joints[0].numpy() / 1000.0, joint_3d, atol=2e-4)
            silhouette = mesh_silhouette(verts[0].double().numpy() / 1000.0, layers[side].th_faces.numpy(), k, 640, 480)
            hand = seg == layout.HAND_LABEL
            assert hand.sum() > 500
            assert (hand & ~cv2.dilate(silhouette.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)).sum() == 0
            pixels = np.round(joint_2d[1:]).astype(int)  # the wrist joint sits at the mesh's open cut
            for u, v in pixels[(pixels[:, 0] >= 2) & (pixels[:, 0] < 638) & (pixels[:, 1] >= 2) & (pixels[:, 1] < 478)]:
                assert (seg[v - 2:v + 3, u - 2:u + 3] != 0).any(), f"{cam_dir} frame {f}: joint at ({u}, {v}) on table"


def _blocks_touching(mask: np.ndarray) -> np.ndarray:
    """Pixels of every MCU block that touches ``mask`` or a neighbouring block that does (JPEG chroma
    upsampling reaches across one block border)."""
    height, width = mask.shape
    blocks = mask.reshape(height // MCU, MCU, width // MCU, MCU).any(axis=(1, 3)).astype(np.uint8)
    blocks = cv2.dilate(blocks, np.ones((3, 3), np.uint8)).astype(bool)
    return np.repeat(np.repeat(blocks, MCU, axis=0), MCU, axis=1)


def test_deoccluded_images_differ_only_where_the_object_was(synthetic):
    root, _, _ = synthetic
    phases = load_phases(root)["sequences"]
    checked = 0
    for key, entry in phases.items():
        cam_dir = root / key / entry["serials"][0]
        grasp_id = entry["ycb_ids"][entry["ycb_grasp_ind"]]
        for f, grasping in enumerate(entry["grasping"]):
            path = cam_dir / f"deoccluded_{f:06d}.jpg"
            assert path.is_file() == grasping
            if not grasping:
                continue
            original, deoccluded = read_rgb(cam_dir / f"color_{f:06d}.jpg"), read_rgb(path)
            with np.load(cam_dir / f"labels_{f:06d}.npz") as labels:
                grasped = labels["seg"] == grasp_id
            outside = ~_blocks_touching(cv2.dilate(grasped.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0)
            changed = (original != deoccluded).any(axis=2)
            # llvmpipe leaves at most a couple of isolated pixels different elsewhere (each spreads over its JPEG
            # blocks): allow 4 blocks' worth
            assert (changed & outside).sum() <= 4 * 3 * MCU * MCU, f"{cam_dir} frame {f}"
            if grasped.sum() > 200:
                assert np.abs(original[grasped].astype(int) - deoccluded[grasped]).mean() > 8
            checked += 1
    assert checked >= SEQUENCES


def test_grasp_labels_of_the_pipeline_match_the_generator_phases(synthetic):
    root, _, counts = synthetic
    assert counts["train"] == SEQUENCES * FRAMES * CAMERAS  # one sequence per subject: index 0 -> s0 train
    index = load_index(annotation_file(root, "s0", "train"))
    labels = np.load(root / "grasp_s0_train.npy", allow_pickle=True).item()
    phases = load_phases(root)["sequences"]
    for i in range(len(index)):
        subject, sequence, _ = str(index.dirs[index.dir_index[i]]).split("/")
        entry = phases[f"{subject}/{sequence}"]
        frame = int(index.frame[i])
        assert labels[index.key(i)] == entry["grasping"][frame]
        if entry["phases"][frame] != "lift":
            assert not labels[index.key(i)]
    assert all(any(entry["grasping"]) for entry in phases.values())


def test_loader_reads_the_tree_with_exact_pairs(synthetic, standin_mano_root):
    root, _, counts = synthetic
    pairs = load_pair_index(pair_index_path(root, "dexycb_s0", 1, 1))
    assert len(pairs) == counts["pairs"] > 0
    grasp = np.load(root / "grasp_s0_train.npy", allow_pickle=True).item()
    assert {key for key, flag in grasp.items() if flag} == set(pairs)
    results = json.loads((root / "deocc" / "dexycb_s0_train_v1" / "results" / f"{next(iter(pairs))}.json").read_text())
    assert results["status"] == "exact" and 0.0 <= results["occ_ratio"] <= 1.0
    settings = SampleSettings(res=64, augment=True, contrastive=True, filter_rule="occ", occ_threshold=1.0,
                              use_data_aug_ho=False, use_data_aug_h=False)
    dataset = DexYCBDataset(root, "s0", "train", load_mano_assets(standin_mano_root, "right"),
                            load_mano_assets(standin_mano_root, "left"), settings, pairs=pairs)
    keys = dataset.keys()
    paired = next(i for i, key in enumerate(keys) if key in pairs)
    sample = dataset[paired]
    assert sample["img"].shape == (6, 64, 64)
    assert sample["gt_grasping"].tolist() == [True, False] and not bool(sample["is_filtered"])
    original, deoccluded = sample["img"][:3], sample["img"][3:]
    assert 0 < (original != deoccluded).any(dim=0).float().mean() < 0.9
    crop = read_rgb(pairs[keys[paired]].gen_image_path)
    assert crop.shape == (128, 128, 3)
    assert deoccluded_path(dataset.record(paired).image_path).is_file()


def test_generation_is_deterministic_from_the_seed(tmp_path, standin_mano_root):
    def frame_bytes(root):
        cam_dir = camera_dirs(root)[0]
        image = cv2.imread(str(cam_dir / "color_000003.jpg")).astype(np.int16)
        return image, np.load(cam_dir / "labels_000003.npz")["joint_3d"]

    runs = {}
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        write_synthetic(tmp_path / name, standin_mano_root, seed=seed, sequences=1, frames=4, cameras=1,
                        progress=False)
        runs[name] = frame_bytes(tmp_path / name)
    # Labels are exact; llvmpipe may rasterise a few isolated pixels differently from one GL context to the next.
    changed = np.abs(runs["a"][0] - runs["b"][0]).max(axis=2) > 8
    assert changed.mean() < 1e-3
    np.testing.assert_array_equal(runs["a"][1], runs["b"][1])
    assert not np.allclose(runs["a"][1], runs["c"][1])
