"""The training loop as small importable functions (train.py is a thin CLI over :func:`fit`).

Reference: docs/official-data.md §6 and docs/official-model.md §5-6. Differences from the official loop:
- any device through accelerate (``split_batches=True``: ``train.batch_size`` is the global batch);
- exact resume: checkpoints carry the position inside the epoch, the data order of an epoch is a function of
  (seed, epoch), each sample's augmentation is drawn from RNGs seeded by (seed, epoch, index)
  (:class:`SeededSamples`) and each step re-seeds the model's randomness (dropout) from
  (seed, rank, epoch, step), so a run killed at any step and resumed ends with the same weights as an
  uninterrupted run, with any number of data-loader workers;
- a non-finite loss stops the run naming the step, the loss terms and the batch's sample ids, and the last good
  checkpoint stays in place (checkpoints are written atomically).
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import torch

from datasets.base import SAMPLE_KEY
from utils.errors import ConfigKeyError, InputError
from utils.metrics.hand import validation_scores
from utils.runtime import progress, seed_everything, to_device

OPTIMIZERS = {
    "adam": lambda params, o, fused: torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay_l2, fused=fused),
    "adamw": lambda params, o, fused: torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay_l2, fused=fused),
    "sgd": lambda params, o, fused: torch.optim.SGD(params, lr=o.lr, momentum=0.9, weight_decay=o.weight_decay_l2),
}
FUSED_OPTIMIZER_DEVICES = ("cuda", "cpu")  # device types whose Adam / AdamW run the fused step
SCHEDULERS = {
    "step": lambda opt, s: torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(s.milestones), gamma=s.gamma),
    "exp": lambda opt, s: torch.optim.lr_scheduler.ExponentialLR(opt, gamma=s.gamma),
}


class NonFiniteLossError(InputError, RuntimeError):
    """The loss became NaN or infinite."""


def build_optimizer(parameters, optimizer_cfg, device="cpu") -> torch.optim.Optimizer:
    """``cfg.optimizer`` -> optimizer over the trainable ``parameters`` (one group, as official).

    ``device``: where the parameters train. On CUDA and the CPU, Adam / AdamW use PyTorch's fused step (one
    kernel for all parameters instead of several per tensor; the same update up to float rounding; x3.2 faster on
    the demo's CPU optimizer step, ``benchmarks/bench_demo_step.py``); elsewhere (e.g. MPS) the default one.
    """
    if optimizer_cfg.name not in OPTIMIZERS:
        raise ConfigKeyError(f"unknown optimizer.name {optimizer_cfg.name!r}; known: {sorted(OPTIMIZERS)}")
    fused = torch.device(device).type in FUSED_OPTIMIZER_DEVICES
    return OPTIMIZERS[optimizer_cfg.name]([p for p in parameters if p.requires_grad], optimizer_cfg, fused)


def build_scheduler(optimizer, cfg, steps_per_epoch: int):
    """The learning-rate schedule of a run.

    ``cfg.scheduler`` gives a scheduler stepped once per epoch. A config with ``optimizer.warmup_epoch`` (the
    SimpleHand configs) gets :class:`WarmupStepLR` instead, stepped after every iteration; the official code
    builds the configured scheduler there too but never steps it (docs/official-data.md §6).
    ``steps_per_epoch``: optimizer steps per epoch (batches of the training loader).
    """
    o = cfg.optimizer
    if o.warmup_epoch is not None:
        return WarmupStepLR(optimizer, base_lr=o.lr if o.base_lr is None else o.base_lr,
                            warmup_steps=o.warmup_epoch * (o.minibatch_per_epoch or steps_per_epoch),
                            steps_per_epoch=steps_per_epoch, decay_epoch=cfg.train.num_epochs // 2)
    if cfg.scheduler.name not in SCHEDULERS:
        raise ConfigKeyError(f"unknown scheduler.name {cfg.scheduler.name!r}; known: {sorted(SCHEDULERS)}")
    return SCHEDULERS[cfg.scheduler.name](optimizer, cfg.scheduler)


def warmup_step_lr(step: int, base_lr: float, warmup_steps: int, steps_per_epoch: int, decay_epoch: int,
                   decay: float = 0.1) -> float:
    """SimpleHand's learning rate for optimizer step ``step`` (0-based): linear warm-up from 0 to ``base_lr``
    over ``warmup_steps`` steps, then ``base_lr`` until epoch ``decay_epoch``, then ``base_lr * decay``."""
    if step < warmup_steps:
        return base_lr * step / warmup_steps
    return base_lr if step // steps_per_epoch < decay_epoch else base_lr * decay


class WarmupStepLR(torch.optim.lr_scheduler.LRScheduler):
    """:func:`warmup_step_lr` as a scheduler; ``per_iteration``: the trainer steps it after every optimizer step
    (``last_epoch`` counts optimizer steps), so a resumed run continues the schedule exactly."""

    per_iteration = True

    def __init__(self, optimizer, base_lr: float, warmup_steps: int, steps_per_epoch: int, decay_epoch: int):
        if steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be positive, got {steps_per_epoch}")
        self.schedule = dict(base_lr=float(base_lr), warmup_steps=int(warmup_steps),
                             steps_per_epoch=int(steps_per_epoch), decay_epoch=int(decay_epoch))
        super().__init__(optimizer)

    def get_lr(self):
        return [warmup_step_lr(self.last_epoch, **self.schedule)] * len(self.optimizer.param_groups)


def is_per_iteration(scheduler) -> bool:
    """True for schedulers stepped after every optimizer step (else once per epoch)."""
    return getattr(scheduler, "per_iteration", False)


def step_seed(seed: int, rank: int, epoch: int, step_in_epoch: int) -> None:
    """Re-seed every RNG from the position in training, so a resumed run draws the same numbers."""
    state = np.random.SeedSequence([seed, rank, epoch, step_in_epoch]).generate_state(1)[0]
    seed_everything(int(state))


class SeededSamples(torch.utils.data.Dataset):
    """Wraps a dataset so that sample ``i`` of epoch ``e`` is drawn with randomness seeded from (seed, e, i).

    Augmentation then depends only on the sample and the epoch, not on which worker or in which order it was
    loaded, which makes resuming inside an epoch exact and runs reproducible with any number of workers.
    Datasets with a ``sample(index, rng)`` method get a ``numpy.random.Generator``; others get the global
    python / numpy / torch RNGs re-seeded before ``dataset[index]``. ``limit`` keeps the first samples only.
    """

    def __init__(self, dataset, seed: int, limit: int | None = None):
        self.dataset, self.seed, self.epoch = dataset, int(seed), 0
        self.length = len(dataset) if limit is None else min(len(dataset), int(limit))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self):
        return self.length

    def __getitem__(self, index):
        if not 0 <= index < self.length:
            raise IndexError(f"sample index {index} out of range for {self.length} samples")
        entropy = [self.seed, self.epoch, int(index)]
        if hasattr(self.dataset, "sample"):
            return self.dataset.sample(index, np.random.default_rng(entropy))
        seed_everything(int(np.random.SeedSequence(entropy).generate_state(1)[0]))
        return self.dataset[index]


def channels_last_images(batch: dict) -> dict:
    """``batch`` with its image tensors (4-D floating point, (B, C, H, W)) in channels-last memory format; the
    values and shapes are unchanged, only the strides (train.channels_last)."""
    return {k: v.contiguous(memory_format=torch.channels_last)
            if isinstance(v, torch.Tensor) and v.dim() == 4 and v.is_floating_point() else v
            for k, v in batch.items()}


def check_finite(losses: dict, step: int, batch: dict) -> None:
    """Raise :class:`NonFiniteLossError` naming the step, every loss term and the batch's sample ids."""
    if torch.isfinite(losses["total"]).all():
        return
    terms = ", ".join(f"{k}={float(v.detach()):.6g}" for k, v in losses.items())
    ids = batch.get(SAMPLE_KEY, "n/a")
    raise NonFiniteLossError(f"non-finite loss at step {step}: {terms}; batch sample ids: {ids}")


