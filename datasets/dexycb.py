"""DexYCB (setups s0 / s1 / s3, splits train / val / test) as hand-object samples.

Files read under the dataset root (reference: docs/official-data.md §1.1; docs/libraries.md C.1):

* ``dex_ycb_{s}_{split}_data.json`` — the authors' (or ``data_creation/labels/create_dataset_dexycb.py``'s) records,
  through the cached numeric index of :mod:`datasets.dexycb_index`;
* ``<subject>/<sequence>/<serial>/color_XXXXXX.jpg`` — the RGB frame (its size is read from the file);
* ``models/<ycb name>/points.xyz`` — object points, for the 21 box keypoints;
* ``grasp_{s}_{split}.npy`` (key -> bool) unless ``input_mode`` forces the crop type;
* ``hand_occ_{s}_{split}.npy`` (key -> visible-hand ratio), optional (default 1.0);
* training only: ``object_render/<dir>/grasp_object_seg_XXXXXX.png`` (the authors' render of the grasped
  object); if absent, the visible object pixels of ``labels_XXXXXX.npz`` (``seg == ycb id``) are used instead;
* contrastive training: the de-occluded pair index (:mod:`datasets.deocc_pairs`).

Training keeps a sample only if its 1.5x 2D-joint box survives the official box sanitisation (§1.1);
val / test keep every sample. ``val`` reads ``dex_ycb_{s}_val_data.json`` (the toolkit's val split; the
official loader read the test file there), so models can be selected without the test set.
"""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Optional

import numpy as np

from datasets.base import HandObjectDataset
from datasets.deocc_pairs import PairEntry, load_pair_index, pair_index_path
from datasets.dexycb_index import DexYCBIndex, load_index
from datasets.hand_object_sample import HandObjectRecord, SampleSettings
from datasets.label_files import grasp_flags, image_size, occlusion_ratios, read_mask, read_points_xyz
from datasets.registry import dataset_root, register_dataset, sample_settings
from utils.errors import DataError, MissingKeyError
from utils.mano_io import ManoAssets, load_mano_assets, resolve_mano_root
from utils.mano_pose import dexycb_pose_to_right_flat
from utils.ycb import bbox21_from_points, ycb_class_name

SETUPS = ("s0", "s1", "s3")
SPLITS = ("train", "val", "test")
TRAIN_FILTER_FACTOR = 1.5
# The official DexYCB test branch does not emit obj_p2d (HO3D's does).
_DROPPED_KEYS = {"train": ("affinetrans", "cropped_intrinsics"), "eval": ("cropped_intrinsics", "obj_p2d")}


def annotation_file(root: Path, setup: str, split: str) -> Path:
    return Path(root) / f"dex_ycb_{setup}_{split}_data.json"


def joint_box_survives(joints_2d: np.ndarray, width: np.ndarray, height: np.ndarray) -> np.ndarray:
    """Official training filter on (N, 21, 2) joints: does the 1.5x xywh joint box survive sanitisation?

    Box: centre of the joint extent, width/height scaled by 1.5 (``get_bbox``); sanitised like the official
    ``process_bbox``: ``x1 = max(0, x)``, ``x2 = min(W - 1, x1 + max(0, w - 1))`` (same for y); dropped if
    ``w * h <= 0`` or ``x2 < x1`` or ``y2 < y1``. Returns (N,) bool.
    """
    low, high = joints_2d.min(axis=1), joints_2d.max(axis=1)
    size = (high - low) * TRAIN_FILTER_FACTOR
    start = (low + high) / 2.0 - size / 2.0
    x1, y1 = np.maximum(0.0, start[:, 0]), np.maximum(0.0, start[:, 1])
    x2 = np.minimum(width - 1, x1 + np.maximum(0.0, size[:, 0] - 1))
    y2 = np.minimum(height - 1, y1 + np.maximum(0.0, size[:, 1] - 1))
    return (size[:, 0] * size[:, 1] > 0) & (x2 >= x1) & (y2 >= y1)


def training_subset(index: DexYCBIndex, root: Path) -> DexYCBIndex:
    """Apply :func:`joint_box_survives` with each camera directory's image size (read from one image)."""
    sizes = np.zeros((len(index.dirs), 2), dtype=np.float64)
    for dir_id in np.unique(index.dir_index):
        first = int(np.flatnonzero(index.dir_index == dir_id)[0])
        sizes[dir_id] = image_size(root / index.color_file(first))
    width, height = sizes[index.dir_index, 0], sizes[index.dir_index, 1]
    return index.subset(joint_box_survives(index.joint_2d, width, height))


