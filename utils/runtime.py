"""Run-time plumbing shared by the entry points: accelerator, seeding, logging, progress bars.

Nothing here runs at import; entry points call these functions.
"""
from __future__ import annotations

import logging
import os
import random
import sys
from pathlib import Path

import numpy as np
import torch

from utils.errors import InputError


def make_accelerator(**kwargs):
    """An ``accelerate.Accelerator`` that falls back to the CPU when no CUDA device exists.

    Without ``cpu=True`` a multi-process launch on a CPU-only machine would start independent single processes
    (reference: ecosystem.md A.3); forcing it makes ``accelerate launch --multi_gpu --num_processes N`` run N
    gloo ranks on the CPU.
    """
    from accelerate import Accelerator

    kwargs.setdefault("cpu", not torch.cuda.is_available())
    return Accelerator(**kwargs)


def seed_everything(seed: int, rank: int = 0) -> None:
    """Seed python, numpy and torch; different ranks get different but deterministic streams."""
    seed = int(seed) + int(rank)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def worker_init_fn(worker_id: int) -> None:
    """DataLoader worker seeding from torch's per-worker seed (reproducible given the loader's generator)."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


class NoFollowFileHandler(logging.FileHandler):
    """A ``logging.FileHandler`` (append) that refuses to open its file through a symbolic link.

    Opening with ``O_NOFOLLOW`` makes a link planted at the log's path an error instead of a write into the
    link's target (checkpoints and JSON files are safe anyway: they replace the link, see utils/atomic.py).
    """

    def _open(self):
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(self.baseFilename, flags, 0o666)
        except OSError:
            if os.path.islink(self.baseFilename):
                raise InputError(f"{self.baseFilename} is a symbolic link; refusing to append the log to its "
                                 f"target (remove the link)") from None
            raise
        return os.fdopen(fd, "a", encoding=self.encoding or "utf-8")


def setup_logger(name: str, log_file: str | Path | None = None, main_process: bool = True) -> logging.Logger:
    """A logger writing to stderr and, on the main process, to ``log_file`` (appending; never through a symbolic
    link, see :class:`NoFollowFileHandler`)."""
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO if main_process else logging.WARNING)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(fmt)
    logger.addHandler(stream)
    if log_file is not None and main_process:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        file_handler = NoFollowFileHandler(log_file)
        file_handler.setFormatter(fmt)
        logger.addHandler(file_handler)
    return logger


def summary_writer(model_dir: str | Path, main_process: bool = True):
    """TensorBoard writer under ``<model_dir>/summary`` on the main process, else None."""
    if not main_process:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(Path(model_dir) / "summary"))


def progress(iterable, desc: str, main_process: bool = True, **kwargs):
    """A tqdm bar shown on the main process only (disabled when stderr is not a terminal and TQDM_DISABLE=1)."""
    from tqdm.auto import tqdm

    disable = (not main_process) or os.environ.get("TQDM_DISABLE") == "1"
    return tqdm(iterable, desc=desc, disable=disable, dynamic_ncols=True, **kwargs)


def fast_bf16_available(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """True when bfloat16 autocast is likely to speed training up here: a CUDA device with bf16 support, or a CPU
    with native bf16 instructions (``avx512_bf16`` or ``amx_bf16`` in ``cpuinfo``; without them CPU bf16 is
    emulated and slower than float32)."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path(cpuinfo).read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_mixed_precision(choice: str) -> str:
    """``auto`` -> ``bf16`` where :func:`fast_bf16_available` (about 1.8x faster UniHOPE training steps on a CPU
    with AVX512-BF16, measured), else ``no``; ``no`` / ``bf16`` / ``fp16`` are returned unchanged."""
    if choice != "auto":
        return choice
    return "bf16" if fast_bf16_available() else "no"


def to_device(batch: dict, device) -> dict:
    """Tensors of ``batch`` moved to ``device`` (dtypes kept); other values passed through."""
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