@dataclass
class TrainState:
    """Counters saved in checkpoints. ``epoch`` = finished epochs; ``step_in_epoch`` = finished batches of the
    current (unfinished) epoch; ``score_status`` = ``{split: {"cur": float, "best": float}}``."""
    epoch: int = 0
    step: int = 0
    step_in_epoch: int = 0
    score_status: dict = field(default_factory=dict)
    loss_sums: dict = field(default_factory=dict)  # partial-epoch running sums, for exact epoch averages


class Meter:
    """Running weighted means of named scalars."""

    def __init__(self, sums: dict | None = None):
        self.sums = defaultdict(float, {k: v for k, v in (sums or {}).items()})

    def add(self, values: dict, weight: float = 1.0) -> None:
        for key, value in values.items():
            self.sums[key] += float(value) * weight
        self.sums["_weight"] += weight

    def averages(self) -> dict:
        weight = self.sums.get("_weight", 0.0)
        return {k: v / weight for k, v in self.sums.items() if k != "_weight"} if weight else {}


@dataclass
class Trainer:
    """Everything a training epoch needs; built by train.py."""
    accelerator: object
    model: torch.nn.Module
    loss_fn: object
    optimizer: torch.optim.Optimizer
    scheduler: object
    train_loader: object
    seed: int = 0
    grad_norm_clip: float | None = None
    writer: object = None
    summary_steps: int = 50
    on_step_end: object = None  # callable(trainer, state) after each optimizer step (checkpoints, stopping)
    channels_last: bool = False  # images enter the model in channels-last memory format (train.channels_last)

    def train_one_epoch(self, state: TrainState) -> dict:
        """Run the rest of epoch ``state.epoch`` from batch ``state.step_in_epoch``; returns loss averages."""
        acc, rank = self.accelerator, self.accelerator.process_index
        self.model.train()
        self.train_loader.set_epoch(state.epoch)
        if hasattr(self.train_loader.dataset, "set_epoch"):
            self.train_loader.dataset.set_epoch(state.epoch)
        loader = acc.skip_first_batches(self.train_loader, state.step_in_epoch) if state.step_in_epoch else \
            self.train_loader
        meter = Meter(state.loss_sums)
        bar = progress(loader, f"train {state.epoch}", acc.is_main_process, initial=state.step_in_epoch,
                       total=len(self.train_loader))
        for batch in bar:
            step_seed(self.seed, rank, state.epoch, state.step_in_epoch)  # model randomness (dropout)
            batch = to_device(batch, acc.device)
            if self.channels_last:
                batch = channels_last_images(batch)
            with acc.autocast():
                outputs = self.model(batch)
                losses = self.loss_fn(batch, outputs)
            check_finite(losses, state.step, batch)
            acc.backward(losses["total"])
            if self.grad_norm_clip:
                acc.clip_grad_norm_(self.model.parameters(), self.grad_norm_clip)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            if is_per_iteration(self.scheduler):
                self.scheduler.step()
            values = {k: float(v.detach()) for k, v in losses.items()}
            meter.add(values)
            state.step += 1
            state.step_in_epoch += 1
            state.loss_sums = dict(meter.sums)
            bar.set_postfix(loss=f"{values['total']:.4g}")
            if self.writer is not None and state.step % self.summary_steps == 0:
                for key, value in values.items():
                    self.writer.add_scalar(f"train_loss/{key}", value, state.step)
                self.writer.add_scalar("train/lr", self.optimizer.param_groups[0]["lr"], state.step)
            if self.on_step_end is not None and self.on_step_end(self, state):
                break
        return meter.averages()


