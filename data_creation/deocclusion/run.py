"""The de-occlusion run: grasping training frames -> candidate images per control strength -> the best one
(lowest score) stored as a PNG crop, a per-frame result file, and the pair index the loaders read.

Output layout (``index`` = the pair index path, e.g. ``<root>/deocc/dexycb_s0_train_v1.json``; ``<stem>`` its
name without ``.json``)::

    <index>                                  pair index (datasets/deocc_pairs.py format), written by rank 0
    <stem>/crops/<key>.png                   chosen de-occluded crop, store_res x store_res RGB
    <stem>/results/<key>.json                per-frame result: status, scores, strength, every candidate
    <stem>/sheets/<key>.png                  visual check of the first frames (sheets.py)
    <stem>.shard<r>of<w>.json                per-rank pair shard (merged into <index>, then removed)
    <stem>/summary.json                      counts of the last run

A result file records ``status`` (``generated`` / ``failed``), ``error`` (failed), ``strength``, ``ori_score``,
``gen_score``, the official ``ori_/gen_`` ``MPJPE, PA_MPJPE, MPVPE, PA_MPVPE`` when the scorer gives them,
``seed`` and ``candidates`` (``strength`` + metrics, or ``error``; ``chosen`` on the kept one). A frame whose
result exists (and, if generated, whose crop exists) is finished: reruns skip it (failed ones too, unless
``retry_failed``). Failed or non-finite candidates are recorded and never become pairs.
"""
from __future__ import annotations

import io
import json
import logging
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
from PIL import Image

from data_creation.deocclusion.conditions import DeocclusionInputs, DepthRenderer, deocclusion_inputs
from data_creation.deocclusion.pipeline import Deoccluder
from data_creation.deocclusion.selection import (OFFICIAL_METRIC_NAMES, Scorer, checked_metrics, lowest_score,
                                                 record_metrics)
from data_creation.deocclusion.sheets import write_sheet
from datasets.deocc_pairs import PairEntry, load_pair_index, write_pair_index
from datasets.hand_object_sample import SampleSettings, build_sample
from datasets.label_files import read_rgb
from utils.atomic import atomic_write, atomic_write_json

LOGGER = logging.getLogger(__name__)
_KEY_PATTERN = re.compile(r"^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*$")


@dataclass(frozen=True)
class RunSettings:
    """Plain settings of a run (the CLI fills them).

    strengths: candidate ControlNet conditioning scales. gen_res: generator input side (px, multiple of 8).
    store_res: stored crop side (px; the training input size). mask_dilation: mask dilation as a fraction of
    ``gen_res``. seed: base seed (frame seed = seed + position of the frame in the key list). sheets: number
    of leading frames that get a visual-check sheet. retry_failed: redo frames recorded as failed.
    """

    strengths: tuple = (0.4, 0.55, 0.7, 0.85, 1.0)
    gen_res: int = 512
    store_res: int = 128
    mask_dilation: float = 0.04
    seed: int = 0
    sheets: int = 8
    retry_failed: bool = False


@dataclass(frozen=True)
class Tools:
    """What a frame is processed with: the generator, the scorer, the GT hand model and the depth renderer."""

    deoccluder: Deoccluder
    scorer: Scorer
    mano_layer: torch.nn.Module
    render_depth: DepthRenderer


class OutputLayout:
    """Paths of a run's outputs (see the module docstring)."""

    def __init__(self, index_path: str | Path):
        self.index_path = Path(index_path).resolve()
        self.folder = self.index_path.with_suffix("")

    @staticmethod
    def key_path(key: str) -> str:
        if not _KEY_PATTERN.match(key) or any(part in (".", "..") for part in key.split("/")):
            raise ValueError(f"sample key {key!r} cannot name an output file (letters, digits, _ . - and / only)")
        return key

    def crop_path(self, key: str) -> Path:
        return self.folder / "crops" / f"{self.key_path(key)}.png"

    def result_path(self, key: str) -> Path:
        return self.folder / "results" / f"{self.key_path(key)}.json"

    def sheet_path(self, key: str) -> Path:
        return self.folder / "sheets" / f"{self.key_path(key)}.png"

    def shard_path(self, rank: int, world: int) -> Path:
        return self.index_path.with_name(f"{self.folder.name}.shard{rank}of{world}.json")

    @property
    def summary_path(self) -> Path:
        return self.folder / "summary.json"


