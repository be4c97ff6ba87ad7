"""Visual check of one de-occluded frame: a PNG strip original | mask | depth condition | candidate per strength.

Each tile carries a caption (candidate tiles: control strength and score, ``*`` marks the chosen one, failed
candidates are grey with their failure). Written by the run for the first few frames (``--sheets N``).
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw

from utils.atomic import atomic_write

MIN_TILE = 128
CAPTION_HEIGHT = 14
MASK_TINT = np.array([255, 64, 64], np.float32)
FAILED_GREY = 96


def _tile(image: np.ndarray, side: int, caption: str) -> Image.Image:
    """(H, W, 3) uint8 -> a ``side x (side + caption)`` tile with the caption written under the image."""
    tile = Image.new("RGB", (side, side + CAPTION_HEIGHT), (0, 0, 0))
    tile.paste(Image.fromarray(image).resize((side, side), Image.Resampling.NEAREST), (0, 0))
    ImageDraw.Draw(tile).text((2, side + 1), caption, fill=(255, 255, 255))
    return tile


def mask_overlay(crop: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The crop with the inpainting mask tinted red (half transparent). (H, W, 3) uint8."""
    out = crop.astype(np.float32)
    out[mask] = 0.5 * out[mask] + 0.5 * MASK_TINT
    return np.round(out).astype(np.uint8)


def write_sheet(path: str | Path, crop: np.ndarray, inpaint_mask: np.ndarray, control: np.ndarray,
                candidates: Sequence[dict], candidate_images: Sequence[Optional[np.ndarray]]) -> None:
    """Write the sheet of one frame atomically.

    Args:
        crop: (R, R, 3) uint8 generator input; inpaint_mask: (R, R) bool; control: (R, R, 3) uint8.
        candidates: the result's candidate entries (``strength``, ``score`` or ``error``, ``chosen``).
        candidate_images: (S, S, 3) uint8 stored candidate images, None for failed candidates.
    """
    side = max(crop.shape[0], MIN_TILE)
    tiles = [_tile(crop, side, "original"), _tile(mask_overlay(crop, inpaint_mask), side, "mask"),
             _tile(control, side, "depth")]
    for entry, image in zip(candidates, candidate_images):
        if image is None or "score" not in entry:
            image = np.full(crop.shape, FAILED_GREY, np.uint8) if image is None else image
            caption = f"s={entry['strength']:g} {entry.get('error', 'unscored')[:12]}"
        else:
            caption = f"{'*' if entry.get('chosen') else ''}s={entry['strength']:g} {entry['score']:.1f}"
        tiles.append(_tile(image, side, caption))
    sheet = Image.new("RGB", (side * len(tiles), side + CAPTION_HEIGHT))
    for i, tile in enumerate(tiles):
        sheet.paste(tile, (i * side, 0))
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, mode="wb") as f:
        f.write(buffer.getvalue())
