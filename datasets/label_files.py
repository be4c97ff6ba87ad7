"""Reading the per-sample label files and images shared by the DexYCB and HO3D datasets.

Label files (authors' release or ``data_creation``): ``grasp_*.npy`` (key -> bool, True = the hand grasps
the object) and ``hand_occ_*.npy`` (key -> float visible-hand ratio, 1.0 = unoccluded). Both are ``np.save``
of a dict, i.e. a pickled 0-d object array; they are read through :func:`utils.safe_pickle.load_npy`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np

from utils.safe_pickle import load_npy

INPUT_MODES = {"ho": True, "h": False}  # data.input_mode -> grasp flag forced on every sample
DEFAULT_OCC_RATIO = 1.0


def load_label_dict(path: str | Path) -> dict:
    """Load a ``key -> value`` label file; raises ValueError naming the file if it is not a dict."""
    labels = load_npy(path)
    if not isinstance(labels, dict):
        raise ValueError(f"{path}: expected a pickled dict key -> label (np.save of a dict), "
                         f"got {type(labels).__name__}")
    return labels


def write_label_dict(path: str | Path, labels: dict) -> Path:
    """Write ``labels`` (sample key -> bool / float) as the authors' 0-d object-array ``.npy`` label file
    (``grasp_*.npy``, ``hand_occ_*.npy``), atomically; the counterpart of :func:`load_label_dict`."""
    from utils.atomic import atomic_write

    path = Path(path)
    with atomic_write(path, "wb") as f:
        np.save(f, np.array(labels, dtype=object), allow_pickle=True)
    return path


def labels_for_keys(labels: dict, keys: Sequence[str], path: str | Path, dtype) -> np.ndarray:
    """Array of the labels of ``keys`` in order; a missing key raises KeyError naming the file and the key."""
    out = np.empty(len(keys), dtype=dtype)
    for i, key in enumerate(keys):
        if key not in labels:
            raise KeyError(f"{path}: no label for sample '{key}' ({len(labels)} labels in the file)")
        out[i] = labels[key]
    return out


def grasp_flags(keys: Sequence[str], path: Path, input_mode: Optional[str]) -> np.ndarray:
    """Per-sample grasp flags: from ``path``, or forced by ``input_mode`` ("ho" -> all True, "h" -> all False)."""
    if input_mode is not None:
        if input_mode not in INPUT_MODES:
            raise ValueError(f"data.input_mode must be one of {sorted(INPUT_MODES)} or null, got {input_mode!r}")
        return np.full(len(keys), INPUT_MODES[input_mode], dtype=bool)
    if not Path(path).is_file():
        raise FileNotFoundError(f"grasp label file not found: {path} (make it with "
                                f"data_creation/labels/prepare_grasp_dexycb.py, or set data.input_mode to 'h' or 'ho')")
    return labels_for_keys(load_label_dict(path), keys, path, bool)


def occlusion_ratios(keys: Sequence[str], path: Path) -> np.ndarray:
    """Per-sample visible-hand ratios from ``path``; 1.0 for every sample when the file does not exist."""
    if not Path(path).is_file():
        return np.full(len(keys), DEFAULT_OCC_RATIO, dtype=np.float32)
    return labels_for_keys(load_label_dict(path), keys, path, np.float32)


def read_rgb(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB image; FileNotFoundError naming the path if it is missing, truncated or not an image.

    The bytes are decoded with ``cv2.imdecode``, which refuses a truncated JPEG; ``cv2.imread`` would fill the
    missing part with grey and only print a warning.
    """
    path = Path(path)
    data = np.fromfile(path, dtype=np.uint8) if path.is_file() else np.empty(0, np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise FileNotFoundError(f"image not found, truncated or unreadable: {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_mask(path: str | Path) -> np.ndarray:
    """(H, W) uint8 single-channel image; FileNotFoundError naming the path if it cannot be read."""
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise FileNotFoundError(f"mask image not found or unreadable: {path}")
    return mask


def read_points_xyz(path: str | Path) -> np.ndarray:
    """Object model points ``points.xyz`` (one ``x y z`` per line, metres) -> (P, 3) float64."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"object model points not found: {path}")
    points = np.loadtxt(path, dtype=np.float64, ndmin=2)
    if points.ndim != 2 or points.shape[1] < 3 or len(points) == 0:
        raise ValueError(f"{path}: expected lines of 'x y z', got an array of shape {points.shape}")
    return points[:, :3]


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image from its header."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    with Image.open(path) as image:
        return image.size
