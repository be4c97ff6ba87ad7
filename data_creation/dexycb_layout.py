"""Writing a tree in the DexYCB on-disk layout (reference: docs/libraries.md C.1), shared by the data generators.

Files (all paths under the tree root)::

    calibration/intrinsics/<serial>_640x480.yml        {"color": {"fx", "fy", "ppx", "ppy"}} (px)
    calibration/mano_<calib>/mano.yml                   {"betas": 10 floats}
    calibration/extrinsics_<name>/extrinsics.yml        {"extrinsics": {serial: 12 floats (3x4 camera -> world)},
                                                         "master": serial}
    models/<ycb name>/points.xyz                        object points, metres, one "x y z" line each
    models/<ycb name>/textured_simple.obj               object mesh (Wavefront OBJ, metres)
    <subject>/<sequence>/meta.yml                       serials, num_frames, ycb_ids, ycb_grasp_ind, mano_sides,
                                                         mano_calib, extrinsics
    <subject>/<sequence>/pose.npz                       pose_y (F, n_obj, 7: quaternion xyzw + t), pose_m (F, 1, 51),
                                                         world (master camera) frame
    <subject>/<sequence>/<serial>/color_XXXXXX.jpg      RGB frame
    <subject>/<sequence>/<serial>/aligned_depth_to_color_XXXXXX.png   uint16 depth, millimetres
    <subject>/<sequence>/<serial>/labels_XXXXXX.npz     seg (H, W) uint8 (0 background, YCB id, 255 hand),
                                                         pose_y (n_obj, 3, 4), pose_m (1, 51), joint_3d (1, 21, 3) m,
                                                         joint_2d (1, 21, 2) px; float32; hand absent: joint_* = -1,
                                                         pose_m = 0

``pose_m`` = 3 global axis-angle + 45 PCA coefficients of the side's MANO model (``flat_hand_mean=False``) +
3 translation (m), camera frame. Calibration names follow DexYCB: MANO calibrations
``<YYYYMMDD>_<HHMMSS>_subject-NN_<side>``, sequences ``<YYYYMMDD>_<HHMMSS>`` named after the subject's date.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import yaml

from datasets.dexycb_splits import SUBJECTS
from utils.hand_conventions import MM_PER_M
from utils.rotations import axis_angle_to_matrix, matrix_to_axis_angle, matrix_to_quaternion
from utils.ycb import ycb_class_name

HAND_LABEL = 255
JPEG_QUALITY = 95
LABEL_KEYS = ("seg", "pose_y", "pose_m", "joint_3d", "joint_2d")


def subject_date(subject_index: int) -> str:
    """``20200709`` for subject 0 (the date part of the toolkit's subject folder name)."""
    return SUBJECTS[subject_index].split("-")[0]


def sequence_name(subject_index: int, seconds: int) -> str:
    """``<subject date>_<HHMMSS>`` for a recording ``seconds`` after midnight (sorted by time, like DexYCB)."""
    if not 0 <= seconds < 24 * 3600:
        raise ValueError(f"sequence time must be within a day, got {seconds} s")
    return f"{subject_date(subject_index)}_{seconds // 3600:02d}{seconds // 60 % 60:02d}{seconds % 60:02d}"


def mano_calib_name(subject_index: int, side: str) -> str:
    """DexYCB-style MANO calibration name, e.g. ``20200709_090000_subject-01_right``."""
    return f"{subject_date(subject_index)}_090000_subject-{subject_index + 1:02d}_{side}"


def camera_dir(root: Path, subject: str, sequence: str, serial: str) -> Path:
    return Path(root) / subject / sequence / serial


def _write_yaml(path: Path, content: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(content, sort_keys=False))


def write_intrinsics(root: Path, serial: str, fx: float, fy: float, ppx: float, ppy: float) -> Path:
    """``calibration/intrinsics/<serial>_640x480.yml`` with the ``color`` block the toolkit reads."""
    path = Path(root) / "calibration" / "intrinsics" / f"{serial}_640x480.yml"
    _write_yaml(path, {"color": {"fx": float(fx), "fy": float(fy), "ppx": float(ppx), "ppy": float(ppy)}})
    return path


def k_matrix(intrinsics: dict) -> np.ndarray:
    """(3, 3) pinhole matrix of an intrinsics block ``{fx, fy, ppx, ppy}``."""
    return np.array([[intrinsics["fx"], 0.0, intrinsics["ppx"]], [0.0, intrinsics["fy"], intrinsics["ppy"]],
                     [0.0, 0.0, 1.0]])


def write_mano_calibration(root: Path, calib: str, betas: np.ndarray) -> Path:
    """``calibration/mano_<calib>/mano.yml`` holding the subject's 10 shape parameters."""
    betas = np.asarray(betas, dtype=np.float64).ravel()
    if betas.size != 10:
        raise ValueError(f"MANO calibration {calib}: expected 10 betas, got {betas.size}")
    path = Path(root) / "calibration" / f"mano_{calib}" / "mano.yml"
    _write_yaml(path, {"betas": betas.tolist()})
    return path


def write_extrinsics(root: Path, name: str, camera_to_world: dict, master: str) -> Path:
    """``calibration/extrinsics_<name>/extrinsics.yml``: serial -> 3x4 camera-to-world as 12 row-major floats."""
    if master not in camera_to_world:
        raise ValueError(f"extrinsics {name}: master camera {master} is not among {sorted(camera_to_world)}")
    path = Path(root) / "calibration" / f"extrinsics_{name}" / "extrinsics.yml"
    _write_yaml(path, {"extrinsics": {serial: np.asarray(pose, np.float64)[:3, :4].ravel().tolist()
                                      for serial, pose in camera_to_world.items()}, "master": master})
    return path


def write_meta(sequence_dir: Path, serials: list, num_frames: int, ycb_ids: list, grasp_ind: int, side: str,
               calib: str, extrinsics: str) -> Path:
    """``meta.yml`` of a sequence (the keys the toolkit reads)."""
    if not 0 <= grasp_ind < len(ycb_ids):
        raise ValueError(f"{sequence_dir}: ycb_grasp_ind {grasp_ind} outside ycb_ids {ycb_ids}")
    path = Path(sequence_dir) / "meta.yml"
    _write_yaml(path, {"serials": [str(s) for s in serials], "num_frames": int(num_frames),
                       "ycb_ids": [int(i) for i in ycb_ids], "ycb_grasp_ind": int(grasp_ind),
                       "mano_sides": [side], "mano_calib": [calib], "extrinsics": extrinsics})
    return path


def write_sequence_poses(sequence_dir: Path, object_poses: np.ndarray, pose_m: np.ndarray) -> Path:
    """``pose.npz``: object poses (F, n_obj, 4, 4) and hand ``pose_m`` (F, 51), world frame."""
    object_poses = np.asarray(object_poses, np.float64)
    quat_wxyz = np.asarray(matrix_to_quaternion(object_poses[..., :3, :3]))
    pose_y = np.concatenate([quat_wxyz[..., 1:], quat_wxyz[..., :1], object_poses[..., :3, 3]], -1)
    path = Path(sequence_dir) / "pose.npz"
    np.savez_compressed(path, pose_y=pose_y.astype(np.float32),
                        pose_m=np.asarray(pose_m, np.float32).reshape(len(pose_m), 1, 51))
    return path


def no_hand_labels() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pose_m (51,), joint_3d (21, 3), joint_2d (21, 2)) of a frame without a hand (toolkit convention)."""
    return np.zeros(51), -np.ones((21, 3)), -np.ones((21, 2))


def write_labels(path: Path, seg: np.ndarray, pose_y: np.ndarray, pose_m: np.ndarray, joint_3d: np.ndarray,
                 joint_2d: np.ndarray) -> None:
    """``labels_XXXXXX.npz`` of one frame: seg (H, W), pose_y (n_obj, 3, 4), pose_m (51,), joints (21, 3)/(21, 2)."""
    seg, pose_y = np.asarray(seg), np.asarray(pose_y)
    if seg.ndim != 2 or pose_y.ndim != 3 or pose_y.shape[1:] != (3, 4):
        raise ValueError(f"{path}: expected seg (H, W) and pose_y (n_obj, 3, 4), got {seg.shape} and {pose_y.shape}")
    np.savez_compressed(path, seg=seg.astype(np.uint8), pose_y=pose_y.astype(np.float32),
                        pose_m=np.asarray(pose_m, np.float32).reshape(1, 51),
                        joint_3d=np.asarray(joint_3d, np.float32).reshape(1, 21, 3),
                        joint_2d=np.asarray(joint_2d, np.float32).reshape(1, 21, 2))


def write_color(path: Path, rgb: np.ndarray, quality: int = JPEG_QUALITY) -> None:
    """Save an (H, W, 3) uint8 RGB image (JPEG for ``.jpg``, lossless for ``.png``)."""
    ok = cv2.imwrite(str(path), cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR),
                     [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise OSError(f"could not write image {path}")


def write_depth(path: Path, depth_m: np.ndarray) -> None:
    """``aligned_depth_to_color_XXXXXX.png``: (H, W) metres -> uint16 millimetres (0 = no depth)."""
    depth_mm = np.clip(np.round(np.asarray(depth_m, np.float64) * MM_PER_M), 0, np.iinfo(np.uint16).max)
    if not cv2.imwrite(str(path), depth_mm.astype(np.uint16)):
        raise OSError(f"could not write depth image {path}")


def write_object_model(root: Path, ycb_id: int, points: np.ndarray, verts: np.ndarray | None = None,
                       faces: np.ndarray | None = None) -> Path:
    """``models/<ycb name>/points.xyz`` (and ``textured_simple.obj`` when a mesh is given); returns the folder."""
    folder = Path(root) / "models" / ycb_class_name(ycb_id)
    folder.mkdir(parents=True, exist_ok=True)
    np.savetxt(folder / "points.xyz", np.asarray(points, np.float64), fmt="%.6f")
    if verts is not None:
        lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in np.asarray(verts, np.float64)]
        lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in np.asarray(faces, np.int64)]
        (folder / "textured_simple.obj").write_text("\n".join(lines) + "\n")
    return folder


def transform_pose_m(pose_m: np.ndarray, root_joint: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """DexYCB ``pose_m`` (51,) of a hand moved by a rigid ``transform`` (4, 4): new global rotation and translation.

    MANO rotates about the rest root joint ``root_joint`` (3,) m of the hand's shape:
    ``v = R (v_posed - J0) + J0 + t``; applying ``T = [Q | s]`` gives ``R' = Q R`` and ``t' = Q (J0 + t) + s - J0``.
    """
    out = np.array(pose_m, dtype=np.float64, copy=True)
    transform = np.asarray(transform, np.float64)
    out[:3] = matrix_to_axis_angle(transform[:3, :3] @ axis_angle_to_matrix(out[:3]))
    out[48:] = transform[:3, :3] @ (root_joint + out[48:]) + transform[:3, 3] - root_joint
    return out