class DexYCBDataset(HandObjectDataset):
    """DexYCB samples (official keys). Args are plain values; :func:`build_dexycb` reads the config.

    Args:
        root: DexYCB root folder (holding the subject folders, ``models/`` and the label files).
        setup: ``s0``, ``s1`` or ``s3``.
        split: ``train``, ``val`` or ``test``.
        mano_right, mano_left: MANO assets (PCA components of each side, right ``hands_mean``).
        settings: sample construction settings (``settings.augment`` must be True exactly for ``train``).
        input_mode: None (crop by the grasp labels), ``"h"`` or ``"ho"``.
        pairs: de-occluded pair index for contrastive training, or None.
    """

    def __init__(self, root: str | Path, setup: str, split: str, mano_right: ManoAssets, mano_left: ManoAssets,
                 settings: SampleSettings, input_mode: Optional[str] = None,
                 pairs: Optional[dict[str, PairEntry]] = None):
        if setup not in SETUPS or split not in SPLITS:
            raise KeyError(f"unknown DexYCB split {setup}_{split}; setups {SETUPS}, splits {SPLITS}")
        super().__init__(settings, pairs)
        self.root = Path(root)
        self.setup, self.split = setup, split
        index = load_index(annotation_file(self.root, setup, split))
        self.index = training_subset(index, self.root) if split == "train" else index
        keys = self.index.keys()
        self.grasping = grasp_flags(keys, self.root / f"grasp_{setup}_{split}.npy", input_mode)
        self.occ_ratio = occlusion_ratios(keys, self.root / f"hand_occ_{setup}_{split}.npy")
        self.hands_components = {"right": mano_right.hands_components, "left": mano_left.hands_components}
        self.right_hands_mean = mano_right.hands_mean
        self.object_points = {int(ycb_id): read_points_xyz(self.root / "models" / ycb_class_name(ycb_id) / "points.xyz")
                              for ycb_id in np.unique(self.index.grasp_ycb_id)}
        self.object_keypoints = {i: bbox21_from_points(points) for i, points in self.object_points.items()}

    def __len__(self) -> int:
        return len(self.index)

    def keys(self) -> list[str]:
        return self.index.keys()

    def record(self, i: int) -> HandObjectRecord:
        index = self.index
        fx, fy, cx, cy = index.intrinsics[i].astype(np.float64)
        side = "left" if index.is_left[i] else "right"
        pose = dexycb_pose_to_right_flat(index.pose_m[i], side, self.hands_components[side], self.right_hands_mean)
        object_pose = np.eye(4)
        object_pose[:3] = index.grasp_pose[i]
        joints_2d = index.joint_2d[i]
        return HandObjectRecord(
            key=index.key(i), image_path=str(self.root / index.color_file(i)),
            intrinsics=np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]]),
            hand_points_2d=joints_2d, root_joint=index.joint_3d[i, 0], is_left=bool(index.is_left[i]),
            object_pose=object_pose, object_keypoints=self.object_keypoints[int(index.grasp_ycb_id[i])],
            object_class=int(index.grasp_ycb_id[i]), grasping=bool(self.grasping[i]),
            occ_ratio=float(self.occ_ratio[i]), joints_2d=joints_2d, joints_3d=index.joint_3d[i],
            mano_pose=pose.astype(np.float32), mano_betas=index.betas[i])

    def object_mask(self, i: int, record: HandObjectRecord, image_shape: tuple) -> np.ndarray:
        render = self.root / self.index.object_seg_file(i)
        if render.is_file():
            return read_mask(render)
        label_path = self.root / self.index.label_file(i)
        if not label_path.is_file():
            raise FileNotFoundError(f"no object mask for sample '{record.key}': neither {render} nor {label_path}")
        try:
            with np.load(label_path, allow_pickle=False) as labels:
                seg = labels["seg"] if "seg" in labels else None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
            raise DataError(f"{label_path}: not a readable .npz of numeric arrays (sample '{record.key}'; truncated, "
                            f"corrupt or holding object arrays: {err})") from None
        if seg is None:
            raise MissingKeyError(f"{label_path}: no 'seg' array (sample '{record.key}')")
        return np.where(seg == record.object_class, 255, 0).astype(np.uint8)

    def finish_sample(self, record: HandObjectRecord, sample: dict) -> dict:
        mode = "train" if self.split == "train" else "eval"
        out = {key: value for key, value in sample.items() if key not in _DROPPED_KEYS[mode]}
        if mode == "eval":
            out.update(obj_bbox3d=record.object_keypoints.astype(np.float32),
                       obj_pose=record.object_pose.astype(np.float32),
                       obj_cls=np.int64(record.object_class),
                       cam_intr=record.intrinsics.astype(np.float32))
        return out


@register_dataset("DEX_YCB_HOPE")
def build_dexycb(cfg, split: str) -> DexYCBDataset:
    """DexYCB from the config: ``data.root_dir`` (default ``data/DexYCB``), ``data.data_split``, MANO from
    ``base.mano_root`` / ``$MANO_ROOT``, de-occluded pairs when ``data.contrastive`` (training)."""
    root = dataset_root(cfg, "data/DexYCB")
    mano_root = resolve_mano_root(cfg.base.mano_root)
    settings = sample_settings(cfg, split, rotation="dexycb")
    pairs = None
    if settings.contrastive:
        pairs = load_pair_index(pair_index_path(root, f"dexycb_{cfg.data.data_split}", cfg.data.gen_version,
                                                cfg.data.gen_part))
    return DexYCBDataset(root, cfg.data.data_split, split, load_mano_assets(mano_root, "right"),
                         load_mano_assets(mano_root, "left"), settings, cfg.data.input_mode, pairs)
