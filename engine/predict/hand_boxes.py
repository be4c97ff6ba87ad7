"""Where the hands are: a boxes file (JSON or CSV), or the whole image as one hand.

One record per hand. JSON: a list of objects ``{"image": NAME, "box": [x1, y1, x2, y2], "side": "right" | "left",
"object_box": [x1, y1, x2, y2], "score": S, "intrinsics": [fx, fy, cx, cy]}`` (``side`` defaults to right;
``object_box``, ``score`` and the image's camera ``intrinsics`` are optional). CSV: a header with
``image,x1,y1,x2,y2`` and optionally ``side``, ``ox1,oy1,ox2,oy2`` (the object box, all four or none filled) and
``score``. ``image`` is the image's file name (or its path as given on the command
line); for a video it is the frame number, from 0. Boxes are pixels of the original image: the tight box around
the hand (what a hand detector returns); the crop around it is enlarged as in training.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from engine.predict import PredictInputError

SIDES = ("right", "left")
JSON_KEYS = {"image", "box", "side", "object_box", "score", "intrinsics"}
CSV_BOX = ("x1", "y1", "x2", "y2")
CSV_OBJECT_BOX = ("ox1", "oy1", "ox2", "oy2")
CSV_COLUMNS = {"image", *CSV_BOX, "side", *CSV_OBJECT_BOX, "score"}
# The training crop is 1.5 times the hand's box (datasets.hand_object_sample.HAND_CROP_FACTOR); a whole-image
# "hand box" is that much smaller than the image so the crop is the whole image.
FULL_IMAGE_HAND_FRACTION = 1.0 / 1.5


@dataclass(frozen=True)
class HandBox:
    """One hand to reconstruct: ``box`` (4,) px ``[x1, y1, x2, y2]``, ``side``, optional ``object_box`` (4,) px,
    detector ``score`` and the image's ``intrinsics`` (4,) ``[fx, fy, cx, cy]`` px."""

    box: np.ndarray
    side: str = "right"
    object_box: Optional[np.ndarray] = None
    score: Optional[float] = None
    intrinsics: Optional[np.ndarray] = None

    @property
    def is_left(self) -> bool:
        return self.side == "left"


def full_image_box(width: int, height: int, side: str = "right") -> HandBox:
    """The whole image as one hand crop (pre-cropped pictures): a centred square hand box of side
    ``max(W, H) / 1.5``, whose training-style crop is the whole image."""
    half = max(width, height) * FULL_IMAGE_HAND_FRACTION / 2.0
    centre = np.array([width / 2.0, height / 2.0])
    return HandBox(np.concatenate([centre - half, centre + half]).astype(np.float32), side)


