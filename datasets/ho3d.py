"""HO3D v2 as hand-object samples: ``train/`` (split into train / val) and the official ``evaluation/`` set.

Files read under the dataset root (reference: docs/official-data.md §1.2, §2.9; docs/libraries.md D):

* ``train/<SEQ>/meta/<ID>.pkl`` (MANO ``handPose`` 48 full axis-angle, flat-hand-mean convention; ``handBeta``;
  ``handJoints3D`` 21x3 in HO3D joint order; ``camMat``; ``objRot``/``objTrans``/``objName``), and
  ``train/<SEQ>/rgb/<ID>.png``; frames whose meta has no object or hand annotation are skipped;
* ``evaluation.txt`` and ``evaluation/<SEQ>/meta/<ID>.pkl`` (``handBoundingBox``, root joint only, camera,
  object pose) + ``rgb/<ID>.png``;
* ``models/<name>/points.xyz``; ``grasp_trainval.npy`` (train, val) / ``grasp_test.npy``;
  ``hand_occ_{train|val|test}.npy`` (optional, default 1.0). Metas are read with the restricted unpickler.

All HO3D annotations are in an OpenGL camera frame; they are converted to OpenCV with ``diag(1, -1, -1)``:
3D points ``p @ C``, object poses ``C [R | t]``, MANO global rotation ``C R``. Joints are reordered from HO3D
order to the project's (manopth) order. All hands are right hands.

Train / val split (the authors' split is private): the training sequences are grouped by their letter
prefix (``ABF10`` -> ``ABF``); in every group of at least :data:`VAL_MIN_GROUP` sequences, the last one in
natural order (``MC6`` after ``MC5``) is held out for ``val``. On HO3D v2 this holds out ABF14, BB14, GPMF14,
GSF14, MC6, MDF14, ShSu14, SiBF14, SM5, SMu42 (if present): deterministic, documented, every object and most
subjects seen in both parts.

Training object masks: HO3D has no grasped-object render; the mask is the filled convex hull of the projected
object model points (exact for convex objects, a slight over-estimate otherwise).

Per-split record arrays are cached as ``<root>/ho3d_{split}.index.npz``, rebuilt when the set of meta files
or their sizes / modification times change.
"""
from __future__ import annotations

import re
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Optional

import numpy as np

from datasets.base import HandObjectDataset
from datasets.deocc_pairs import PairEntry, load_pair_index, pair_index_path
from datasets.dexycb_index import read_index_cache, write_npz_atomic
from datasets.geometry import convex_silhouette, transform_points
from datasets.hand_object_sample import HandObjectRecord, SampleSettings
from datasets.label_files import grasp_flags, occlusion_ratios, read_points_xyz
from datasets.registry import dataset_root, register_dataset, sample_settings
from utils.errors import DataError, MissingKeyError
from utils.hand_conventions import HO3D_TO_MANOPTH_ORDER, NUM_BETAS, NUM_POSE_PARAMS, OPENGL_TO_OPENCV, reorder_joints
from utils.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from utils.safe_pickle import load_pickle
from utils.ycb import YCB_CLASSES, bbox21_from_points

SPLITS = ("train", "val", "test")
VAL_MIN_GROUP = 4
OBJ_CLS_WIDTH = 21  # obj_cls: object name left-padded with spaces to 21 characters, as uint8
INDEX_FORMAT_VERSION = 1
_YCB_IDS = {name: ycb_id for ycb_id, name in YCB_CLASSES.items()}
_SEQUENCE = re.compile(r"^(?P<prefix>[A-Za-z]+)(?P<number>\d*)$")
_FRAME_KEY = re.compile(r"^[\w-]+/[\w-]+$")  # evaluation.txt line: SEQUENCE/FRAME, both plain names


def natural_key(name: str) -> tuple:
    match = _SEQUENCE.match(name)
    return (match["prefix"], int(match["number"] or -1)) if match else (name, -1)


def val_sequences(train_sequences: list[str]) -> list[str]:
    """The held-out sequences: the last (natural order) of every prefix group of >= VAL_MIN_GROUP sequences."""
    groups: dict[str, list[str]] = {}
    for name in sorted(train_sequences, key=natural_key):
        groups.setdefault(natural_key(name)[0], []).append(name)
    return sorted(members[-1] for members in groups.values() if len(members) >= VAL_MIN_GROUP)


