"""Checkpoints in the official layout, written atomically and loaded safely and strictly.

Layout (official ``train.py::save_ckpt``)::

    {"state_dict": {...no "module." prefix...}, "optimizer": ..., "scheduler": ..., "step": int,
     "epoch": int, "score_status": {"test": {"cur": float, "best": float}}}

Writing goes to a temporary file in the same folder and is renamed over the target only when complete, so an
interrupted save never replaces a good checkpoint. Loading uses ``torch.load(map_location='cpu',
weights_only=True)``: a checkpoint that needs arbitrary classes is refused instead of executed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from utils.atomic import atomic_write

DDP_PREFIX = "module."


class CheckpointMismatchError(RuntimeError):
    """The checkpoint's keys or shapes differ from the model's."""


def save_checkpoint(path: str | Path, state_dict: Mapping[str, torch.Tensor], *, optimizer: Any = None,
                    scheduler: Any = None, step: int = 0, epoch: int = 0, score_status: dict | None = None,
                    **extra: Any) -> Path:
    """Write a checkpoint in the official layout, atomically.

    Args:
        path: target ``.pth`` file; its folder is created if needed.
        state_dict: the unwrapped model's state dict (a ``module.`` prefix is stripped anyway).
        optimizer, scheduler: ``state_dict()`` results (or None).
        step, epoch: training counters (epoch = number of finished epochs, as official).
        score_status: ``{split: {"cur": float, "best": float}}``.
        extra: additional entries (e.g. ``rng_state``, ``config``) stored beside the official ones.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"state_dict": strip_prefix(state_dict), "optimizer": optimizer, "scheduler": scheduler,
             "step": int(step), "epoch": int(epoch), "score_status": score_status or {}, **extra}
    with atomic_write(path, mode="wb") as f:
        torch.save(state, f)
    return path


def load_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint safely onto the CPU; a bare state dict is wrapped as ``{"state_dict": ...}``.

    Raises:
        FileNotFoundError: naming the path.
        RuntimeError: the file is not a weights-only loadable checkpoint (message names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError / RuntimeError with its own text
        raise RuntimeError(f"{path}: cannot be loaded as a weights-only checkpoint ({err})") from err
    if not isinstance(state, dict):
        raise RuntimeError(f"{path}: expected a dict (a state_dict or {{'state_dict': ...}}), "
                           f"got {type(state).__name__}")
    if "state_dict" not in state:
        if not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise RuntimeError(f"{path}: no 'state_dict' key and the top level is not a state dict "
                               f"(keys: {sorted(state)[:8]})")
        state = {"state_dict": state}
    state["state_dict"] = strip_prefix(state["state_dict"])
    return state


def strip_prefix(state_dict: Mapping[str, torch.Tensor], prefix: str = DDP_PREFIX) -> dict:
    """Remove a leading ``module.`` (DataParallel / DDP) from every key that has it."""
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state_dict.items()}


def _listing(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return f"{len(names)} ({shown}{', ...' if len(names) > limit else ''})"


def compare_state_dicts(model_sd: Mapping[str, torch.Tensor], ckpt_sd: Mapping[str, torch.Tensor]):
    """Return (missing, unexpected, shape_mismatched) key lists between a model and a checkpoint."""
    missing = [k for k in model_sd if k not in ckpt_sd]
    unexpected = [k for k in ckpt_sd if k not in model_sd]
    mismatched = [f"{k} {tuple(ckpt_sd[k].shape)} vs model {tuple(model_sd[k].shape)}"
                  for k in model_sd if k in ckpt_sd and tuple(ckpt_sd[k].shape) != tuple(model_sd[k].shape)]
    return missing, unexpected, mismatched


def load_weights(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], strict: bool = True,
                 source: str = "<state_dict>") -> tuple[list[str], list[str]]:
    """Load ``state_dict`` into ``model``; strict by default with a readable mismatch report.

    With ``strict=False`` (fine-tuning from a smaller model), matching keys of matching shape are loaded and the
    missing / unexpected key lists are returned; shape mismatches are still an error.

    Raises:
        CheckpointMismatchError: listing the first few missing, unexpected and shape-mismatched keys with counts.
    """
    state_dict = strip_prefix(state_dict)
    missing, unexpected, mismatched = compare_state_dicts(model.state_dict(), state_dict)
    if mismatched or (strict and (missing or unexpected)):
        raise CheckpointMismatchError(
            f"{source} does not match {type(model).__name__}: missing {_listing(missing)}; "
            f"unexpected {_listing(unexpected)}; shape mismatch {_listing(mismatched)}")
    model.load_state_dict({k: v for k, v in state_dict.items() if k not in unexpected}, strict=False)
    return missing, unexpected


def load_model_checkpoint(model: torch.nn.Module, path: str | Path, strict: bool = True) -> dict:
    """Load the weights of the checkpoint at ``path`` into ``model``; returns the whole checkpoint dict."""
    state = load_checkpoint(path)
    load_weights(model, state["state_dict"], strict=strict, source=str(path))
    return state
