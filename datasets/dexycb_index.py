"""Compact numeric index of a DexYCB annotation file ``dex_ycb_{s}_{split}_data.json``, cached as ``.npz``.

The authors' annotation files hold one JSON record per sample (s0 train: ~400k records, several GB of text;
schema in docs/official-data.md §8.2). Loading them as Python dicts takes minutes and gigabytes, and every
data-loader worker would copy-on-write the dicts as it touches their reference counts. This module parses
the file once, streaming record by record, keeps only what the loader needs in a few numpy arrays, and
caches them beside the JSON as ``<json stem>.index.npz``. The cache stores the JSON's size and mtime and is
rebuilt when either changes (or when the index format changes). Workers forked from the main process share
the arrays' memory.

Paths: the records' ``color_file`` is reduced to (camera directory relative to the DexYCB root, frame number).
If the stored path is absolute (the toolkit writes ``$DEX_YCB_DIR/...``), the part from the subject folder
(``YYYYMMDD-subject-NN``) on is kept, so the files written on the authors' machines work anywhere.
"""
from __future__ import annotations

import json
import os
import re
import zipfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Iterator

import numpy as np

from utils.atomic import atomic_write
from utils.errors import DataError, MissingKeyError
from utils.ycb import YCB_CLASSES

INDEX_FORMAT_VERSION = 1
_CHUNK_CHARS = 1 << 22
_SUBJECT_DIR = re.compile(r"^\d{8}-subject-\d{2}$")
_COLOR_FILE = re.compile(r"^(?P<dir>.*)/color_(?P<frame>\d+)\.jpg$")
_KEY = re.compile(r"^id_(?P<n>\d+)$")
_FLOAT32_MAX = float(np.finfo(np.float32).max)  # larger values would become infinity in the float32 index


@dataclass(frozen=True)
class DexYCBIndex:
    """Per-sample arrays (N = number of samples, sorted by the integer of the ``id_<n>`` key).

    Attributes:
        key_ids: (N,) int64, ``n`` of the key ``id_<n>``.
        dirs: (D,) str, camera directories relative to the DexYCB root (``<subject>/<sequence>/<serial>``).
        dir_index: (N,) int32 into ``dirs``.
        frame: (N,) int32 frame number.
        intrinsics: (N, 4) float32 ``fx, fy, ppx, ppy`` (px).
        pose_m: (N, 51) float32 MANO ``[global aa, 45 PCA coefficients, translation m]``.
        betas: (N, 10) float32.
        joint_3d: (N, 21, 3) float32 metres, camera frame, manopth joint order.
        joint_2d: (N, 21, 2) float32 px.
        grasp_ycb_id: (N,) int16 YCB id (1-21) of the grasped object.
        grasp_pose: (N, 3, 4) float32 ``[R | t]`` object -> camera of the grasped object.
        is_left: (N,) bool.
    """

    key_ids: np.ndarray
    dirs: np.ndarray
    dir_index: np.ndarray
    frame: np.ndarray
    intrinsics: np.ndarray
    pose_m: np.ndarray
    betas: np.ndarray
    joint_3d: np.ndarray
    joint_2d: np.ndarray
    grasp_ycb_id: np.ndarray
    grasp_pose: np.ndarray
    is_left: np.ndarray

    def __len__(self) -> int:
        return len(self.key_ids)

    def key(self, i: int) -> str:
        return f"id_{int(self.key_ids[i])}"

    def keys(self) -> list[str]:
        return [f"id_{int(n)}" for n in self.key_ids]

    def color_file(self, i: int) -> str:
        return f"{self.dirs[self.dir_index[i]]}/color_{int(self.frame[i]):06d}.jpg"

    def label_file(self, i: int) -> str:
        return f"{self.dirs[self.dir_index[i]]}/labels_{int(self.frame[i]):06d}.npz"

    def object_seg_file(self, i: int) -> str:
        """The authors' grasped-object render: ``object_render/<dir>/grasp_object_seg_XXXXXX.png``."""
        return f"object_render/{self.dirs[self.dir_index[i]]}/grasp_object_seg_{int(self.frame[i]):06d}.png"

    def subset(self, keep: np.ndarray) -> "DexYCBIndex":
        """A new index with the samples selected by a boolean mask or integer array (string table shared)."""
        return DexYCBIndex(**{f.name: getattr(self, f.name) if f.name == "dirs" else getattr(self, f.name)[keep]
                              for f in fields(self)})