def grasping_frames(dataset) -> list[tuple[int, str]]:
    """(dataset index, key) of every grasping frame, in dataset order."""
    frames = []
    for i in range(len(dataset)):
        record = dataset.record(i)
        if record.grasping:
            frames.append((i, record.key))
    return frames


def finished_result(layout: OutputLayout, key: str, retry_failed: bool) -> Optional[dict]:
    """The frame's recorded result if the frame needs no work, else None."""
    path = layout.result_path(key)
    if not path.is_file():
        return None
    result = json.loads(path.read_text())
    if result.get("status") == "generated":
        return result if layout.crop_path(key).is_file() else None
    return None if retry_failed else result


def stored_image(generated: np.ndarray, store_res: int) -> np.ndarray:
    """Generator output (R, R, 3) float in [0, 1] -> (store_res, store_res, 3) uint8 (area / bicubic resize)."""
    image = Image.fromarray(np.round(np.clip(generated, 0.0, 1.0) * 255.0).astype(np.uint8))
    if image.size != (store_res, store_res):
        resample = Image.Resampling.BOX if image.size[0] > store_res else Image.Resampling.BICUBIC
        image = image.resize((store_res, store_res), resample)
    return np.asarray(image)


def generate_candidates(inputs: DeocclusionInputs, deoccluder: Deoccluder, strengths: Sequence[float], seed: int,
                        store_res: int) -> tuple[list[dict], list[Optional[np.ndarray]]]:
    """One candidate per strength: entries ``{"strength"}`` (+ ``error`` when it failed) and stored images."""
    entries, images = [], []
    for strength in strengths:
        entry = {"strength": float(strength)}
        image = None
        try:
            generated = deoccluder.generate(inputs.crop, inputs.inpaint_mask, inputs.control, strength, seed)
            if np.isfinite(generated).all():
                image = stored_image(generated, store_res)
            else:
                entry["error"] = "non-finite (NaN/inf) generator output"
        except Exception as err:  # a failed generation is recorded, not fatal for the run
            entry["error"] = f"{type(err).__name__}: {err}"
        entries.append(entry)
        images.append(image)
    return entries, images


def choose_candidate(key: str, sample: dict, entries: list[dict], images: list[Optional[np.ndarray]],
                     scorer: Scorer) -> dict:
    """Score the original and the successful candidates; fill the entries; return the result fields.

    Returns ``{"status": "failed", "error"}`` when no candidate has a finite score, else ``status``,
    ``strength``, ``ori_*`` / ``gen_*`` metrics and ``chosen`` (index into ``entries``).
    """
    ok = [i for i, image in enumerate(images) if image is not None]
    if not ok:
        return {"status": "failed", "error": "every candidate failed"}
    stack = [np.asarray(sample["img"], np.float32)] + [images[i].transpose(2, 0, 1) / np.float32(255.0) for i in ok]
    metrics = checked_metrics(scorer(torch.from_numpy(np.stack(stack)), sample), len(stack), key)
    if not np.isfinite(metrics["score"][0]):
        return {"status": "failed", "error": "the original image has a non-finite score"}
    for row, i in enumerate(ok, start=1):
        if np.isfinite(metrics["score"][row]):
            entries[i].update({OFFICIAL_METRIC_NAMES[name]: float(v[row]) for name, v in metrics.items()})
        else:
            entries[i]["error"] = "non-finite score"
    scores = [entries[i].get("score", float("nan")) for i in ok]
    best = lowest_score(scores)
    if best is None:
        return {"status": "failed", "error": "no candidate has a finite score"}
    chosen = ok[best]
    entries[chosen]["chosen"] = True
    return {"status": "generated", "strength": entries[chosen]["strength"], "chosen": chosen,
            **record_metrics(metrics, 0, best + 1)}


