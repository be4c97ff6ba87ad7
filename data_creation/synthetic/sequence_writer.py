"""Render and write one synthetic sequence in the DexYCB layout (:mod:`data_creation.dexycb_layout`).

Sequence ``j`` of a run belongs to subject ``j % 10`` (the toolkit's subject list) and is that subject's
``j // 10``-th sequence in name order, so the toolkit's split rules apply to the tree as they are. Everything
a sequence draws comes from ``numpy.random.default_rng([seed, SEQUENCE_STREAM, j])``: the output does not
depend on the number of worker processes or on which sequences were written before.

Per camera and frame: ``color_XXXXXX.jpg``, ``aligned_depth_to_color_XXXXXX.png``, ``labels_XXXXXX.npz``; for
grasping frames also ``deoccluded_XXXXXX.jpg``: the same frame rendered in the same way without the grasped
object (hand, table, other objects and lighting identical), the exact de-occluded partner.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from data_creation import dexycb_layout as layout
from data_creation.synthetic.grasp import HandKit
from data_creation.synthetic.scene import SequencePlan, plan_sequence
from data_creation.synthetic.views import (finish_image, sample_appearance, sample_camera, serial_viewpoints,
                                           table_points, texture_factor)
from data_creation.synthetic.objects import build_objects
from datasets.dexycb_splits import SERIALS, SUBJECTS
from models.mano import ManoLayer
from utils.hand_conventions import MM_PER_M
from utils.mano_io import load_mano_assets
from utils.render import MeshRenderer, MeshSpec

WIDTH, HEIGHT = 640, 480
SEQUENCE_STREAM = 1000
SUBJECT_STREAM = 3
DISTRACTOR_PROBABILITY = 0.6
BACKGROUND = (0.55, 0.58, 0.62)
TABLE_HALF_SIZE = 2.0  # m
DEOCCLUDED_NAME = "deoccluded_{:06d}.jpg"


def subject_betas(seed: int) -> np.ndarray:
    """(10 subjects, 10) MANO shape parameters of the synthetic subjects."""
    return np.random.default_rng([seed, SUBJECT_STREAM]).normal(0.0, 0.8, (len(SUBJECTS), 10))


def subject_skin(seed: int, subject: int) -> int:
    return int(np.random.default_rng([seed, SUBJECT_STREAM, subject]).integers(6))


def finger_pca(kit: HandKit, finger_pose: np.ndarray) -> np.ndarray:
    """(F, 45) flat-mean finger axis-angles -> (F, 45) PCA coefficients of ``ManoLayer(flat_hand_mean=False,
    ncomps=45)`` of the same side: ``aa = hands_mean + coeffs @ hands_components``."""
    return np.linalg.solve(kit.assets.hands_components.T, (finger_pose - kit.assets.hands_mean).T).T


class SequenceWriter:
    """Writes sequences of one run (holds the GL context, MANO layers and object meshes of a process)."""

    def __init__(self, root: str | Path, mano_root: str | Path, seed: int, intrinsics: dict):
        self.root, self.seed, self.intrinsics = Path(root), seed, intrinsics
        self.viewpoints = serial_viewpoints(seed)
        self.objects = build_objects()
        self.assets = {side: load_mano_assets(mano_root, side) for side in ("right", "left")}
        self.pca_layers = {side: ManoLayer.from_assets(self.assets[side], use_pca=True, ncomps=45,
                                                       flat_hand_mean=False) for side in ("right", "left")}
        self.betas = subject_betas(seed)
        self._kits: dict = {}
        self.renderer = MeshRenderer(WIDTH, HEIGHT, background=BACKGROUND)

    def close(self) -> None:
        self.renderer.close()

    def kit(self, subject: int, side: str) -> HandKit:
        if (subject, side) not in self._kits:
            self._kits[(subject, side)] = HandKit(self.assets[side], self.betas[subject])
        return self._kits[(subject, side)]

    def hand_poses(self, kit: HandKit, plan: SequencePlan) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World-frame DexYCB ``pose_m`` (F, 51), vertices (F, 778, 3) and joints (F, 21, 3) in metres."""
        fingers = finger_pca(kit, kit.finger_pose(plan.curls, plan.preshape)[:, 3:])
        local = np.concatenate([np.zeros((len(fingers), 3)), fingers, np.zeros((len(fingers), 3))], axis=1)
        root = kit.rest_joints[0]
        pose_m = np.stack([layout.transform_pose_m(p, root, t) for p, t in zip(local, plan.hand_transforms)])
        with torch.no_grad():
            verts, joints = self.pca_layers[plan.side](
                torch.as_tensor(pose_m[:, :48], dtype=torch.float32),
                torch.as_tensor(np.tile(kit.betas, (len(pose_m), 1)), dtype=torch.float32),
                torch.as_tensor(pose_m[:, 48:], dtype=torch.float32))
        return pose_m, verts.double().numpy() / MM_PER_M, joints.double().numpy() / MM_PER_M

    def write(self, index: int, frames: int, cameras: int) -> dict:
        """Plan, render and write sequence ``index``; returns its manifest entry (see module docstring)."""
        rng = np.random.default_rng([self.seed, SEQUENCE_STREAM, index])
        subject, order = index % len(SUBJECTS), index // len(SUBJECTS)
        sequence = layout.sequence_name(subject, 36000 + 400 * order + int(rng.integers(300)))
        side = ("right", "left")[int(rng.integers(2))]
        kit = self.kit(subject, side)
        ids = sorted(self.objects)
        grasped = self.objects[ids[rng.integers(len(ids))]]
        others = [i for i in ids if i != grasped.ycb_id]
        distractor = self.objects[others[rng.integers(len(others))]] if rng.random() < DISTRACTOR_PROBABILITY else None
        plan = plan_sequence(rng, kit, grasped, distractor, frames)
        appearance = sample_appearance(rng, subject_skin(self.seed, subject))
        pose_m, verts, joints = self.hand_poses(kit, plan)
        grasped_centres = plan.object_poses[:, plan.grasp_ind, :3, 3]
        target = grasped_centres.mean(axis=0)
        serials = [SERIALS[i] for i in sorted(rng.choice(len(SERIALS), size=cameras, replace=False))]
        views = {s: sample_camera(rng, self.viewpoints[s], target, layout.k_matrix(self.intrinsics[s]),
                                  np.concatenate([joints[:, 0], grasped_centres])) for s in serials}
        seq_dir = self.root / SUBJECTS[subject] / sequence
        seq_dir.mkdir(parents=True, exist_ok=True)
        calib = layout.mano_calib_name(subject, side)
        layout.write_meta(seq_dir, serials, frames, list(plan.ycb_ids), plan.grasp_ind, side, calib, sequence)
        master = views[serials[0]]
        layout.write_extrinsics(self.root, sequence, {s: master @ np.linalg.inv(v) for s, v in views.items()},
                                serials[0])
        layout.write_sequence_poses(seq_dir, master @ plan.object_poses, np.stack(
            [layout.transform_pose_m(p, kit.rest_joints[0], master) for p in pose_m]))
        for serial, view in views.items():
            self._write_camera(seq_dir / serial, serial, view, plan, appearance, kit, pose_m, verts, joints)
        return {"subject": SUBJECTS[subject], "sequence": sequence, "sequence_index": order, "side": side,
                "serials": serials, "ycb_ids": list(plan.ycb_ids), "ycb_grasp_ind": plan.grasp_ind,
                "phases": list(plan.phases), "grasping": plan.grasping.tolist(),
                "rotation_deg": plan.motion[:, 0].tolist(), "translation_m": plan.motion[:, 1].tolist()}

    def _object_meshes(self, plan: SequencePlan, frame: int, view: np.ndarray, with_grasped: bool):
        meshes, labels = [], []
        for slot, ycb_id in enumerate(plan.ycb_ids):
            if slot == plan.grasp_ind and not with_grasped:
                continue
            pose = view @ plan.object_poses[frame, slot]
            for part in self.objects[ycb_id].parts:
                meshes.append(MeshSpec(part.verts @ pose[:3, :3].T + pose[:3, 3], part.faces, part.colour, smooth=False))
                labels.append(ycb_id)
        return meshes, labels

    def _write_camera(self, cam_dir: Path, serial: str, view: np.ndarray, plan: SequencePlan, appearance, kit,
                      pose_m: np.ndarray, verts: np.ndarray, joints: np.ndarray) -> None:
        cam_dir.mkdir(parents=True, exist_ok=True)
        k = layout.k_matrix(self.intrinsics[serial])
        factor = texture_factor(appearance, table_points(view, k, WIDTH, HEIGHT))
        centre = -view[:3, :3].T @ view[:3, 3]
        corners = np.array([[x, y, 0.0] for x, y in ((-1, -1), (1, -1), (1, 1), (-1, 1))]) * TABLE_HALF_SIZE
        corners[:, :2] += centre[:2]
        table = MeshSpec(corners @ view[:3, :3].T + view[:3, 3], np.array([[0, 1, 2], [0, 2, 3]]), appearance.table,
                         smooth=False)
        for f in range(len(plan.phases)):
            hand_cam = verts[f] @ view[:3, :3].T + view[:3, 3]
            joint_3d = joints[f] @ view[:3, :3].T + view[:3, 3]
            hand = MeshSpec(hand_cam, kit.faces, appearance.skin)
            rgb, seg, depth = self._render(table, hand, plan, f, view, k, appearance, factor, True)
            layout.write_color(cam_dir / f"color_{f:06d}.jpg", rgb)
            layout.write_depth(cam_dir / f"aligned_depth_to_color_{f:06d}.png", depth)
            uvw = joint_3d @ k.T
            layout.write_labels(cam_dir / f"labels_{f:06d}.npz", seg, (view @ plan.object_poses[f])[:, :3],
                                layout.transform_pose_m(pose_m[f], kit.rest_joints[0], view), joint_3d,
                                uvw[:, :2] / uvw[:, 2:3])
            if plan.grasping[f]:
                deoccluded, _, _ = self._render(table, hand, plan, f, view, k, appearance, factor, False)
                layout.write_color(cam_dir / DEOCCLUDED_NAME.format(f), deoccluded)

    def _render(self, table, hand, plan, frame, view, k, appearance, factor, with_grasped: bool):
        """(rgb (H, W, 3) uint8, seg (H, W) uint8, depth (H, W) m) of one frame, with or without the grasped object."""
        objects, object_labels = self._object_meshes(plan, frame, view, with_grasped)
        rgb, depth, labels = self.renderer.render([table, hand, *objects], k, with_labels=True)
        lookup = np.zeros(256, np.uint8)  # renderer label i + 1 = mesh i -> DexYCB seg value (table = 0)
        lookup[2:3 + len(object_labels)] = [layout.HAND_LABEL, *object_labels]
        return finish_image(rgb, labels == 1, factor, appearance), lookup[labels], depth
