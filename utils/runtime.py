"""Run-time plumbing shared by the entry points: accelerator, seeding, logging, progress bars.

Nothing here runs at import; entry points call these functions.
"""
from __future__ import annotations

import copy
import logging
import os
import random
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from utils.config import CHOICES
from utils.errors import InputError


def accelerator_device_available() -> bool:
    """True when this process sees a CUDA GPU or an Apple-silicon GPU (MPS); accelerate then picks it."""
    mps = getattr(torch.backends, "mps", None)
    return torch.cuda.is_available() or bool(mps is not None and mps.is_available())


def training_device_name() -> str:
    """The device :func:`make_accelerator` picks in this process, in words: ``"GPU (<CUDA device name>)"``,
    ``"Apple GPU (MPS)"`` or ``"CPU"``."""
    if torch.cuda.is_available():
        return f"GPU ({torch.cuda.get_device_name(0)})"
    return "Apple GPU (MPS)" if accelerator_device_available() else "CPU"


def make_accelerator(**kwargs):
    """An ``accelerate.Accelerator`` on the GPU (CUDA, or MPS on Apple machines) when one exists, else the CPU.

    Without ``cpu=True`` a multi-process launch on a machine without a GPU would start independent single
    processes (docs/libraries.md A.3); forcing it makes ``accelerate launch --multi_gpu --num_processes N`` run N
    gloo ranks on the CPU. Batches are copied to the device without blocking (from the loaders' pinned memory)
    unless ``dataloader_config`` says otherwise.
    """
    from accelerate import Accelerator  # heavy: utils.runtime is also imported by light paths (data loaders)
    from accelerate.utils import DataLoaderConfiguration

    kwargs.setdefault("cpu", not accelerator_device_available())
    kwargs.setdefault("dataloader_config", DataLoaderConfiguration(non_blocking=True))
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
    from torch.utils.tensorboard import SummaryWriter  # heavy, main process of a training run only

    return SummaryWriter(log_dir=str(Path(model_dir) / "summary"))


def progress(iterable, desc: str, main_process: bool = True, **kwargs):
    """A tqdm bar shown on the main process only (disabled when stderr is not a terminal and TQDM_DISABLE=1)."""
    from tqdm.auto import tqdm  # loaded with the first progress bar (utils.runtime is imported by light paths)

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
    choices = CHOICES[("train", "mixed_precision")]
    if choice not in choices:
        raise ValueError(f"train.mixed_precision must be one of {list(choices)}, got {choice!r}")
    if choice != "auto":
        return choice
    return "bf16" if fast_bf16_available() else "no"


def allow_tf32_matmul(enabled: bool) -> None:
    """``train.tf32``: when ``enabled``, fp32 matrix products on CUDA run in TF32 (inputs rounded to a 10-bit
    mantissa, fp32 accumulation: about 1e-3 relative error, several times the fp32 speed on tensor cores).
    Otherwise PyTorch's default (full fp32 products) stays. CPU arithmetic is never changed. Process-wide: the
    training entry point calls it once."""
    if enabled:
        torch.backends.cuda.matmul.fp32_precision = "tf32"


