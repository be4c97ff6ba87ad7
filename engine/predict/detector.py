"""``predict.py --detector``: hand boxes from MediaPipe, run in its own small environment.

mediapipe 0.10.21 pins ``numpy<2``, ``protobuf<5`` and ``opencv-contrib-python``, which the main environment
cannot take; so it lives in ``.venv-detector`` (``make detector-venv``) and ``tools/detect_hands.py`` runs there
as a subprocess, writing an ordinary boxes file (engine/predict/hand_boxes.py) that ``predict.py`` then reads.
Without that environment ``--detector`` stops with the install line; it never falls back silently.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

from engine.predict import PredictInputError
from engine.predict.hand_boxes import HandBox, read_boxes_file

REPO_ROOT = Path(__file__).resolve().parents[2]
DETECTOR_SCRIPT = REPO_ROOT / "tools" / "detect_hands.py"
DEFAULT_DETECTOR_PYTHON = REPO_ROOT / ".venv-detector" / "bin" / "python"
INSTALL_LINE = "python3 -m venv .venv-detector && .venv-detector/bin/pip install mediapipe==0.10.21"


def detector_python(path: str | Path | None = None) -> Path:
    """The detector environment's interpreter (``path``, else ``.venv-detector/bin/python``); a clear error with
    the install line when it is missing."""
    python = Path(path) if path else DEFAULT_DETECTOR_PYTHON
    if not python.is_file():
        raise PredictInputError(f"--detector needs the MediaPipe environment, not found at {python}. Install it "
                                f"from the repository root with:\n    {INSTALL_LINE}\n(or `make detector-venv`), "
                                f"or pass hand boxes with --boxes FILE")
    return python


def detect_hands(python: Path, inputs: list[Path], boxes_path: Path,
                 timeout_s: float = 3600) -> dict[str, list[HandBox]]:
    """Run ``tools/detect_hands.py`` on images or one video; returns the boxes it wrote to ``boxes_path``."""
    command = [str(python), str(DETECTOR_SCRIPT), "--out", str(boxes_path), *map(str, inputs)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    if result.returncode != 0:
        raise PredictInputError(f"the hand detector failed (exit {result.returncode}): "
                                f"{result.stderr.strip()[-2000:] or result.stdout.strip()[-2000:]}")
    return read_boxes_file(boxes_path)
