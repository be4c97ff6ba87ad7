"""The DexYCB toolkit's split rules (setups s0/s1/s2/s3 x train/val/test), in one place.

Reference: docs/official-data.md §8.1, docs/libraries.md C.2. Subjects and camera serials are indexed in the
toolkit's fixed order below; sequences by their position in the subject folder sorted by name (the toolkit
asserts 100 per subject; this module accepts any count so that small fixtures work). A sample is
``(subject, sequence, serial, frame)``; the toolkit enumerates sequences -> cameras -> frames and the sample
number ``n`` of that enumeration is the ``id_<n>`` key of the annotation files.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

SUBJECTS = (
    "20200709-subject-01", "20200813-subject-02", "20200820-subject-03", "20200903-subject-04",
    "20200908-subject-05", "20200918-subject-06", "20200928-subject-07", "20201002-subject-08",
    "20201015-subject-09", "20201022-subject-10",
)
SERIALS = (
    "836212060125", "839512060362", "840412060917", "841412060263",
    "932122060857", "932122060861", "932122061900", "932122062010",
)
SETUPS = ("s0", "s1", "s2", "s3")
SPLITS = ("train", "val", "test")
BOP_SUBSAMPLING = 4  # BOP keyframes: frame % 4 == 0

_ALL_SUBJECTS = tuple(range(len(SUBJECTS)))
_ALL_SERIALS = tuple(range(len(SERIALS)))
_S3_HELD_OUT = {"val": (3, 19), "test": (7, 11, 15)}


@dataclass(frozen=True)
class SplitRule:
    """Subjects and serials (indices into :data:`SUBJECTS` / :data:`SERIALS`) and a sequence-index predicate."""

    subjects: tuple
    serials: tuple
    sequence: Callable[[int], bool]

    def selects_sequence(self, index: int) -> bool:
        return bool(self.sequence(index))


def _every(_: int) -> bool:
    return True


def split_rule(setup: str, split: str) -> SplitRule:
    """The toolkit's selection for ``setup`` in s0/s1/s2/s3 and ``split`` in train/val/test.

    Raises:
        KeyError: unknown setup or split, listing the known ones.
    """
    if setup not in SETUPS or split not in SPLITS:
        raise KeyError(f"unknown DexYCB split {setup}_{split}; setups {SETUPS}, splits {SPLITS}")
    if setup == "s0":
        subjects = {"train": _ALL_SUBJECTS, "val": (0, 1), "test": tuple(range(2, 10))}[split]
        if split == "train":
            return SplitRule(subjects, _ALL_SERIALS, lambda i: i % 5 != 4)
        return SplitRule(subjects, _ALL_SERIALS, lambda i: i % 5 == 4)
    if setup == "s1":
        subjects = {"train": (0, 1, 2, 3, 4, 5, 9), "val": (6,), "test": (7, 8)}[split]
        return SplitRule(subjects, _ALL_SERIALS, _every)
    if setup == "s2":
        serials = {"train": tuple(range(6)), "val": (6,), "test": (7,)}[split]
        return SplitRule(_ALL_SUBJECTS, serials, _every)
    if split == "train":
        held_out = _S3_HELD_OUT["val"] + _S3_HELD_OUT["test"]
        return SplitRule(_ALL_SUBJECTS, _ALL_SERIALS, lambda i: i // 5 not in held_out)
    chosen = _S3_HELD_OUT[split]
    return SplitRule(_ALL_SUBJECTS, _ALL_SERIALS, lambda i: i // 5 in chosen)


def parse_split_name(name: str) -> tuple[str, str]:
    """``"s0_train"`` -> ``("s0", "train")``; raises KeyError for anything else."""
    setup, _, split = name.partition("_")
    split_rule(setup, split)
    return setup, split
