"""Write a tiny HO3D-v2-format tree (``train/`` + ``evaluation/``) for tests and trials.

Formats follow HO3D v2 (ecosystem.md D.1): ``train/<SEQ>/meta/<ID>.pkl`` with ``handPose`` (48, full axis-angle,
flat-hand-mean), ``handBeta``, ``handTrans``, ``handJoints3D`` (21x3, HO3D joint order, tips at HO3D's vertices
744/333/444/555/672), ``camMat``, ``objRot`` (3x1 Rodrigues), ``objTrans``, ``objName``, ``objCorners3DRest``,
``objCorners3D``; evaluation metas with ``handBoundingBox``, the root joint only, camera and object pose. All 3D
values are in the OpenGL camera frame (the hand is at negative z). Images ``rgb/<ID>.png`` 640x480: object hull
and the stand-in MANO hand (right, ``flat_hand_mean=True``) painted far to near. Also ``train.txt``,
``evaluation.txt``, ``models/<name>/points.xyz`` and the authors' label files ``grasp_trainval.npy`` /
``grasp_test.npy``. The last frame of ``ABF10`` is unannotated (``objRot`` and ``handPose`` None).

Usage: ``python -m data_creation.make_tiny_ho3d --out data/tiny_ho3d --mano_root data/mano_standin``
"""
from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import cv2
import numpy as np
import torch

from data_creation.make_tiny_dexycb import HAND_COLOUR, OBJECT_COLOURS, paint_layers
from datasets.geometry import convex_silhouette, mesh_silhouette, project_points
from datasets.label_files import write_label_dict
from models.mano import ManoLayer
from utils.hand_conventions import FINGERTIP_VERTS_HO3D, MANOPTH_TO_HO3D_ORDER, OPENGL_TO_OPENCV
from utils.mano_io import load_mano_assets
from utils.rotations import axis_angle_to_matrix, matrix_to_axis_angle

TRAIN_SEQUENCES = ("ABF10", "ABF11", "ABF12", "ABF13", "MC1", "MC2", "SM2")  # ABF13 becomes val
EVAL_SEQUENCES = ("SM1", "MPM10")
OBJECTS = {"006_mustard_bottle": 5, "010_potted_meat_can": 9, "021_bleach_cleanser": 12}
CAMERA = np.array([[614.0, 0.0, 312.0], [0.0, 614.0, 242.0], [0.0, 0.0, 1.0]])
WIDTH, HEIGHT = 640, 480


def _corners(size: np.ndarray) -> np.ndarray:
    bits = np.array([[(i >> 0) & 1, (i >> 1) & 1, (i >> 2) & 1] for i in range(8)], dtype=np.float64)
    return (bits - 0.5) * size


def _hand(layer: ManoLayer, pose_cv: np.ndarray, betas: np.ndarray, wrist: np.ndarray):
    """Right hand with ``pose_cv`` (48,) placed with its wrist at ``wrist`` (OpenCV, m).

    Returns verts (778, 3), HO3D-order joints (21, 3) in OpenCV, and the HO3D (OpenGL) ``handTrans``.
    """
    with torch.no_grad():
        pose = torch.tensor(np.stack([pose_cv, np.zeros(48)]), dtype=torch.float32)
        verts, joints = layer(pose, torch.tensor(np.stack([betas, betas]), dtype=torch.float32))
    verts, joints = verts.double().numpy() / 1000.0, joints.double().numpy() / 1000.0
    rest_root = joints[1, 0]  # root of the shaped hand without rotation = MANO's rotation centre J0
    shift = wrist - joints[0, 0]
    verts, joints = verts[0] + shift, joints[0] + shift
    ho3d = joints[list(MANOPTH_TO_HO3D_ORDER)]
    ho3d[16:] = verts[list(FINGERTIP_VERTS_HO3D)]
    c = OPENGL_TO_OPENCV
    trans_gl = c @ (rest_root + shift) - rest_root
    return verts, ho3d, trans_gl


def _write_image(path: Path, verts: np.ndarray, faces: np.ndarray, corners_cam: np.ndarray, object_id: int) -> None:
    layers = [(float(corners_cam[:, 2].mean()), convex_silhouette(corners_cam, CAMERA, WIDTH, HEIGHT),
               OBJECT_COLOURS.get(object_id, (200, 60, 40)), object_id),
              (float(verts[:, 2].mean()), mesh_silhouette(verts, faces, CAMERA, WIDTH, HEIGHT), HAND_COLOUR, 255)]
    image, _ = paint_layers(WIDTH, HEIGHT, layers)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


