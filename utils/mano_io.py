"""Reading the MANO model files (``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl``) without chumpy.

The files are Python-2 pickles from https://mano.is.tue.mpg.de (licence forbids redistribution, so users
download them). ``shapedirs`` in them is a chumpy ``Select`` over a ``Ch``; the restricted unpickler of
:mod:`utils.safe_pickle` replaces those by inert stubs and :func:`utils.safe_pickle.chumpy_to_array`
evaluates them. Nothing else from the pickle can run code.

Where the folder comes from (never a path relative to a hard-coded location): an explicit argument
(``--mano_root`` / ``cfg.base.mano_root``), else the environment variable ``MANO_ROOT``.
For a download-free trial, ``python -m data_creation.standin_mano.make_standin_mano --out data/mano_standin`` writes a
stand-in asset in the same format.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utils.errors import DataError
from utils.hand_conventions import (MANO_DOWNLOAD_URL, MANO_FILE_NAMES, MANO_SIDES, NUM_BETAS, NUM_MANO_FACES,
                                    NUM_MANO_JOINTS, NUM_MANO_VERTS)
from utils.safe_pickle import chumpy_to_array, load_pickle

MANO_PICKLE_GROUPS = ("numpy", "scipy_sparse", "chumpy", "builtins")
MANO_ROOT_ENV = "MANO_ROOT"
STANDIN_HINT = "python -m data_creation.standin_mano.make_standin_mano --out data/mano_standin"

# key -> expected shape, checked after chumpy / sparse values are converted to dense arrays.
_EXPECTED_SHAPES = {
    "v_template": (NUM_MANO_VERTS, 3),
    "f": (NUM_MANO_FACES, 3),
    "J_regressor": (NUM_MANO_JOINTS, NUM_MANO_VERTS),
    "weights": (NUM_MANO_VERTS, NUM_MANO_JOINTS),
    "kintree_table": (2, NUM_MANO_JOINTS),
    "shapedirs": (NUM_MANO_VERTS, 3, NUM_BETAS),
    "posedirs": (NUM_MANO_VERTS, 3, 9 * (NUM_MANO_JOINTS - 1)),
    "hands_components": (45, 45),
    "hands_mean": (45,),
}


class ManoFileError(DataError):
    """A MANO file has a missing key or an unexpected shape; the message names the file and the key."""


@dataclass(frozen=True, eq=False)
class ManoAssets:
    """Arrays of one MANO hand model, as plain numpy (float64 / int64), metres, MANO template frame.

    Attributes:
        v_template: (778, 3) rest-pose vertices.
        faces: (1538, 3) int64 triangle vertex ids.
        J_regressor: (16, 778) dense joint regressor.
        weights: (778, 16) linear-blend-skinning weights.
        kintree_parents: (16,) int64 parent joint of each joint, -1 for the root.
        shapedirs: (778, 3, 10) shape blend shapes (first 10 components).
        posedirs: (778, 3, 135) pose blend shapes (15 joints x 9 entries of R - I).
        hands_components: (45, 45) PCA basis of the finger pose, rows are components.
        hands_mean: (45,) mean finger pose, axis-angle.
        side: 'right' or 'left'.
    """

    v_template: np.ndarray
    faces: np.ndarray
    J_regressor: np.ndarray
    weights: np.ndarray
    kintree_parents: np.ndarray
    shapedirs: np.ndarray
    posedirs: np.ndarray
    hands_components: np.ndarray
    hands_mean: np.ndarray
    side: str


def resolve_mano_root(explicit: str | os.PathLike | None) -> Path:
    """Return the MANO model folder: ``explicit`` if given, else ``$MANO_ROOT``.

    Raises:
        FileNotFoundError: if neither is set, or the folder does not exist; the message says where it was
            looked for and where to get the files.
    """
    source = "the mano_root argument / cfg.base.mano_root"
    if explicit is None:
        explicit = os.environ.get(MANO_ROOT_ENV) or None
        source = f"the environment variable {MANO_ROOT_ENV}"
    if explicit is None:
        raise FileNotFoundError(
            f"no MANO model folder given: pass --mano_root / set cfg.base.mano_root, or set the environment "
            f"variable {MANO_ROOT_ENV} to the folder holding MANO_RIGHT.pkl and MANO_LEFT.pkl "
            f"(download 'Models & Code' from {MANO_DOWNLOAD_URL}, the .pkl files are in mano_v1_2/models/; "
            f"for a trial without download, generate a stand-in with `{STANDIN_HINT}`)")
    root = Path(explicit).expanduser().absolute()
    if not root.is_dir():
        raise FileNotFoundError(
            f"MANO model folder {root} (from {source}) does not exist; it must hold MANO_RIGHT.pkl and "
            f"MANO_LEFT.pkl from {MANO_DOWNLOAD_URL} (mano_v1_2/models/), or a stand-in made with "
            f"`{STANDIN_HINT}`")
    return root


def mano_file_path(mano_root: str | os.PathLike, side: str) -> Path:
    """Path of the pickle for ``side`` ('right' -> MANO_RIGHT.pkl, 'left' -> MANO_LEFT.pkl)."""
    if side not in MANO_SIDES:
        raise ValueError(f"side must be one of {MANO_SIDES}, got {side!r}")
    return Path(mano_root) / MANO_FILE_NAMES[side]


def load_mano_assets(mano_root: str | os.PathLike, side: str) -> ManoAssets:
    """Read ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl`` from ``mano_root`` into :class:`ManoAssets`.

    Raises:
        FileNotFoundError: the file is missing (message: the path looked at and where to download it).
        utils.safe_pickle.UnsafePickleError: the pickle references a class a MANO file cannot contain.
        ManoFileError: a key is missing or an array has an unexpected shape.
    """
    path = mano_file_path(mano_root, side)
    if not path.is_file():
        raise FileNotFoundError(
            f"MANO model file not found: {path} ({side} hand). Download 'Models & Code' from "
            f"{MANO_DOWNLOAD_URL} and put {path.name} from mano_v1_2/models/ into {path.parent}, "
            f"or generate a stand-in with `{STANDIN_HINT}`")
    raw = load_pickle(path, groups=MANO_PICKLE_GROUPS)
    if not isinstance(raw, dict):
        raise ManoFileError(f"{path}: expected a pickled dict, got {type(raw).__name__}")
    arrays = {key: _read_array(raw, key, path) for key in _EXPECTED_SHAPES}
    return ManoAssets(
        v_template=arrays["v_template"].astype(np.float64),
        faces=arrays["f"].astype(np.int64),
        J_regressor=arrays["J_regressor"].astype(np.float64),
        weights=arrays["weights"].astype(np.float64),
        kintree_parents=_parents_from_kintree(arrays["kintree_table"]),
        shapedirs=arrays["shapedirs"].astype(np.float64),
        posedirs=arrays["posedirs"].astype(np.float64),
        hands_components=arrays["hands_components"].astype(np.float64),
        hands_mean=arrays["hands_mean"].astype(np.float64),
        side=side,
    )


def _read_array(raw: dict, key: str, path: Path) -> np.ndarray:
    if key not in raw:
        raise ManoFileError(f"{path}: missing key {key!r} (a MANO file has {sorted(_EXPECTED_SHAPES)} and more)")
    value = chumpy_to_array(raw[key])
    expected = _EXPECTED_SHAPES[key]
    if value.shape != expected:
        raise ManoFileError(f"{path}: key {key!r} has shape {value.shape}, expected {expected}")
    return value


def _parents_from_kintree(kintree_table: np.ndarray) -> np.ndarray:
    """Row 0 of ``kintree_table`` as int64 parents; the root's parent (uint32 -1 in the file) becomes -1."""
    parents = np.asarray(kintree_table[0]).astype(np.int64)
    parents[(parents < 0) | (parents >= NUM_MANO_JOINTS)] = -1
    return parents
