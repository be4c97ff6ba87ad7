"""The phases manifest of a synthetic tree (``synthetic_phases.json``): per sequence the side, the objects and
each frame's phase (``approach`` / ``grasp`` / ``lift``). Written by :mod:`data_creation.synthetic.make_synthetic`,
read by the frame sheet and the tests.
"""
from __future__ import annotations

import json
from pathlib import Path

PHASES_FILE = "synthetic_phases.json"
PHASES_FORMAT = "unihope-synthetic-phases"


def load_phases(root: str | Path) -> dict:
    """Read ``synthetic_phases.json`` of a tree."""
    path = Path(root) / PHASES_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (written by data_creation.synthetic.make_synthetic)")
    content = json.loads(path.read_text())
    if content.get("format") != PHASES_FORMAT:
        raise ValueError(f"{path}: expected format {PHASES_FORMAT!r}")
    return content
