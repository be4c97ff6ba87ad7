"""Checkpoints in the official layout, written atomically and loaded safely and strictly.

Layout (official ``train.py::save_ckpt``)::

    {"state_dict": {...no "module." prefix...}, "optimizer": ..., "scheduler": ..., "step": int,
     "epoch": int, "score_status": {"test": {"cur": float, "best": float}}}

Writing goes to a temporary file in the same folder and is renamed over the target only when complete, so an
interrupted save never replaces a good checkpoint. Loading uses ``torch.load(map_location='cpu',
weights_only=True)``: a checkpoint that needs arbitrary classes is refused instead of executed.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import torch

from utils.atomic import atomic_write
from utils.errors import CheckpointError

DDP_PREFIX = "module."


class CheckpointMismatchError(CheckpointError):
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
        CheckpointError: naming the file: empty, truncated or not a PyTorch file; content that needs classes
            outside the weights-only set (the refused class is named); no state dict of named tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the checkpoint file is empty")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError / RuntimeError / EOFError with its own long text
        raise CheckpointError(f"{path}: cannot be loaded as a weights-only checkpoint ({_load_failure(err)})") \
            from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a dict (a state_dict or {{'state_dict': ...}}), "
                              f"got {type(state).__name__}")
    if "state_dict" not in state:
        state = {"state_dict": state}
    state["state_dict"] = strip_prefix(_checked_state_dict(state["state_dict"], path))
    return state


def _load_failure(err: Exception) -> str:
    """Short reason of a failed ``torch.load`` (torch's own text suggests unsafe options; it is not repeated)."""
    refused = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(err))
    if refused:
        return f"it needs the class {refused[1]}, which a weights-only load refuses"
    first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
    if "weights_only" in first_line or not first_line:
        return f"not a PyTorch checkpoint, or truncated ({type(err).__name__})"
    return f"not a PyTorch checkpoint, or truncated: {type(err).__name__}: {first_line[:200]}"


def _checked_state_dict(state_dict: Any, path: Path) -> dict:
    """``state_dict`` if it maps parameter names to tensors, else CheckpointError naming the file."""
    if not isinstance(state_dict, dict):
        raise CheckpointError(f"{path}: 'state_dict' must map parameter names to tensors, "
                              f"got {type(state_dict).__name__}")
    wrong = [str(k) for k, v in state_dict.items() if not (isinstance(k, str) and isinstance(v, torch.Tensor))]
    if wrong:
        raise CheckpointError(f"{path}: no 'state_dict' of named tensors: entries {_listing(wrong)} are not "
                              f"parameter name -> tensor (keys: {sorted(map(str, state_dict))[:8]})")
    return state_dict


def check_finite_weights(state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """CheckpointError naming the first floating-point entries of ``state_dict`` holding NaN or infinity."""
    bad = [f"{k} ({int((~torch.isfinite(v)).sum())} of {v.numel()} values)" for k, v in state_dict.items()
           if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(f"{source}: non-finite weights (NaN or infinity) in {_listing(bad)}")


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
    check_finite_weights(state_dict, source)
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
