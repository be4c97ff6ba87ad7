"""Common ``torch.utils.data.Dataset`` plumbing of the hand-object datasets.

A subclass provides the records (:meth:`HandObjectDataset.record`), the object mask of a training frame,
and its split-specific extra keys; this class reads the image, looks up the de-occluded partner, calls the
shared mapper :func:`datasets.hand_object_sample.build_sample`, and converts the result to tensors. Every sample
carries its dataset key (DexYCB ``id_<n>``, HO3D ``SEQ/ID``) under :data:`SAMPLE_KEY`, so errors about a batch
(the training loop's non-finite loss guard) can name its samples.

Randomness: each process (main or data-loader worker) draws augmentations from its own
``numpy.random.Generator`` seeded from ``torch.initial_seed()`` the first time it needs one, so workers
never share a stream and ``torch.manual_seed`` makes a run reproducible.
"""
from __future__ import annotations

import os
from typing import Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from datasets.deocc_pairs import PairEntry
from datasets.hand_object_sample import HandObjectRecord, SampleSettings, build_sample
from datasets.label_files import read_rgb


SAMPLE_KEY = "sample_key"  # batch key of the samples' dataset keys (a list of str after collation)


def to_tensors(sample: dict) -> dict:
    """numpy arrays / scalars -> torch tensors (dtypes kept: float32, int64, bool, uint8); strings unchanged."""
    return {key: _to_tensor(value) for key, value in sample.items()}


def _to_tensor(value):
    if isinstance(value, str):
        return value
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    return torch.tensor(value)


class HandObjectDataset(Dataset):
    """Base class: ``settings`` say how samples are built, ``pairs`` is the de-occluded pair index or None."""

    def __init__(self, settings: SampleSettings, pairs: Optional[dict[str, PairEntry]] = None):
        self.settings = settings
        self.pairs = pairs
        self._rng: Optional[np.random.Generator] = None
        self._rng_pid: Optional[int] = None

    def __len__(self) -> int:
        raise NotImplementedError

    def record(self, index: int) -> HandObjectRecord:
        raise NotImplementedError

    def object_mask(self, index: int, record: HandObjectRecord, image_shape: tuple) -> Optional[np.ndarray]:
        """(H, W) uint8 mask of the grasped object for training, un-mirrored; None when unavailable."""
        raise NotImplementedError

    def finish_sample(self, record: HandObjectRecord, sample: dict) -> dict:
        """Add / drop split-specific keys (e.g. test-time object-evaluation extras)."""
        raise NotImplementedError

    def rng(self) -> np.random.Generator:
        if self._rng is None or self._rng_pid != os.getpid():
            self._rng = np.random.default_rng(torch.initial_seed())
            self._rng_pid = os.getpid()
        return self._rng

    def partner(self, record: HandObjectRecord) -> tuple[Optional[PairEntry], Optional[np.ndarray]]:
        """The de-occluded partner (pair entry, RGB crop) of a grasping training frame, or (None, None)."""
        if not (self.settings.augment and self.settings.contrastive and record.grasping and self.pairs):
            return None, None
        entry = self.pairs.get(record.key)
        if entry is None:
            return None, None
        return entry, read_rgb(entry.gen_image_path)

    def __getitem__(self, index: int) -> dict:
        return self.sample(index, self.rng())

    def sample(self, index: int, rng: np.random.Generator) -> dict:
        """Sample ``index`` with augmentations drawn from ``rng`` (the training loop passes a generator seeded
        by (seed, epoch, index), which makes runs and resumed runs exact)."""
        if not 0 <= index < len(self):
            raise IndexError(f"sample index {index} out of range for {len(self)} samples")
        record = self.record(index)
        image = read_rgb(record.image_path)
        mask = self.object_mask(index, record, image.shape[:2]) if self.settings.augment else None
        entry, generated = self.partner(record)
        sample = build_sample(record, image, self.settings, rng, mask=mask, pair=entry, generated_crop=generated)
        return to_tensors({**self.finish_sample(record, sample), SAMPLE_KEY: record.key})