def _box(values, where: str) -> np.ndarray:
    """Validated ``[x1, y1, x2, y2]`` (finite, x2 > x1, y2 > y1) as float32; errors name ``where``."""
    try:
        box = np.asarray([float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        raise PredictInputError(f"{where}: expected 4 numbers [x1, y1, x2, y2], got {values!r}") from None
    if box.shape != (4,) or not np.all(np.isfinite(box)):
        raise PredictInputError(f"{where}: expected 4 finite numbers [x1, y1, x2, y2], got {values!r}")
    if box[2] <= box[0] or box[3] <= box[1]:
        raise PredictInputError(f"{where}: expected x2 > x1 and y2 > y1, got {box.tolist()}")
    return box.astype(np.float32)


def _side(value, where: str) -> str:
    side = "right" if value in (None, "") else str(value).strip().lower()
    if side not in SIDES:
        raise PredictInputError(f"{where}: side must be one of {SIDES}, got {value!r}")
    return side


def _score(value, where: str) -> Optional[float]:
    if value in (None, ""):
        return None
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise PredictInputError(f"{where}: score must be a number, got {value!r}") from None
    if not math.isfinite(score):
        raise PredictInputError(f"{where}: score must be finite, got {value!r}")
    return score


def _intrinsics(values, where: str) -> Optional[np.ndarray]:
    if values is None:
        return None
    try:
        camera = np.asarray([float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        camera = np.zeros(0)
    if camera.shape != (4,) or not np.all(np.isfinite(camera)) or camera[0] <= 0 or camera[1] <= 0:
        raise PredictInputError(f"{where}: 'intrinsics' must be [fx, fy, cx, cy] with fx, fy > 0, got {values!r}")
    return camera


def _image_key(value, where: str) -> str:
    if value is None or str(value).strip() == "":
        raise PredictInputError(f"{where}: missing 'image' (the image file name, or the frame number of a video)")
    return str(value).strip()


def _json_records(path: Path) -> list[tuple[str, HandBox]]:
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise PredictInputError(f"boxes file {path}: not valid JSON ({error})") from None
    if not isinstance(raw, list):
        raise PredictInputError(f"boxes file {path}: expected a JSON list of hand records, got {type(raw).__name__}")
    records = []
    for index, item in enumerate(raw):
        where = f"boxes file {path}, record {index}"
        if not isinstance(item, dict):
            raise PredictInputError(f"{where}: expected an object with 'image' and 'box', got {item!r}")
        unknown = sorted(set(item) - JSON_KEYS)
        if unknown:
            raise PredictInputError(f"{where}: unknown key(s) {unknown}; known: {sorted(JSON_KEYS)}")
        if "box" not in item:
            raise PredictInputError(f"{where}: missing 'box' [x1, y1, x2, y2]")
        object_box = item.get("object_box")
        records.append((_image_key(item.get("image"), where), HandBox(
            _box(item["box"], f"{where}, 'box'"), _side(item.get("side"), where),
            None if object_box is None else _box(object_box, f"{where}, 'object_box'"),
            _score(item.get("score"), where), _intrinsics(item.get("intrinsics"), where))))
    return records


def _csv_records(path: Path) -> list[tuple[str, HandBox]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in reader.fieldnames or []]
        missing = sorted({"image", *CSV_BOX} - set(columns))
        unknown = sorted(set(columns) - CSV_COLUMNS)
        if missing or unknown:
            raise PredictInputError(f"boxes file {path}: header {columns} lacks {missing} or has unknown {unknown}; "
                                    f"expected image,x1,y1,x2,y2[,side][,ox1,oy1,ox2,oy2][,score]")
        records = []
        for line, row in enumerate(reader, start=2):
            row = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
            where = f"boxes file {path}, line {line}"
            object_values = [row.get(k, "") for k in CSV_OBJECT_BOX]
            if any(object_values) and not all(object_values):
                raise PredictInputError(f"{where}: the object box needs all of {CSV_OBJECT_BOX} or none")
            object_box = _box(object_values, f"{where}, object box") if all(object_values) else None
            records.append((_image_key(row.get("image"), where), HandBox(
                _box([row[k] for k in CSV_BOX], f"{where}, box"), _side(row.get("side"), where), object_box,
                _score(row.get("score"), where))))
    return records


def read_boxes_file(path: str | Path) -> dict[str, list[HandBox]]:
    """``{image name or frame number: [HandBox, ...]}`` from a ``.json`` or ``.csv`` boxes file (module docstring).

    Raises :class:`PredictInputError` naming the file and the record / line on any malformed entry.
    """
    path = Path(path)
    if not path.is_file():
        raise PredictInputError(f"boxes file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix not in (".json", ".csv"):
        raise PredictInputError(f"boxes file {path}: expected a .json or .csv file, got '{suffix}'")
    hands: dict[str, list[HandBox]] = {}
    for key, hand in (_json_records(path) if suffix == ".json" else _csv_records(path)):
        hands.setdefault(key, []).append(hand)
    return hands


def hands_for(boxes: dict[str, list[HandBox]], *names: str) -> list[HandBox]:
    """The hands listed under the first of ``names`` present (e.g. the path as given, then the file name)."""
    for name in names:
        if name in boxes:
            return boxes[name]
    return []