def _save_pickle(path: Path, meta: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        pickle.dump(meta, f, protocol=2)


def write_tiny_ho3d(root: str | Path, mano_root: str | Path, seed: int = 0, frames: int = 3) -> dict:
    """Write the tree under ``root``; returns ``{"train": {key: {...}}, "evaluation": {key: {...}}}`` with the
    OpenCV-frame ground truth of every frame (``joints_cv`` HO3D order, ``pose_cv``, ``object_pose_cv``, ...)."""
    root, rng = Path(root), np.random.default_rng(seed)
    layer = ManoLayer(side="right", flat_hand_mean=True, use_pca=False, assets=load_mano_assets(mano_root, "right"))
    faces = layer.th_faces.numpy()
    sizes = {}
    for name in OBJECTS:
        sizes[name] = rng.uniform(0.05, 0.1, 3)
        points = np.concatenate([_corners(sizes[name]), (rng.uniform(0, 1, (200, 3)) - 0.5) * sizes[name]])
        (root / "models" / name).mkdir(parents=True, exist_ok=True)
        np.savetxt(root / "models" / name / "points.xyz", points, fmt="%.6f")
    c = OPENGL_TO_OPENCV
    manifest: dict = {"train": {}, "evaluation": {}}
    for part, sequences in (("train", TRAIN_SEQUENCES), ("evaluation", EVAL_SEQUENCES)):
        for s, sequence in enumerate(sequences):
            name = list(OBJECTS)[s % len(OBJECTS)]
            betas = rng.normal(0, 0.5, 10)
            for f in range(frames):
                key = f"{sequence}/{f:04d}"
                pose_cv = np.concatenate([rng.normal(0, 0.4, 3) + [np.pi, 0, 0], rng.normal(0, 0.3, 45)])
                wrist = np.array([rng.uniform(-0.04, 0.04), rng.uniform(-0.03, 0.03), rng.uniform(0.5, 0.6)])
                verts, joints_cv, trans_gl = _hand(layer, pose_cv, betas, wrist)
                object_pose = np.eye(4)
                object_pose[:3, :3] = axis_angle_to_matrix(rng.normal(0, 0.5, 3))
                object_pose[:3, 3] = wrist + [0.04, -0.04, -0.03]
                corners_cam = _corners(sizes[name]) @ object_pose[:3, :3].T + object_pose[:3, 3]
                pose_gl = c @ object_pose[:3]
                meta = {"camMat": CAMERA.copy(), "objName": name, "objLabel": OBJECTS[name],
                        "objRot": matrix_to_axis_angle(pose_gl[:, :3]).reshape(3, 1), "objTrans": pose_gl[:, 3].copy(),
                        "objCorners3DRest": _corners(sizes[name]), "objCorners3D": corners_cam @ c}
                global_gl = matrix_to_axis_angle(c @ axis_angle_to_matrix(pose_cv[:3]))
                folder = root / part / sequence
                if part == "train":
                    meta.update(handPose=np.concatenate([global_gl, pose_cv[3:]]), handBeta=betas, handTrans=trans_gl,
                                handJoints3D=joints_cv @ c)
                    if sequence == "ABF10" and f == frames - 1:
                        meta.update(objRot=None, handPose=None)
                else:
                    uv = project_points(verts, CAMERA)
                    meta.update(handJoints3D=joints_cv[0] @ c,
                                handBoundingBox=np.concatenate([uv.min(0), uv.max(0)]).astype(np.float64))
                _save_pickle(folder / "meta" / f"{f:04d}.pkl", meta)
                _write_image(folder / "rgb" / f"{f:04d}.png", verts, faces, corners_cam, OBJECTS[name])
                manifest[part][key] = dict(joints_cv=joints_cv, pose_cv=pose_cv, betas=betas, object_name=name,
                                           object_pose_cv=object_pose, annotated=meta["objRot"] is not None,
                                           grasping=bool((s + f) % 2))
    (root / "train.txt").write_text("\n".join(manifest["train"]) + "\n")
    (root / "evaluation.txt").write_text("\n".join(manifest["evaluation"]) + "\n")
    for part, file_name in (("train", "grasp_trainval.npy"), ("evaluation", "grasp_test.npy")):
        labels = {key: value["grasping"] for key, value in manifest[part].items()}
        write_label_dict(root / file_name, labels)
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--mano_root", required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    manifest = write_tiny_ho3d(args.out, args.mano_root, seed=args.seed)
    print(f"wrote {len(manifest['train'])} training and {len(manifest['evaluation'])} evaluation frames to {args.out}")


if __name__ == "__main__":
    main()