@torch.no_grad()
def validate(model, loader, accelerator, metric_fn, keys: tuple, desc: str = "val") -> dict:
    """Average ``metric_fn(data) -> dict of floats`` over a gathered, de-duplicated split.

    ``data`` holds the batch and output tensors named in ``keys`` (those present), gathered from every
    process with ``gather_for_metrics``, which drops the padding accelerate adds to even out the last batch:
    each sample counts once whatever the number of processes.
    """
    model.eval()
    meter = Meter()
    for batch in progress(loader, desc, accelerator.is_main_process):
        batch = to_device(batch, accelerator.device)
        outputs = model(batch)
        merged = {**batch, **outputs}
        gathered = accelerator.gather_for_metrics({k: merged[k].contiguous() for k in keys if k in merged})
        size = next(iter(gathered.values())).shape[0] if gathered else 0
        if size:
            meter.add(metric_fn(gathered), weight=size)
    return meter.averages()


VALIDATION_KEYS = ("pred_joints3d_cam", "pred_verts3d_cam", "gt_joints3d_cam", "gt_verts3d_cam", "pred_obj_conf",
                   "gt_grasping")


def validation_metrics(data: dict, with_global: bool = True) -> dict:
    """Per-batch validation metrics (mm): hand errors and ``score`` when meshes are predicted; grasp accuracy
    when grasp logits are (for the grasp classifier alone, ``score = 1 - accuracy`` as official)."""
    metrics = {}
    if "pred_joints3d_cam" in data and "gt_joints3d_cam" in data:
        metrics.update(validation_scores(*(data[k].float().cpu().numpy() for k in VALIDATION_KEYS[:4]),
                                         with_global=with_global))
    if "pred_obj_conf" in data and "gt_grasping" in data:
        labels = data["gt_grasping"]
        labels = labels[:, 0] if labels.dim() == 2 else labels
        accuracy = (data["pred_obj_conf"][:, :2].argmax(1) == labels.long()).float().mean().item()
        metrics["grasp_acc"] = accuracy
        metrics.setdefault("score", 1.0 - accuracy)
    return metrics


def update_score_status(state: TrainState, split: str, metrics: dict) -> bool:
    """Record the split's ``score`` (lower is better); True when it is a new best.

    A split without ``score`` never counts as best (official bug: it made every epoch the best).
    """
    score = metrics.get("score", math.nan)
    status = state.score_status.setdefault(split, {"cur": math.inf, "best": math.inf})
    status["cur"] = score
    if math.isfinite(score) and score < status["best"]:
        status["best"] = score
        return True
    return False
