"""Write a tiny DexYCB-format tree (real subject / serial names) for tests and trials.

Layout and file formats follow the DexYCB release (ecosystem.md C.1): ``<subject>/<sequence>/meta.yml``,
``<subject>/<sequence>/<serial>/color_XXXXXX.jpg`` + ``labels_XXXXXX.npz`` (``seg``, ``pose_y``, ``pose_m``,
``joint_3d``, ``joint_2d``), ``calibration/intrinsics/<serial>_640x480.yml``, ``calibration/mano_<name>/mano.yml``
and ``models/<ycb name>/points.xyz``; plus the authors' ``object_render/.../grasp_object_seg_XXXXXX.png``.

The scene of a sequence lives in a world frame seen by every camera (camera c: rotation about y plus a shift).
Hands come from the stand-in MANO (``ManoLayer`` in PCA mode, ``ncomps=45``, ``flat_hand_mean=False``, as
DexYCB), left and right alternating by sequence and subject; ``joint_3d`` = MANO joints + translation in each camera's
frame, ``joint_2d`` their projection. Objects are boxes of random points: the grasped one sits in front of the
palm (partly occluding the hand) and stays still for the first half of the frames, then turns 10 deg and
moves 2 cm per frame with the hand (so grasp labels have both classes). Images: flat background, object
hulls and the hand mesh silhouette painted far to near; ``seg`` holds 255 for hand, the YCB id for objects.
Frame ``frames - 1`` of the second sequence of every subject has no hand (``joint_*`` = -1, ``pose_m`` = 0).

Usage: ``python -m data_creation.make_tiny_dexycb --out data/tiny_dexycb --mano_root data/mano_standin``
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch

from data_creation.dexycb_layout import (HAND_LABEL, k_matrix, mano_calib_name, no_hand_labels, sequence_name,
                                         transform_pose_m, write_color, write_intrinsics, write_labels,
                                         write_mano_calibration, write_meta, write_object_model)
from datasets.dexycb_splits import SERIALS, SUBJECTS
from datasets.geometry import convex_silhouette, mesh_silhouette, project_points, rotation_angle_deg
from models.mano import ManoLayer
from utils.mano_io import load_mano_assets
from utils.rotations import axis_angle_to_matrix
from utils.ycb import ycb_class_name

OBJECT_IDS = (2, 10, 13, 21)  # 003_cracker_box, 011_banana, 024_bowl, 061_foam_brick
OBJECT_COLOURS = {2: (200, 60, 40), 10: (230, 210, 50), 13: (60, 160, 220), 21: (190, 80, 160)}
HAND_COLOUR = (225, 180, 150)
BACKGROUND = (70, 80, 90)
GRASP_STEP_DEG = 10.0
GRASP_STEP_M = 0.02


def _box_points(rng: np.random.Generator, size: np.ndarray, count: int = 300) -> np.ndarray:
    """Random points filling a centred box of ``size`` (3,) metres, with its 8 corners included."""
    corners = np.array([[(i >> 0) & 1, (i >> 1) & 1, (i >> 2) & 1] for i in range(8)], dtype=np.float64)
    points = np.concatenate([corners, rng.uniform(0, 1, size=(count, 3))]) - 0.5
    return points * size


def _camera_pose(k: int) -> np.ndarray:
    """World -> camera transform (4, 4) of the k-th camera: rotation about y and a sideways shift."""
    angle = np.radians(-8.0 + 16.0 * k)
    pose = np.eye(4)
    pose[:3, :3] = axis_angle_to_matrix(np.array([0.0, angle, 0.0]))
    pose[:3, 3] = [-0.04 + 0.08 * k, 0.0, 0.0]
    return pose


def _intrinsics(serial_index: int, width: int, height: int) -> dict:
    scale = width / 640.0
    return {"fx": (612.0 + serial_index) * scale, "fy": (611.7 + serial_index) * scale,
            "ppx": width / 2.0 - 3.0 + serial_index, "ppy": height / 2.0 + 2.0}


class _Hands:
    """MANO (PCA, 45 comps, non-flat mean) of both sides; poses in metres, camera or world frame."""

    def __init__(self, mano_root: Path):
        self.layers = {side: ManoLayer(flat_hand_mean=False, ncomps=45, use_pca=True, side=side,
                                       assets=load_mano_assets(mano_root, side)) for side in ("right", "left")}
        self.faces = self.layers["right"].th_faces.numpy()

    def __call__(self, side: str, pose_m: np.ndarray, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """pose_m (B, 51), betas (B, 10) -> verts (B, 778, 3), joints (B, 21, 3) in metres (translation included)."""
        with torch.no_grad():
            verts, joints = self.layers[side](torch.tensor(pose_m[:, :48], dtype=torch.float32),
                                              torch.tensor(betas, dtype=torch.float32),
                                              torch.tensor(pose_m[:, 48:], dtype=torch.float32))
        return verts.double().numpy() / 1000.0, joints.double().numpy() / 1000.0


def _object_world_poses(rng: np.random.Generator, wrist: np.ndarray, frames: int) -> list[np.ndarray]:
    """Grasped object world poses (4, 4) per frame: still for frames < frames // 2, then moving."""
    base = np.eye(4)
    base[:3, :3] = axis_angle_to_matrix(rng.normal(0, 0.3, 3))
    base[:3, 3] = wrist + np.array([0.03, -0.05, -0.04])
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    poses = []
    for f in range(frames):
        steps = max(0, f - frames // 2 + 1)
        motion = np.eye(4)
        motion[:3, :3] = axis_angle_to_matrix(axis * np.radians(GRASP_STEP_DEG * steps))
        motion[:3, 3] = np.array([0.0, -GRASP_STEP_M * steps, 0.0])
        pose = base.copy()
        pose[:3, :3] = motion[:3, :3] @ base[:3, :3]
        pose[:3, 3] = base[:3, 3] + motion[:3, 3]
        poses.append(pose)
    return poses


def paint_layers(width: int, height: int, layers: list[tuple[float, np.ndarray, tuple, int]]):
    """Paint (depth, mask, colour, label) layers far to near -> RGB image (H, W, 3) and seg (H, W)."""
    image = np.empty((height, width, 3), np.uint8)
    image[:] = BACKGROUND
    seg = np.zeros((height, width), np.uint8)
    for _, mask, colour, label in sorted(layers, key=lambda layer: -layer[0]):
        image[mask] = colour
        seg[mask] = label
    return image, seg


def write_tiny_dexycb(root: str | Path, mano_root: str | Path, seed: int = 0, subjects=(0, 2, 6, 7),
                      sequences_per_subject: int = 5, serials=(0, 7), frames: int = 4,
                      image_size=(640, 480), object_renders: bool = True) -> dict:
    """Write the tree under ``root``; returns a manifest of what was written.

    Args:
        subjects, serials: indices into the toolkit's subject / serial lists.
        image_size: (width, height) of every frame.
    Returns:
        ``{"frames": [{subject, sequence, sequence_index, serial, frame, side, has_hand, grasping,
        ycb_grasp_id, color_file}], "objects": {ycb_id: name}, "image_size": (w, h)}``.
    """
    root, rng = Path(root), np.random.default_rng(seed)
    width, height = image_size
    hands = _Hands(Path(mano_root))
    object_sizes = {}
    for ycb_id in OBJECT_IDS:
        object_sizes[ycb_id] = rng.uniform(0.05, 0.12, 3)
        write_object_model(root, ycb_id, _box_points(rng, object_sizes[ycb_id]))
    for s in serials:
        write_intrinsics(root, SERIALS[s], **_intrinsics(s, width, height))
    manifest = {"frames": [], "objects": {i: ycb_class_name(i) for i in OBJECT_IDS}, "image_size": (width, height)}
    all_betas = rng.normal(0, 0.5, (len(subjects), 10))
    for subject_index, betas in zip(subjects, all_betas):
        for side in ("right", "left"):
            write_mano_calibration(root, mano_calib_name(subject_index, side), betas)
    rest_roots = {side: hands(side, np.zeros((len(subjects), 51)), all_betas)[1][:, 0] for side in ("right", "left")}
    plans = [_plan_sequence(rng, j, i, q, all_betas[j], rest_roots, serials, frames)
             for j, i in enumerate(subjects) for q in range(sequences_per_subject)]
    for side in ("right", "left"):  # one MANO call per side
        chosen = [plan for plan in plans if plan["side"] == side]
        if chosen:
            poses = np.concatenate([plan["hand_poses"].reshape(-1, 51) for plan in chosen])
            betas = np.concatenate([np.tile(plan["betas"], (plan["hand_poses"][..., 0].size, 1)) for plan in chosen])
            verts, joints = hands(side, poses, betas)
            splits = np.cumsum([plan["hand_poses"][..., 0].size for plan in chosen])[:-1]
            for plan, v, j in zip(chosen, np.split(verts, splits), np.split(joints, splits)):
                plan["verts"] = v.reshape(plan["hand_poses"].shape[:2] + (778, 3))
                plan["joints"] = j.reshape(plan["hand_poses"].shape[:2] + (21, 3))
    for plan in plans:
        _write_sequence(root, hands.faces, plan, serials, width, height, object_sizes, object_renders, manifest)
    return manifest


def _plan_sequence(rng, subject_slot, subject_index, q, betas, rest_roots, serials, frames) -> dict:
    """Draw one sequence: side, objects, world motion, and the hand's pose_m per (camera, frame)."""
    side = "right" if (q + subject_slot) % 2 == 0 else "left"
    ycb_ids = [int(i) for i in rng.choice(OBJECT_IDS, size=2, replace=False)]
    grasp_ind = int(rng.integers(2))
    root_rest = rest_roots[side][subject_slot]
    wrist = np.array([rng.uniform(-0.03, 0.03), rng.uniform(-0.02, 0.02), rng.uniform(0.5, 0.6)])
    pose0 = np.concatenate([rng.normal(0, 0.3, 3), rng.normal(0, 0.6, 45), wrist - root_rest])
    grasped_poses = _object_world_poses(rng, wrist, frames)
    other_pose = np.eye(4)
    other_pose[:3, 3] = wrist + np.array([-0.15, 0.05, 0.1])
    motions = [grasped_poses[f] @ np.linalg.inv(grasped_poses[0]) for f in range(frames)]  # hand moves with it
    hand_poses = np.stack([[transform_pose_m(transform_pose_m(pose0, root_rest, motion), root_rest, _camera_pose(k))
                            for motion in motions] for k in range(len(serials))])  # (cameras, frames, 51)
    return dict(subject=SUBJECTS[subject_index], sequence=sequence_name(subject_index, 36000 + 600 * q), q=q,
                side=side, calib=mano_calib_name(subject_index, side), betas=betas, ycb_ids=ycb_ids,
                grasp_ind=grasp_ind, grasped_poses=grasped_poses, other_pose=other_pose, motions=motions,
                hand_poses=hand_poses, no_hand_frame=frames - 1 if q == 1 else None)


def _write_sequence(root, faces, plan, serials, width, height, object_sizes, object_renders, manifest):
    frames = len(plan["motions"])
    ycb_ids, grasp_ind = plan["ycb_ids"], plan["grasp_ind"]
    seq_dir = root / plan["subject"] / plan["sequence"]
    write_meta(seq_dir, [SERIALS[s] for s in serials], frames, ycb_ids, grasp_ind, plan["side"], plan["calib"],
               "tiny")
    grasped_poses = plan["grasped_poses"]
    for k, s in enumerate(serials):
        camera = _camera_pose(k)
        cam_dir = seq_dir / SERIALS[s]
        cam_dir.mkdir(exist_ok=True)
        for f in range(frames):
            world = {ycb_ids[grasp_ind]: grasped_poses[f], ycb_ids[1 - grasp_ind]: plan["other_pose"]}
            object_cam = {i: camera @ world[i] for i in ycb_ids}
            hand = None if f == plan["no_hand_frame"] else (plan["hand_poses"][k, f], plan["verts"][k, f],
                                                             plan["joints"][k, f])
            record = _write_frame(root, cam_dir, f, faces, hand, _intrinsics(s, width, height), ycb_ids, grasp_ind,
                                  object_cam, object_sizes, object_renders, width, height)
            grasping = (rotation_angle_deg(plan["motions"][f][:3, :3]) > 5.0
                        or np.linalg.norm(grasped_poses[f][:3, 3] - grasped_poses[0][:3, 3]) > 0.05)
            manifest["frames"].append(dict(
                subject=plan["subject"], sequence=plan["sequence"], sequence_index=plan["q"], serial=SERIALS[s],
                frame=f, side=plan["side"], has_hand=hand is not None, grasping=bool(grasping),
                ycb_grasp_id=ycb_ids[grasp_ind], **record))


def _write_frame(root, cam_dir, f, faces, hand, intr, ycb_ids, grasp_ind, object_cam, object_sizes,
                 object_renders, width, height) -> dict:
    """Paint and save one frame; ``hand`` = (pose_m (51,), verts (778, 3), joints (21, 3)) or None."""
    k = k_matrix(intr)
    layers = []
    corners = {}
    for ycb_id, pose in object_cam.items():
        box = _box_points(np.random.default_rng(0), object_sizes[ycb_id], count=0)
        corners[ycb_id] = box @ pose[:3, :3].T + pose[:3, 3]
        mask = convex_silhouette(corners[ycb_id], k, width, height)
        layers.append((float(pose[2, 3]), mask, OBJECT_COLOURS[ycb_id], ycb_id))
    if hand is not None:
        pose_m, verts, joints = hand
        hand_mask = mesh_silhouette(verts, faces, k, width, height)
        layers.append((float(verts[:, 2].mean()), hand_mask, HAND_COLOUR, HAND_LABEL))
        joint_3d, joint_2d = joints, project_points(joints, k)
    else:
        pose_m, joint_3d, joint_2d = no_hand_labels()
    image, seg = paint_layers(width, height, layers)
    write_color(cam_dir / f"color_{f:06d}.jpg", image)
    write_labels(cam_dir / f"labels_{f:06d}.npz", seg, np.stack([object_cam[i][:3] for i in ycb_ids]), pose_m,
                 joint_3d, joint_2d)
    if object_renders:
        rel = cam_dir.relative_to(root)
        render_dir = root / "object_render" / rel
        render_dir.mkdir(parents=True, exist_ok=True)
        grasped = convex_silhouette(corners[ycb_ids[grasp_ind]], k, width, height)
        cv2.imwrite(str(render_dir / f"grasp_object_seg_{f:06d}.png"), grasped.astype(np.uint8) * 255)
    return {"color_file": str((cam_dir / f"color_{f:06d}.jpg").relative_to(root))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="folder to write the tree into")
    parser.add_argument("--mano_root", required=True, help="folder with MANO_RIGHT.pkl / MANO_LEFT.pkl")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    manifest = write_tiny_dexycb(args.out, args.mano_root, seed=args.seed)
    print(f"wrote {len(manifest['frames'])} frames to {args.out}")


if __name__ == "__main__":
    main()
