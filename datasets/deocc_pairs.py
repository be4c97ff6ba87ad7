"""The de-occluded pair index: which training frames have a generated (de-occluded) partner image.

Written by the de-occluder tool (``data_creation``), read by the datasets in contrastive mode.
File format (JSON, UTF-8)::

    {"format": "unihope-deocc-pairs", "version": 1,
     "pairs": {"<sample key>": {"gen_image_path": "crops/000123.png",   # relative to the index file's folder
                                "ori_score": 12.3,     # hand error of the original crop (lower = better)
                                "gen_score": 9.8,      # same for the generated crop
                                "strength": 0.7}}}     # control strength used by the generator

* sample key: the dataset's key (DexYCB ``id_<n>``, HO3D ``SEQ/ID``);
* the generated image is the de-occluded version of the **un-augmented fused hand+object crop** of that
  frame as the network would see it (left hands already mirrored), any square size (resized to the input
  resolution with nearest-neighbour, as the official loader did with its 128 px crops);
* scores are used by the ``score`` / ``and`` / ``or`` filter rules (filter when
  ``gen_score + score_threshold - ori_score >= 0``).

File name under the dataset root (mirrors the official ``..._v{gen_version}[_p{gen_part}]`` naming; part 1 =
adaptive control strength, the unsuffixed default): ``deocc/{prefix}_train_v{gen_version}[_p{gen_part}].json``
with ``prefix`` = ``dexycb_{s0|s1|s3}`` or ``ho3d``.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from utils.atomic import atomic_write_json
from utils.errors import DataError

FORMAT = "unihope-deocc-pairs"
VERSION = 1
_FIELDS = ("gen_image_path", "ori_score", "gen_score", "strength")


@dataclass(frozen=True)
class PairEntry:
    """One frame's generated partner: absolute image path, scores (lower = better), control strength."""

    gen_image_path: str
    ori_score: float
    gen_score: float
    strength: float


def pair_index_path(root: str | Path, prefix: str, gen_version: int, gen_part: int) -> Path:
    """Where the pair index of a dataset lives (see module docstring)."""
    suffix = "" if gen_part == 1 else f"_p{gen_part}"
    return Path(root) / "deocc" / f"{prefix}_train_v{gen_version}{suffix}.json"


def load_pair_index(path: str | Path) -> dict[str, PairEntry]:
    """Read a pair index; image paths are resolved against the index file's folder.

    Raises:
        FileNotFoundError: naming the file.
        DataError: wrong format marker, an entry with a missing / non-numeric field, or an image path outside the
            index's folder (names file and key).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"de-occluded pair index not found: {path} (written by the de-occluder tool)")
    try:
        content = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: invalid JSON ({err})") from None
    if not isinstance(content, dict) or content.get("format") != FORMAT or not isinstance(content.get("pairs"), dict):
        raise DataError(f"{path}: expected a JSON object with format={FORMAT!r} and a 'pairs' object")
    pairs = {}
    for key, entry in content["pairs"].items():
        missing = [name for name in _FIELDS if not isinstance(entry, dict) or name not in entry]
        if missing:
            raise DataError(f"{path}: pair '{key}' lacks field(s) {missing}; expected {list(_FIELDS)}")
        scores = [entry[name] for name in _FIELDS[1:]]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in scores):
            raise DataError(f"{path}: pair '{key}': ori_score/gen_score/strength must be finite numbers, "
                             f"got {scores}")
        pairs[key] = PairEntry(str(path.parent / _inside_folder(entry["gen_image_path"], path, key)),
                               *(float(v) for v in scores))
    return pairs


def _inside_folder(image: object, path: Path, key: str) -> str:
    """``image`` if it is a relative path that stays inside the index's folder; DataError naming the file and pair
    otherwise (absolute paths, ``..`` parts)."""
    text = str(image).replace("\\", "/")
    if not isinstance(image, str) or not text or text.startswith("/") or ":" in text \
            or ".." in text.split("/"):
        raise DataError(f"{path}: pair '{key}': gen_image_path {image!r} must be a path relative to the index's "
                        f"folder without '..' (the index may only point at files inside {path.parent})")
    return text


def write_pair_index(path: str | Path, pairs: dict[str, PairEntry]) -> None:
    """Write a pair index atomically; ``gen_image_path`` is stored relative to the index folder (absolute image
    paths are converted, whether ``path`` itself is absolute or relative to the working directory; relative
    image paths are taken as already relative to the index folder). Images must lie inside the index folder, where
    :func:`load_pair_index` looks for them (DataError otherwise)."""
    path = Path(path)
    out = {}
    for key, entry in pairs.items():
        record = asdict(entry)
        image = Path(entry.gen_image_path)
        relative = os.path.relpath(image, os.path.abspath(path.parent)) if image.is_absolute() else str(image)
        record["gen_image_path"] = _inside_folder(relative, path, key)
        out[key] = record
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, {"format": FORMAT, "version": VERSION, "pairs": out})
