"""Reading the per-sample label files and images shared by the DexYCB and HO3D datasets.

Label files (authors' release or ``data_creation``): ``grasp_*.npy`` (key -> bool, True = the hand grasps
the object) and ``hand_occ_*.npy`` (key -> float visible-hand ratio, 1.0 = unoccluded). Both are ``np.save``
of a dict, i.e. a pickled 0-d object array; they are read through :func:`utils.safe_pickle.load_npy`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Sequence

import cv2
from PIL import Image
import numpy as np

from utils.atomic import atomic_write
from utils.config import ConfigError
from utils.errors import DataError, MissingKeyError
from utils.safe_pickle import load_npy

JPEG_START, JPEG_END = b"\xff\xd8", b"\xff\xd9"  # start / end-of-image markers
INPUT_MODES = {"ho": True, "h": False}  # data.input_mode -> grasp flag forced on every sample
DEFAULT_OCC_RATIO = 1.0


def load_label_dict(path: str | Path) -> dict:
    """Load a ``key -> value`` label file; raises ValueError naming the file if it is not a dict."""
    labels = load_npy(path)
    if not isinstance(labels, dict):
        raise DataError(f"{path}: expected a pickled dict key -> label (np.save of a dict), "
                         f"got {type(labels).__name__}")
    return labels


def write_label_dict(path: str | Path, labels: dict) -> Path:
    """Write ``labels`` (sample key -> bool / float) as the authors' 0-d object-array ``.npy`` label file
    (``grasp_*.npy``, ``hand_occ_*.npy``), atomically; the counterpart of :func:`load_label_dict`."""
    path = Path(path)
    with atomic_write(path, "wb") as f:
        np.save(f, np.array(labels, dtype=object), allow_pickle=True)
    return path


def labels_for_keys(labels: dict, keys: Sequence[str], path: str | Path, check: Callable[[object], bool],
                    expected: str, dtype) -> np.ndarray:
    """Array of the labels of ``keys`` in order.

    Raises:
        MissingKeyError: a key without a label (names the file and the key).
        DataError: a label for which ``check`` is False (names the file, the key, the value and ``expected``).
    """
    out = np.empty(len(keys), dtype=dtype)
    for i, key in enumerate(keys):
        if key not in labels:
            raise MissingKeyError(f"{path}: no label for sample '{key}' ({len(labels)} labels in the file)")
        value = labels[key]
        if not check(value):
            raise DataError(f"{path}: the label of sample '{key}' is {value!r:.60}; expected {expected}")
        out[i] = value
    return out


def is_grasp_label(value) -> bool:
    """True/False (Python or numpy bool), or the integers 0 / 1."""
    return isinstance(value, (bool, np.bool_)) or (isinstance(value, (int, np.integer)) and value in (0, 1))


def is_visible_ratio(value) -> bool:
    """A real number in [0, 1] (NaN and infinity are not)."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_)) \
        and 0.0 <= float(value) <= 1.0


def grasp_flags(keys: Sequence[str], path: Path, input_mode: Optional[str]) -> np.ndarray:
    """Per-sample grasp flags: from ``path``, or forced by ``input_mode`` ("ho" -> all True, "h" -> all False)."""
    if input_mode is not None:
        if input_mode not in INPUT_MODES:
            raise ConfigError(f"data.input_mode must be one of {sorted(INPUT_MODES)} or null, got {input_mode!r}")
        return np.full(len(keys), INPUT_MODES[input_mode], dtype=bool)
    if not Path(path).is_file():
        raise FileNotFoundError(f"grasp label file not found: {path} (make it with "
                                f"data_creation/labels/prepare_grasp_dexycb.py, or set data.input_mode to 'h' or 'ho')")
    return labels_for_keys(load_label_dict(path), keys, path, is_grasp_label, "true/false (or 0/1)", bool)


def occlusion_ratios(keys: Sequence[str], path: Path) -> np.ndarray:
    """Per-sample visible-hand ratios from ``path``; 1.0 for every sample when the file does not exist."""
    if not Path(path).is_file():
        return np.full(len(keys), DEFAULT_OCC_RATIO, dtype=np.float32)
    return labels_for_keys(load_label_dict(path), keys, path, is_visible_ratio, "a visible-hand ratio in [0, 1]",
                           np.float32)


def read_rgb(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB image.

    Raises:
        FileNotFoundError: naming the path, if it does not exist.
        DataError: naming the path, if it cannot be decoded or is a truncated JPEG (libjpeg would decode the part
            that is there and fill the rest, with only a warning on stderr).
    """
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except (FileNotFoundError, IsADirectoryError):
        raise FileNotFoundError(f"image not found: {path}") from None
    if data[:2].tobytes() == JPEG_START and not data[-16:].tobytes().rstrip(b"\0\r\n").endswith(JPEG_END):
        raise DataError(f"{path}: truncated JPEG (no end-of-image marker); the file is incomplete")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"{path}: not a readable image (corrupt or of an unknown format)")
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
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    with Image.open(path) as image:
        return image.size