def _write_png(path: Path, image: np.ndarray) -> None:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, mode="wb") as f:
        f.write(buffer.getvalue())


def process_frame(dataset, index: int, position: int, tools: Tools, settings: RunSettings,
                  layout: OutputLayout) -> dict:
    """De-occlude one frame and write its crop (if any), result file and (early frames) sheet; returns the result."""
    record = dataset.record(index)
    seed = settings.seed + position
    result: dict[str, Any] = {"key": record.key, "seed": seed}
    inputs, entries, images = None, [], []
    try:
        image = read_rgb(record.image_path)
        inputs = deocclusion_inputs(record, image, dataset.object_mask(index, record, image.shape[:2]),
                                    tools.mano_layer, tools.render_depth, settings.gen_res,
                                    int(round(settings.mask_dilation * settings.gen_res)))
        sample = build_sample(record, image, SampleSettings(res=settings.store_res), np.random.default_rng(0))
        sample["key"] = record.key
        entries, images = generate_candidates(inputs, tools.deoccluder, settings.strengths, seed,
                                              settings.store_res)
        outcome = choose_candidate(record.key, sample, entries, images, tools.scorer)
    except Exception as err:  # recorded as a failed frame; the run goes on
        outcome = {"status": "failed", "error": f"{type(err).__name__}: {err}"}
    chosen = outcome.pop("chosen", None)
    result.update(outcome, candidates=entries)
    if chosen is not None:
        _write_png(layout.crop_path(record.key), images[chosen])
    else:
        LOGGER.warning("de-occlusion of %s failed: %s", record.key, result["error"])
    if inputs is not None and position < settings.sheets:
        write_sheet(layout.sheet_path(record.key), inputs.crop, inputs.inpaint_mask, inputs.control, entries,
                    images)
    layout.result_path(record.key).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(layout.result_path(record.key), result)
    return result


def pair_entry(layout: OutputLayout, result: dict) -> PairEntry:
    return PairEntry(str(layout.crop_path(result["key"])), result["ori_score"], result["gen_score"],
                     result["strength"])


def run_shard(dataset, frames: Sequence[tuple[int, str]], tools: Tools, settings: RunSettings,
              layout: OutputLayout, rank: int = 0, world: int = 1,
              progress: Callable = lambda items, **kwargs: items) -> Counter:
    """Process ``frames[rank::world]`` (skipping finished ones) and write this rank's pair shard.

    Returns counts over this rank's frames: ``frames``, ``resumed`` (already finished), ``generated``,
    ``failed``, ``score_filtered`` (generated pairs with ``gen_score >= ori_score``, which the ``score`` filter
    rule at threshold 0 drops).
    """
    counts = Counter(frames=0, resumed=0, generated=0, failed=0, score_filtered=0)
    pairs = {}
    mine = list(range(rank, len(frames), world))
    for position in progress(mine, desc=f"de-occluding (rank {rank})"):
        index, key = frames[position]
        counts["frames"] += 1
        result = finished_result(layout, key, settings.retry_failed)
        if result is None:
            result = process_frame(dataset, index, position, tools, settings, layout)
        else:
            counts["resumed"] += 1
        counts[result["status"]] += 1
        if result["status"] == "generated":
            pairs[key] = pair_entry(layout, result)
            counts["score_filtered"] += int(result["gen_score"] >= result["ori_score"])
    layout.index_path.parent.mkdir(parents=True, exist_ok=True)
    write_pair_index(layout.shard_path(rank, world), pairs)
    return counts


def merge_shards(layout: OutputLayout, world: int) -> int:
    """Merge the ``world`` rank shards into the pair index (atomic), remove them; returns the number of pairs."""
    pairs = {}
    shards = [layout.shard_path(rank, world) for rank in range(world)]
    for shard in shards:
        pairs.update(load_pair_index(shard))
    write_pair_index(layout.index_path, dict(sorted(pairs.items())))
    for shard in shards:
        shard.unlink()
    return len(pairs)