def iter_json_object(path: str | Path, chunk_chars: int = _CHUNK_CHARS) -> Iterator[tuple[str, object]]:
    """Yield ``(key, value)`` of a top-level JSON object one member at a time (memory ~ one chunk + value)."""
    decoder = json.JSONDecoder()
    with open(path, encoding="utf-8") as f:
        buf, pos, eof = "", 0, False

        def refill():
            nonlocal buf, pos, eof
            chunk = f.read(chunk_chars)
            eof = not chunk
            buf, pos = buf[pos:] + chunk, 0

        def peek() -> str:
            nonlocal pos
            while True:
                while pos < len(buf) and buf[pos] in " \t\r\n":
                    pos += 1
                if pos < len(buf) or eof:
                    return buf[pos] if pos < len(buf) else ""
                refill()

        def decode():
            nonlocal pos
            while True:
                try:
                    value, end = decoder.raw_decode(buf, pos)
                    if end < len(buf) or eof:
                        pos = end
                        return value
                except json.JSONDecodeError:
                    if eof:
                        raise DataError(f"{path}: invalid JSON near character offset {f.tell()}") from None
                refill()

        if peek() != "{":
            raise DataError(f"{path}: expected a JSON object of records {{'id_<n>': {{...}}, ...}}")
        pos += 1
        if peek() == "}":
            return
        while True:
            key = decode()
            if peek() != ":":
                raise DataError(f"{path}: expected ':' after key {key!r}")
            pos += 1
            peek()
            yield key, decode()
            separator = peek()
            pos += 1
            if separator == "}":
                return
            if separator != ",":
                raise DataError(f"{path}: expected ',' or '}}' after the record {key!r}")
            peek()


def relative_camera_dir(color_file: str, path: Path, key: str) -> tuple[str, int]:
    """``.../<subject>/<sequence>/<serial>/color_000012.jpg`` -> (``<subject>/<sequence>/<serial>``, 12)."""
    match = _COLOR_FILE.match(color_file.replace("\\", "/"))
    if match is None:
        raise DataError(f"{path}: record '{key}': color_file {color_file!r} does not end in "
                         f"'<camera dir>/color_XXXXXX.jpg'")
    parts = match["dir"].split("/")
    starts = [i for i, part in enumerate(parts) if _SUBJECT_DIR.match(part)]
    kept = parts[starts[-1]:] if starts else parts
    if any(part in ("", ".", "..") or ":" in part for part in kept):
        raise DataError(f"{path}: record '{key}': color_file {color_file!r} leaves the DexYCB root (an absolute path "
                        f"without a 'YYYYMMDD-subject-NN' folder, or '..'); expected a path inside the root")
    return "/".join(kept), int(match["frame"])


def _field(record: dict, name: str, size: int, path: Path, key: str) -> np.ndarray:
    """(size,) float32 values of a numeric field; DataError naming file, record and field unless they are ``size``
    finite numbers."""
    if name not in record:
        raise MissingKeyError(f"{path}: record '{key}' lacks field '{name}'")
    try:
        values = np.asarray(record[name])
    except ValueError:  # ragged nesting
        values = np.asarray(None)
    if values.dtype.kind not in "iuf":  # strings, booleans, null, ragged lists: numpy would convert some silently
        raise DataError(f"{path}: record '{key}': field '{name}' must hold numbers, got {record[name]!r:.80}")
    values = values.astype(np.float64).ravel()
    if values.size != size:
        raise DataError(f"{path}: record '{key}': field '{name}' has {values.size} values, expected {size}")
    if not np.all(np.abs(values) <= _FLOAT32_MAX):
        raise DataError(f"{path}: record '{key}': field '{name}' holds non-finite values (NaN or infinity) at "
                        f"positions {np.flatnonzero(~(np.abs(values) <= _FLOAT32_MAX))[:8].tolist()}")
    return values.astype(np.float32)


def _integer(record: dict, name: str, path: Path, key: str, low: int, high: int) -> int:
    """A whole-number field in ``[low, high]``; DataError naming file, record and field otherwise."""
    value = record[name]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise DataError(f"{path}: record '{key}': field '{name}' must be a whole number in [{low}, {high}], "
                        f"got {value!r:.80}")
    return value


def _parse_record(record: dict, path: Path, key: str) -> dict:
    for name in ("color_file", "intrinsics", "ycb_ids", "ycb_grasp_ind", "mano_side", "pose_y"):
        if name not in record:
            raise MissingKeyError(f"{path}: record '{key}' lacks field '{name}'")
    directory, frame = relative_camera_dir(record["color_file"], path, key)
    intr = record["intrinsics"]
    missing = [name for name in ("fx", "fy", "ppx", "ppy") if not isinstance(intr, dict) or name not in intr]
    if missing:
        raise MissingKeyError(f"{path}: record '{key}': intrinsics lacks {missing}")
    if not isinstance(record["ycb_ids"], list) or not isinstance(record["pose_y"], list):
        raise DataError(f"{path}: record '{key}': fields 'ycb_ids' and 'pose_y' must be lists")
    grasp = _integer(record, "ycb_grasp_ind", path, key, 0, min(len(record["ycb_ids"]), len(record["pose_y"])) - 1)
    if record["mano_side"] not in ("left", "right"):
        raise DataError(f"{path}: record '{key}': mano_side must be 'left' or 'right', got {record['mano_side']!r}")
    ycb_id = _integer({"ycb_ids": record["ycb_ids"][grasp]}, "ycb_ids", path, key, 1, len(YCB_CLASSES))
    intrinsics = _field({"intrinsics": [intr[name] for name in ("fx", "fy", "ppx", "ppy")]}, "intrinsics", 4, path,
                        key)
    if np.any(intrinsics[:2] <= 0):
        raise DataError(f"{path}: record '{key}': intrinsics fx, fy must be positive, got {intrinsics[:2].tolist()}")
    return dict(
        directory=directory, frame=frame, intrinsics=intrinsics,
        pose_m=_field(record, "pose_m", 51, path, key),
        betas=_field(record, "mano_betas", 10, path, key),
        joint_3d=_field(record, "joint_3d", 63, path, key).reshape(21, 3),
        joint_2d=_field(record, "joint_2d", 42, path, key).reshape(21, 2),
        grasp_ycb_id=ycb_id,
        grasp_pose=_field({"pose_y": record["pose_y"][grasp]}, "pose_y", 12, path, key).reshape(3, 4),
        is_left=record["mano_side"] == "left")


