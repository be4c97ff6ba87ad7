"""HO3D v2 CodaLab submission: ``pred.zip`` holding ``pred.json`` = ``[joints_list, verts_list]``.

Per sample (docs/official-data.md §4.5, docs/libraries.md D.3): the prediction (metres, OpenCV camera frame,
manopth joint order) is root-aligned to the official root joint, converted to the OpenGL frame
(``diag(1, -1, -1)``), and its joints are reordered manopth -> HO3D; vertices keep the MANO order. Samples
are expected in ``evaluation.txt`` order; the zip is refused unless the count matches the evaluation set
(the server asserts the same). The official code zips ``hand_result_*.json``; the server wants ``pred.json``,
which is the entry name used here.
"""
import json
import zipfile
from pathlib import Path

import numpy as np

from utils.atomic import atomic_write
from utils.errors import DataError
from utils.hand_conventions import (HO3D_TO_MANOPTH_ORDER, MANOPTH_TO_HO3D_ORDER, NUM_HAND_JOINTS, NUM_MANO_VERTS,
                                    OPENGL_TO_OPENCV, reorder_joints)
from utils.metrics.hand import root_align

__all__ = ["HO3D_EVAL_SAMPLES", "ho3d_submission_arrays", "HO3DSubmission", "write_ho3d_submission",
           "load_ho3d_ground_truth"]

HO3D_EVAL_SAMPLES = 11524  # frames listed in HO3D v2 evaluation.txt


def ho3d_submission_arrays(pred_joints, pred_verts, root_joint):
    """Convert predictions to the submission convention.

    Args:
        pred_joints: (B, 21, 3) metres, OpenCV frame, manopth order. pred_verts: (B, 778, 3).
        root_joint: (B, 3) official root joint in the same (OpenCV) frame.

    Returns:
        joints (B, 21, 3) HO3D order, verts (B, 778, 3); metres, OpenGL frame (new arrays).
    """
    joints, verts = root_align(pred_joints, pred_verts, root_joint)
    if joints.shape[1] != NUM_HAND_JOINTS or verts.shape[1] != NUM_MANO_VERTS:
        raise ValueError(f"HO3D submission needs ({NUM_HAND_JOINTS} joints, {NUM_MANO_VERTS} verts) per sample, "
                         f"got {joints.shape} and {verts.shape}")
    to_opengl = OPENGL_TO_OPENCV  # the flip is its own inverse
    return reorder_joints(joints @ to_opengl.T, MANOPTH_TO_HO3D_ORDER), verts @ to_opengl.T


def write_ho3d_submission(zip_path, joints, verts, expected_count=HO3D_EVAL_SAMPLES, decimals=6):
    """Write ``pred.json`` = ``[joints_list, verts_list]`` into ``zip_path`` (atomically).

    Args:
        joints: (N, 21, 3), verts: (N, 778, 3), already in submission convention (``ho3d_submission_arrays``).
        expected_count: number of evaluation samples; any other N raises ``ValueError``.
        decimals: values are rounded to this many decimals of a metre (1e-6 m = 1 micrometre by default) to
            keep the JSON small (~4x smaller than full float repr); far below any reported precision.
    """
    joints, verts = np.asarray(joints, dtype=np.float64), np.asarray(verts, dtype=np.float64)
    if len(joints) != expected_count or len(verts) != expected_count:
        raise ValueError(f"HO3D submission {zip_path}: got {len(joints)} joint and {len(verts)} vertex predictions "
                         f"but the evaluation set has {expected_count} samples (evaluation.txt); refusing to write")
    if joints.shape[1:] != (NUM_HAND_JOINTS, 3) or verts.shape[1:] != (NUM_MANO_VERTS, 3):
        raise ValueError(f"HO3D submission {zip_path}: expected joints (N, {NUM_HAND_JOINTS}, 3) and verts "
                         f"(N, {NUM_MANO_VERTS}, 3), got {joints.shape} and {verts.shape}")
    if len(joints) and not np.all(joints[..., 2] < 0):
        raise ValueError(f"HO3D submission {zip_path}: joints must be in the OpenGL frame (all z < 0, the hand in "
                         f"front of the camera); {int(np.sum(joints[..., 2] >= 0))} coordinates have z >= 0")
    payload = json.dumps([np.round(joints, decimals).tolist(), np.round(verts, decimals).tolist()])
    with atomic_write(zip_path, mode="wb") as f:
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("pred.json", payload)


class HO3DSubmission:
    """Collects converted predictions batch by batch (float32 to halve memory), then writes the zip."""

    def __init__(self):
        self._joints, self._verts = [], []

    def __len__(self):
        return sum(len(j) for j in self._joints)

    def add(self, pred_joints, pred_verts, root_joint):
        """Add a batch; arguments as ``ho3d_submission_arrays``."""
        joints, verts = ho3d_submission_arrays(pred_joints, pred_verts, root_joint)
        self._joints.append(joints.astype(np.float32))
        self._verts.append(verts.astype(np.float32))

    def write(self, zip_path, expected_count=HO3D_EVAL_SAMPLES, decimals=6):
        """Write ``pred.zip``; see ``write_ho3d_submission``."""
        empty = (np.empty((0, NUM_HAND_JOINTS, 3)), np.empty((0, NUM_MANO_VERTS, 3)))
        joints = np.concatenate(self._joints) if self._joints else empty[0]
        verts = np.concatenate(self._verts) if self._verts else empty[1]
        write_ho3d_submission(zip_path, joints, verts, expected_count, decimals)


def _json_points(path) -> np.ndarray:
    """A JSON file of nested lists of finite numbers as float64; DataError naming the file otherwise."""
    try:
        points = np.asarray(json.loads(path.read_text()), dtype=np.float64)
    except (json.JSONDecodeError, TypeError, ValueError) as err:
        raise DataError(f"{path}: expected nested lists of numbers ({type(err).__name__}: {err})") from None
    if not np.all(np.isfinite(points)):
        raise DataError(f"{path}: holds non-finite values (NaN or infinity) in sample(s) "
                        f"{np.flatnonzero(~np.isfinite(points.reshape(len(points), -1)).all(1))[:8].tolist()}")
    return points


def load_ho3d_ground_truth(root):
    """The public HO3D v2 evaluation ground truth (``evaluation_xyz.json``, ``evaluation_verts.json``, released
    2024-11) converted to this project's convention, or None when the files are absent.

    Returns:
        joints (N, 21, 3) manopth order, verts (N, 778, 3); metres, OpenCV camera frame.
    """
    root = Path(root)
    xyz_file, verts_file = root / "evaluation_xyz.json", root / "evaluation_verts.json"
    if not (xyz_file.is_file() and verts_file.is_file()):
        return None
    joints, verts = (_json_points(path) for path in (xyz_file, verts_file))
    if joints.shape[1:] != (NUM_HAND_JOINTS, 3) or verts.shape[1:] != (NUM_MANO_VERTS, 3) or len(joints) != len(verts):
        raise DataError(f"{xyz_file} / {verts_file}: expected (N, 21, 3) and (N, 778, 3) arrays of the same N, "
                        f"got {joints.shape} and {verts.shape}")
    return reorder_joints(joints @ OPENGL_TO_OPENCV.T, HO3D_TO_MANOPTH_ORDER), verts @ OPENGL_TO_OPENCV.T