def opengl_pose_to_opencv(rotation_vector: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """HO3D object pose (Rodrigues ``objRot``, ``objTrans``, OpenGL) -> (4, 4) object -> OpenCV camera."""
    pose = np.eye(4)
    pose[:3, :3] = axis_angle_to_matrix(np.asarray(rotation_vector, np.float64).reshape(3))
    pose[:3, 3] = np.asarray(translation, np.float64).reshape(3)
    pose[:3] = OPENGL_TO_OPENCV @ pose[:3]
    return pose


def opengl_mano_pose_to_opencv(hand_pose: np.ndarray) -> np.ndarray:
    """HO3D ``handPose`` (48,) -> the same hand with its global rotation expressed in the OpenCV frame."""
    pose = np.array(hand_pose, np.float64).reshape(NUM_POSE_PARAMS)
    pose[:3] = matrix_to_axis_angle(OPENGL_TO_OPENCV @ axis_angle_to_matrix(pose[:3]))
    return pose


def encode_object_name(name: str) -> np.ndarray:
    """``obj_cls`` of the official HO3D loader: the name right-aligned in 21 characters, as uint8 (21,)."""
    return np.frombuffer(name.rjust(OBJ_CLS_WIDTH).encode("ascii"), dtype=np.uint8).copy()


def _meta_value(meta: dict, key: str, path: Path):
    if key not in meta:
        raise MissingKeyError(f"{path}: missing key '{key}'")
    return meta[key]


def _meta_array(meta: dict, key: str, path: Path, shape: tuple) -> np.ndarray:
    """float64 array of ``shape`` from a meta entry; DataError naming the file and key unless it holds that many
    finite numbers."""
    value = _meta_value(meta, key, path)
    try:
        array = np.asarray(value)
    except ValueError:  # ragged nesting
        array = np.asarray(None)
    if array.dtype.kind not in "iuf":  # strings, booleans, None: numpy would convert some silently
        raise DataError(f"{path}: '{key}' must hold numbers, got {type(value).__name__} of {array.dtype}")
    array = array.astype(np.float64)
    if array.size != int(np.prod(shape)):
        raise DataError(f"{path}: '{key}' has shape {array.shape}, expected {shape}")
    if not np.all(np.isfinite(array)):
        raise DataError(f"{path}: '{key}' holds non-finite values (NaN or infinity)")
    return array.reshape(shape)


@dataclass(frozen=True)
class HO3DIndex:
    """Per-frame arrays of one split (N frames, OpenCV frame, metres, manopth joint order).

    ``joints_3d`` (N, 21, 3), ``mano_pose`` (N, 48), ``betas`` (N, 10) exist for train / val only;
    ``hand_box`` (N, 4) (the official ``handBoundingBox``) and ``root_joint`` (N, 3) for every split.
    """

    keys: np.ndarray            # (N,) 'SEQ/ID'
    intrinsics: np.ndarray      # (N, 3, 3)
    root_joint: np.ndarray      # (N, 3)
    object_pose: np.ndarray     # (N, 4, 4)
    object_id: np.ndarray       # (N,) YCB id
    hand_box: Optional[np.ndarray] = None
    joints_3d: Optional[np.ndarray] = None
    mano_pose: Optional[np.ndarray] = None
    betas: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return len(self.keys)


def split_keys(root: Path, split: str) -> list[str]:
    """Frame keys ``SEQ/ID`` of a split: evaluation.txt for test; train/*/meta/*.pkl by sequence for train/val."""
    if split == "test":
        listing = root / "evaluation.txt"
        if not listing.is_file():
            raise FileNotFoundError(f"HO3D evaluation list not found: {listing}")
        keys = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
        wrong = [key for key in keys if not _FRAME_KEY.match(key)]
        if wrong:
            raise DataError(f"{listing}: {len(wrong)} line(s) are not 'SEQUENCE/FRAME' names inside the dataset "
                            f"(no '..', no absolute path), e.g. {wrong[0]!r}")
        return keys
    train_dir = root / "train"
    if not train_dir.is_dir():
        raise FileNotFoundError(f"HO3D training folder not found: {train_dir}")
    sequences = sorted((p.name for p in train_dir.iterdir() if p.is_dir()), key=natural_key)
    held_out = set(val_sequences(sequences))
    chosen = [s for s in sequences if (s in held_out) == (split == "val")]
    return [f"{s}/{p.stem}" for s in chosen for p in sorted((train_dir / s / "meta").glob("*.pkl"))]


def _frame_file(root: Path, split: str, key: str, folder: str, suffix: str) -> Path:
    sequence, frame = key.split("/")
    return Path(root) / ("evaluation" if split == "test" else "train") / sequence / folder / f"{frame}{suffix}"


def meta_file(root: Path, split: str, key: str) -> Path:
    """``<root>/{train|evaluation}/<SEQ>/meta/<ID>.pkl`` of the frame ``key`` = ``SEQ/ID``."""
    return _frame_file(root, split, key, "meta", ".pkl")


def image_file(root: Path, split: str, key: str) -> Path:
    """``<root>/{train|evaluation}/<SEQ>/rgb/<ID>.png`` of the frame ``key`` = ``SEQ/ID``."""
    return _frame_file(root, split, key, "rgb", ".png")


def _read_frame(path: Path, annotated: bool) -> Optional[dict]:
    """One meta pickle -> converted arrays, or None for a frame without annotation."""
    meta = load_pickle(path)
    if not isinstance(meta, dict):
        raise DataError(f"{path}: expected a pickled dict")
    if meta.get("objRot") is None or (annotated and meta.get("handPose") is None):
        return None
    name = str(_meta_value(meta, "objName", path))
    if name not in _YCB_IDS:
        raise DataError(f"{path}: unknown objName {name!r}; expected a YCB name such as '006_mustard_bottle'")
    out = dict(intrinsics=_meta_array(meta, "camMat", path, (3, 3)),
               object_pose=opengl_pose_to_opencv(_meta_array(meta, "objRot", path, (3,)),
                                                 _meta_array(meta, "objTrans", path, (3,))),
               object_id=_YCB_IDS[name])
    if annotated:
        joints = _meta_array(meta, "handJoints3D", path, (21, 3))
        joints = reorder_joints(joints @ OPENGL_TO_OPENCV, HO3D_TO_MANOPTH_ORDER)
        out.update(joints_3d=joints, root_joint=joints[0],
                   mano_pose=opengl_mano_pose_to_opencv(_meta_array(meta, "handPose", path, (NUM_POSE_PARAMS,))),
                   betas=_meta_array(meta, "handBeta", path, (NUM_BETAS,)))
    else:
        out.update(root_joint=_meta_array(meta, "handJoints3D", path, (3,)) @ OPENGL_TO_OPENCV,
                   hand_box=_meta_array(meta, "handBoundingBox", path, (4,)))
    return out


def build_ho3d_index(root: Path, split: str) -> HO3DIndex:
    """Read every meta pickle of a split into an :class:`HO3DIndex` (unannotated frames dropped)."""
    columns: dict[str, list] = {}
    keys = []
    for key in split_keys(root, split):
        frame = _read_frame(meta_file(root, split, key), annotated=split != "test")
        if frame is None:
            continue
        keys.append(key)
        for name, value in frame.items():
            columns.setdefault(name, []).append(value)
    arrays = {name: np.asarray(values, np.int16 if name == "object_id" else np.float32)
              for name, values in columns.items()}
    if not keys:
        raise DataError(f"{root}: no annotated HO3D frames in split '{split}'")
    return HO3DIndex(keys=np.array(keys, dtype=str), **arrays)


def _stamp(root: Path, split: str) -> np.ndarray:
    """Index format, number of meta files, total size and newest mtime of the split's metas (and list file)."""
    paths = [meta_file(root, split, key) for key in split_keys(root, split)]
    stats = [p.stat() for p in paths if p.is_file()]
    listing = (root / "evaluation.txt").stat() if split == "test" else None
    return np.array([INDEX_FORMAT_VERSION, len(stats), sum(s.st_size for s in stats),
                     max([s.st_mtime_ns for s in stats], default=0), listing.st_mtime_ns if listing else 0], np.int64)


def load_ho3d_index(root: str | Path, split: str) -> HO3DIndex:
    """The split's index, from ``<root>/ho3d_{split}.index.npz`` when it matches the meta files."""
    root = Path(root)
    stamp = _stamp(root, split)
    cache = root / f"ho3d_{split}.index.npz"
    stored = read_index_cache(cache, stamp, [f.name for f in fields(HO3DIndex)])
    required = [f.name for f in fields(HO3DIndex) if f.default is MISSING]
    if stored is not None and all(name in stored for name in required):
        return HO3DIndex(**stored)
    index = build_ho3d_index(root, split)
    if cache.parent.is_dir():
        arrays = {f.name: getattr(index, f.name) for f in fields(index) if getattr(index, f.name) is not None}
        write_npz_atomic(cache, {"source_stamp": stamp, **arrays})
    return index


class HO3DDataset(HandObjectDataset):
    """HO3D v2 samples (official keys). Args are plain values; :func:`build_ho3d` reads the config.

    Args:
        root: HO3D_v2 folder.
        split: ``train`` / ``val`` (from ``train/``, see module docstring) or ``test`` (``evaluation/``).
        settings: sample settings (``rotation="uniform"`` for HO3D, augmentation only for train).
        input_mode: None, ``"h"`` or ``"ho"`` (forces the grasp flag).
        pairs: de-occluded pair index (contrastive training) or None.
    """

    def __init__(self, root: str | Path, split: str, settings: SampleSettings, input_mode: Optional[str] = None,
                 pairs: Optional[dict[str, PairEntry]] = None):
        if split not in SPLITS:
            raise KeyError(f"unknown HO3D split {split!r}; expected one of {SPLITS}")
        super().__init__(settings, pairs)
        self.root, self.split = Path(root), split
        self.index = load_ho3d_index(self.root, split)
        keys = [str(k) for k in self.index.keys]
        grasp_file = "grasp_test.npy" if split == "test" else "grasp_trainval.npy"
        self.grasping = grasp_flags(keys, self.root / grasp_file, input_mode)
        self.occ_ratio = occlusion_ratios(keys, self.root / f"hand_occ_{split}.npy")
        self.object_points = {int(i): read_points_xyz(self.root / "models" / YCB_CLASSES[int(i)] / "points.xyz")
                              for i in np.unique(self.index.object_id)}
        self.object_keypoints = {i: bbox21_from_points(points) for i, points in self.object_points.items()}

    def __len__(self) -> int:
        return len(self.index)

    def keys(self) -> list[str]:
        return [str(k) for k in self.index.keys]

    def image_path(self, key: str) -> Path:
        return image_file(self.root, self.split, key)

    def record(self, i: int) -> HandObjectRecord:
        index, key = self.index, str(self.index.keys[i])
        object_id = int(index.object_id[i])
        common = dict(key=key, image_path=str(self.image_path(key)), intrinsics=index.intrinsics[i].astype(np.float64),
                      root_joint=index.root_joint[i], is_left=False,
                      object_pose=index.object_pose[i].astype(np.float64),
                      object_keypoints=self.object_keypoints[object_id], object_class=object_id,
                      grasping=bool(self.grasping[i]), occ_ratio=float(self.occ_ratio[i]))
        if index.joints_3d is None:
            return HandObjectRecord(hand_points_2d=index.hand_box[i].reshape(2, 2), **common)
        joints_3d = index.joints_3d[i].astype(np.float64)
        uvw = joints_3d @ common["intrinsics"].T
        joints_2d = (uvw[:, :2] / uvw[:, 2:]).astype(np.float32)
        return HandObjectRecord(hand_points_2d=joints_2d, joints_2d=joints_2d, joints_3d=index.joints_3d[i],
                                mano_pose=index.mano_pose[i], mano_betas=index.betas[i], **common)

    def object_mask(self, i: int, record: HandObjectRecord, image_shape: tuple) -> np.ndarray:
        points = transform_points(record.object_pose, self.object_points[record.object_class])
        mask = convex_silhouette(points, record.intrinsics, image_shape[1], image_shape[0])
        return mask.astype(np.uint8) * 255

    def finish_sample(self, record: HandObjectRecord, sample: dict) -> dict:
        out = {key: value for key, value in sample.items() if key not in ("affinetrans", "cropped_intrinsics")}
        rotation = np.eye(4)
        rotation[:3, :3] = sample["aug_rot_mat"][:3]
        out.update(cam_intr=sample["cropped_intrinsics"], root_joint_ori=sample["root_joint"][:3].copy(),
                   obj_cls=encode_object_name(YCB_CLASSES[record.object_class]),
                   obj_bbox3d=record.object_keypoints.astype(np.float32),
                   obj_pose=(rotation @ record.object_pose).astype(np.float32))
        return out


@register_dataset("HO3D_HOPE")
def build_ho3d(cfg, split: str) -> HO3DDataset:
    """HO3D from the config: ``data.root_dir`` (default ``data/HO3D_v2``), uniform rotation augmentation,
    de-occluded pairs when ``data.contrastive`` (training)."""
    root = dataset_root(cfg, "data/HO3D_v2")
    settings = sample_settings(cfg, split, rotation="uniform")
    pairs = None
    if settings.contrastive:
        pairs = load_pair_index(pair_index_path(root, "ho3d", cfg.data.gen_version, cfg.data.gen_part))
    return HO3DDataset(root, split, settings, cfg.data.input_mode, pairs)
