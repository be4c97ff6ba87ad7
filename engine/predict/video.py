"""Video in and out for ``predict.py``: decoded frames, the overlay ``.mp4``, and per-hand temporal smoothing.

Hands are followed from frame to frame by slot: the k-th hand of a side in one frame continues the k-th hand of
that side in the previous frame (boxes files and the detector list hands in a stable order). Smoothing runs a
One-Euro filter (:mod:`utils.temporal_filter`) over each slot's placed 3D joints and vertices; a slot that
disappears restarts its filter. The 2D joints stay the per-frame predictions.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from engine.predict import PredictInputError
from engine.predict.placement import PlacedHand
from utils.temporal_filter import OneEuroFilter

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
DEFAULT_FPS = 30.0


def video_frames(path: Path) -> tuple[float, int, Iterator[np.ndarray]]:
    """``(fps, frame count, iterator of (H, W, 3) uint8 RGB frames)`` of a video file (OpenCV decoding)."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise PredictInputError(f"video {path}: OpenCV cannot open it")
    fps = float(capture.get(cv2.CAP_PROP_FPS)) or DEFAULT_FPS
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))

    def frames():
        try:
            while True:
                ok, frame = capture.read()
                if not ok:
                    return
                yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        finally:
            capture.release()

    return fps, count, frames()


class VideoSink:
    """An ``.mp4`` (``mp4v``) writer opened on the first frame (its size fixes the video's); RGB frames in."""

    def __init__(self, path: Path, fps: float):
        self.path, self.fps, self._writer = Path(path), float(fps), None

    def write(self, frame: np.ndarray) -> None:
        if self._writer is None:
            height, width = frame.shape[:2]
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (width, height))
            if not self._writer.isOpened():
                raise PredictInputError(f"cannot write video {self.path} (OpenCV VideoWriter, mp4v)")
        self._writer.write(cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None


class HandSmoother:
    """One-Euro smoothing of the placed hands of consecutive frames, per (side, index within side) slot."""

    def __init__(self, fps: float, min_cutoff_hz: float = 1.0, beta: float = 10.0):
        self.dt_s = 1.0 / float(fps)
        self.filter_args = {"min_cutoff_hz": min_cutoff_hz, "beta": beta}
        self.filters: dict[tuple[str, int], OneEuroFilter] = {}

    def __call__(self, hands: list[PlacedHand]) -> list[PlacedHand]:
        """Smoothed copies of one frame's hands (the inputs are not changed)."""
        seen, smoothed = {}, []
        for hand in hands:
            slot = (hand.hand.side, seen.setdefault(hand.hand.side, 0))
            seen[hand.hand.side] += 1
            one_euro = self.filters.setdefault(slot, OneEuroFilter(**self.filter_args))
            joints_count = len(hand.joints_cam)
            points = one_euro(np.concatenate([hand.joints_cam, hand.verts_cam]), self.dt_s)
            smoothed.append(replace(hand, joints_cam=points[:joints_count], verts_cam=points[joints_count:]))
        active = {(side, index) for side, count in seen.items() for index in range(count)}
        self.filters = {slot: f for slot, f in self.filters.items() if slot in active}
        return smoothed