def build_index(json_path: str | Path) -> DexYCBIndex:
    """Parse an annotation file into a :class:`DexYCBIndex` (streaming; samples sorted by key number)."""
    path = Path(json_path)
    columns: dict[str, list] = {name: [] for name in ("key_ids", "intrinsics", "pose_m", "betas", "joint_3d",
                                                      "joint_2d", "grasp_ycb_id", "grasp_pose", "is_left")}
    dir_ids: dict[str, int] = {}
    dir_index, frames = [], []
    for key, record in iter_json_object(path):
        match = _KEY.match(key)
        if match is None:
            raise DataError(f"{path}: key {key!r} is not of the form 'id_<n>'")
        if not isinstance(record, dict):
            raise DataError(f"{path}: record '{key}' is not a JSON object")
        parsed = _parse_record(record, path, key)
        dir_index.append(dir_ids.setdefault(parsed.pop("directory"), len(dir_ids)))
        frames.append(parsed.pop("frame"))
        columns["key_ids"].append(int(match["n"]))
        for name, value in parsed.items():
            columns[name].append(value)
    dtypes = dict(key_ids=np.int64, intrinsics=np.float32, pose_m=np.float32, betas=np.float32,
                  joint_3d=np.float32, joint_2d=np.float32, grasp_ycb_id=np.int16, grasp_pose=np.float32,
                  is_left=np.bool_)
    shapes = dict(intrinsics=(4,), pose_m=(51,), betas=(10,), joint_3d=(21, 3), joint_2d=(21, 2), grasp_pose=(3, 4))
    arrays = {name: np.asarray(values, dtype=dtypes[name]).reshape((len(values),) + shapes.get(name, ()))
              for name, values in columns.items()}
    order = np.argsort(arrays["key_ids"], kind="stable")
    if len(order) > 1 and np.any(np.diff(arrays["key_ids"][order]) == 0):
        raise DataError(f"{path}: duplicate sample keys")
    arrays = {name: value[order] for name, value in arrays.items()}
    return DexYCBIndex(dirs=np.array(list(dir_ids), dtype=str), dir_index=np.asarray(dir_index, np.int32)[order],
                       frame=np.asarray(frames, np.int32)[order], **arrays)


def cache_path(json_path: str | Path) -> Path:
    json_path = Path(json_path)
    return json_path.with_name(json_path.stem + ".index.npz")


def _source_stamp(json_path: Path) -> np.ndarray:
    stat = json_path.stat()
    return np.array([INDEX_FORMAT_VERSION, stat.st_size, stat.st_mtime_ns], dtype=np.int64)


def write_npz_atomic(path: Path, arrays: dict) -> None:
    """``np.savez`` (uncompressed, no pickles) to ``path`` atomically (utils/atomic.py)."""
    with atomic_write(path, "wb") as f:
        np.savez(f, **arrays)


def read_index_cache(cache: Path, stamp: np.ndarray, names: list[str]) -> dict | None:
    """The arrays ``names`` (those present) of an index cache whose ``source_stamp`` equals ``stamp``; None when the
    cache is missing, stale, or unreadable (truncated, corrupt, object arrays, a missing array): it is then rebuilt.
    """
    if not cache.is_file():
        return None
    try:
        with np.load(cache, allow_pickle=False) as stored:
            if not np.array_equal(stored["source_stamp"], stamp):
                return None
            return {name: stored[name] for name in names if name in stored}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def load_index(json_path: str | Path) -> DexYCBIndex:
    """The index of an annotation file, from the ``.index.npz`` cache when it is up to date.

    The cache is rebuilt when the JSON's size or mtime (or the index format) changed. If the folder is not
    writable the index is built in memory only.

    Raises:
        FileNotFoundError: naming the annotation file.
    """
    json_path = Path(json_path)
    if not json_path.is_file():
        raise FileNotFoundError(f"DexYCB annotation file not found: {json_path} "
                                f"(written by data_creation/labels/create_dataset_dexycb.py or the authors' release)")
    stamp = _source_stamp(json_path)
    cache = cache_path(json_path)
    names = [fl.name for fl in fields(DexYCBIndex)]
    stored = read_index_cache(cache, stamp, names)
    if stored is not None and len(stored) == len(names):
        return DexYCBIndex(**stored)
    index = build_index(json_path)
    if os.access(cache.parent, os.W_OK):
        write_npz_atomic(cache, {"source_stamp": stamp, **{fl.name: getattr(index, fl.name) for fl in fields(index)}})
    return index