def to_device(batch: dict, device) -> dict:
    """Tensors of ``batch`` moved to ``device`` (dtypes kept); other values passed through."""
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _fuse_pairs(parent: torch.nn.Module, pairs) -> None:
    """Fold each ``(conv name, batch-norm name)`` child pair of ``parent`` into the conv; the BN becomes Identity."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for conv_name, bn_name in pairs:
        conv, bn = getattr(parent, conv_name), getattr(parent, bn_name)
        if isinstance(conv, torch.nn.Conv2d) and isinstance(bn, torch.nn.BatchNorm2d):
            setattr(parent, conv_name, fuse_conv_bn_eval(conv, bn))
            setattr(parent, bn_name, torch.nn.Identity())


def _repeat_last_to(tensor: torch.Tensor, size: int) -> torch.Tensor:
    """``tensor`` (n, ...) with its last row repeated up to ``size`` rows."""
    return torch.cat((tensor, tensor[-1:].expand(size - tensor.shape[0], *tensor.shape[1:])))


class CompiledInference(torch.nn.Module):
    """Evaluation forward of ``model`` through ``torch.compile`` (inductor, parameters frozen into the graph as
    constants: ``test.compile``). Called like ``model``: a batch dict -> an output dict.

    Only without gradients (``torch.no_grad`` / ``inference_mode``) and in eval mode; otherwise, and for batches
    without an ``img`` tensor, ``model`` runs eagerly. The first batch compiles (minutes on a CPU) and freezes the
    weights as they are then (later changes to them are not seen). Each batch size would compile anew, so a batch
    smaller than the largest one so far is padded to that size by repeating its last sample and every batch-first
    output is cut back to the batch's own samples (in eval mode a sample's outputs do not depend on the other
    samples). Should the compiled forward raise where the eager forward does not (something torch.compile cannot
    handle), a warning says so and the eager forward is used from then on; an input error raises as in eager
    mode. The wrapped model is ``self.model`` (state-dict keys gain ``model.``).
    """

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model
        # a plain attribute, not a child module: the compiled callable shares ``model``'s parameters
        self.__dict__["compiled"] = torch.compile(model, dynamic=False)
        self.batch_size = 0
        self.eager = False

    def forward(self, batch: dict) -> dict:
        from torch._inductor import config as inductor_config  # loaded by torch.compile anyway

        img = batch.get("img") if isinstance(batch, dict) else None
        if self.eager or self.training or torch.is_grad_enabled() or not isinstance(img, torch.Tensor):
            return self.model(batch)
        samples = img.shape[0]
        self.batch_size = max(self.batch_size, samples)
        size = self.batch_size
        padded = batch if samples == size else {
            k: _repeat_last_to(v, size) if isinstance(v, torch.Tensor) and v.dim() and v.shape[0] == samples else v
            for k, v in batch.items()}
        try:
            # freezing must be on while the call compiles (torch.compile's ``options`` do not reach it)
            with inductor_config.patch(freezing=True):
                outputs = self.compiled(padded)
        except Exception as error:  # noqa: BLE001 - any compiler failure falls back to the eager forward
            outputs = self.model(batch)  # an input error raises here, as without test.compile
            warnings.warn(f"test.compile: the compiled forward failed ({type(error).__name__}: {error}); "
                          f"evaluating with the eager forward instead", RuntimeWarning, stacklevel=2)
            self.eager = True
            return outputs
        if samples == size:
            return outputs
        return {k: v[:samples] if isinstance(v, torch.Tensor) and v.dim() and v.shape[0] == size else v
                for k, v in outputs.items()}


def inference_model(model: torch.nn.Module, channels_last: bool = False, fuse_batchnorm: bool = False,
                    compiled: bool = False) -> torch.nn.Module:
    """The model as evaluation should run it: eval mode, optionally faster layouts; the input is not changed.

    Args:
        model: a model whose weights are already loaded.
        channels_last: store 4-D weights (and so the activations of the convolutions) as NHWC, which the
            CPU (oneDNN) and GPU convolution kernels run faster; outputs equal up to float rounding.
        fuse_batchnorm: fold each eval-mode BatchNorm2d into the convolution right before it, where that
            order is known: ``nn.Sequential`` runs, torchvision ResNet blocks, and the ``(conv, batch norm)``
            attribute pairs a module class lists in ``conv_bn_pairs`` (the hourglass, hand-encoder and object
            head blocks); outputs equal up to float rounding (tests/utils/test_runtime_inference.py checks
            1e-5). Batch norms that follow a sum rather than a convolution (the pre-activation ``bn1`` / ``bn``
            of those residual blocks, before a LeakyReLU) cannot be folded and stay.
        compiled: wrap the (copied, fused, channels-last) model in :class:`CompiledInference`: inductor fuses
            the element-wise work (batch norms, activations, sums, bias additions) into the convolutions and
            matrix products and writes the rest as generated C++; outputs equal to float rounding. The first batch
            compiles (UniHOPE on a 2-core CPU: about a minute, up to 4 on a busy machine;
            benchmarks/bench_inference.py prints it), which pays off on long evaluations only.
    Returns:
        ``model`` itself in eval mode when no option is set, else an eval-mode copy (the weights of the
        original stay as they were, so it can still be trained or saved as official weights), wrapped in
        :class:`CompiledInference` with ``compiled``.
    """
    if not (channels_last or fuse_batchnorm or compiled):
        return model.eval()
    from torchvision.models.resnet import BasicBlock, Bottleneck  # torchvision is heavy; only with the options

    fast = copy.deepcopy(model).eval()
    if fuse_batchnorm:
        for module in list(fast.modules()):
            if isinstance(module, torch.nn.Sequential):
                names = list(module._modules)
                _fuse_pairs(module, zip(names, names[1:]))
            elif isinstance(module, (BasicBlock, Bottleneck)):
                _fuse_pairs(module, [(f"conv{i}", f"bn{i}") for i in (1, 2, 3) if hasattr(module, f"conv{i}")])
            else:
                _fuse_pairs(module, getattr(module, "conv_bn_pairs", ()))
    if channels_last:
        fast = fast.to(memory_format=torch.channels_last)
    return CompiledInference(fast).eval() if compiled else fast
