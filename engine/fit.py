"""Run-level training: epochs, validation, model selection, checkpoint files and resume.

Files written to ``<model_dir>`` (official names): ``model_latest.pth`` (every ``summary.save_latest_freq``
epochs, and every ``save_every_steps`` steps when asked, for pre-emptible jobs), ``model_{epoch}.pth`` (every
``summary.save_mid_freq`` epochs), ``{split}_model_best.pth`` and ``{split}_metric_best.json`` when the split's
``score`` improves after ``summary.save_best_after`` epochs, ``{split}_metric_latest.json`` every epoch.
Checkpoints hold the official layout plus ``step_in_epoch`` and ``loss_sums`` for exact mid-epoch resume, and the
resolved ``config`` of the run: ``--resume`` compares it with the current config and refuses changes that would
make the resumed run differ from an uninterrupted one (:data:`RESUME_FREE_KEYS` lists what may change), unless
``allow_config_change`` turns that into a warning. A different optimizer is always an error (its state cannot be
loaded); start it fresh with ``--only_weights``. Checkpoints without a config (official releases) are resumed
without the comparison.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from engine.trainer import (TrainState, Trainer, VALIDATION_KEYS, build_optimizer, build_scheduler, is_per_iteration,
                            update_score_status, validate, validation_metrics)
from utils.atomic import atomic_write_json
from utils.checkpoint import load_checkpoint, load_weights, save_checkpoint
from utils.errors import CheckpointError, DataError


class RunCheckpoints:
    """Writes and restores the checkpoints of one run (main process writes; every process restores)."""

    def __init__(self, model_dir, accelerator, summary_cfg, save_every_steps: int = 0, config: dict | None = None):
        self.model_dir = Path(model_dir)
        self.config = config
        if accelerator.is_main_process:
            self.model_dir.mkdir(parents=True, exist_ok=True)
        self.accelerator = accelerator
        self.summary = summary_cfg
        self.save_every_steps = save_every_steps

    def save(self, name: str, trainer: Trainer, state: TrainState) -> None:
        self.accelerator.wait_for_everyone()
        if not self.accelerator.is_main_process:
            return
        save_checkpoint(self.model_dir / name, self.accelerator.get_state_dict(trainer.model),
                        optimizer=trainer.optimizer.state_dict(), scheduler=trainer.scheduler.state_dict(),
                        step=state.step, epoch=state.epoch, score_status=state.score_status,
                        step_in_epoch=state.step_in_epoch, loss_sums=state.loss_sums, config=self.config)

    def after_step(self, trainer: Trainer, state: TrainState) -> None:
        if self.save_every_steps and state.step % self.save_every_steps == 0:
            self.save("model_latest.pth", trainer, state)

    def after_epoch(self, trainer: Trainer, state: TrainState, split_metrics: dict) -> None:
        """Called once ``state.epoch`` counts the finished epoch; writes metric files and checkpoints."""
        main = self.accelerator.is_main_process
        best_splits = []
        for split, metrics in split_metrics.items():
            is_best = update_score_status(state, split, metrics)
            if main:
                atomic_write_json(self.model_dir / f"{split}_metric_latest.json", {"epoch": state.epoch, **metrics})
                if is_best:
                    atomic_write_json(self.model_dir / f"{split}_metric_best.json", {"epoch": state.epoch, **metrics})
            if is_best and state.epoch > self.summary.save_best_after:
                best_splits.append(split)
        if state.epoch % self.summary.save_latest_freq == 0:
            self.save("model_latest.pth", trainer, state)
        if self.summary.save_mid_freq and state.epoch % self.summary.save_mid_freq == 0:
            self.save(f"model_{state.epoch}.pth", trainer, state)
        for split in best_splits:
            self.save(f"{split}_model_best.pth", trainer, state)


# Config keys a resumed run may change without breaking step-exact resume: where files are, what is evaluated and
# logged, how many epochs to run in total, how many loader workers (the data order does not depend on them).
# "section." frees a whole section.
RESUME_FREE_KEYS = ("base.exp_name", "base.model_dir", "base.mano_root", "data.root_dir", "data.eval_type",
                    "data.prefetch_factor", "data.occ_intervals", "train.num_epochs", "train.num_workers",
                    "metric.", "test.", "summary.")


def _may_change(dotted: str) -> bool:
    return any(dotted == free or (free.endswith(".") and dotted.startswith(free)) for free in RESUME_FREE_KEYS)


def config_changes(saved: dict, current: dict) -> list[str]:
    """``"section.key: saved -> current"`` for every key outside :data:`RESUME_FREE_KEYS` whose value differs."""
    changes = []
    for section in sorted(set(saved) | set(current)):
        old, new = saved.get(section) or {}, current.get(section) or {}
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key) and not _may_change(f"{section}.{key}"):
                changes.append(f"{section}.{key}: {old.get(key)!r} -> {new.get(key)!r}")
    return changes


def check_resume_config(saved: dict | None, current: dict | None, path, allow_change: bool) -> None:
    """Refuse (CheckpointError) or, with ``allow_change``, log a warning about config changes since ``path`` was
    written; a changed ``optimizer.name`` is refused either way."""
    if saved is None or current is None:
        return
    old_name, new_name = (saved.get("optimizer") or {}).get("name"), current["optimizer"]["name"]
    if old_name != new_name:
        raise CheckpointError(f"{path}: written with optimizer.name={old_name!r}, the config now says {new_name!r}; "
                              f"its optimizer state cannot be resumed (use --only_weights to start a fresh optimizer)")
    changes = config_changes(saved, current)
    if not changes:
        return
    listing = "; ".join(changes)
    if not allow_change:
        raise CheckpointError(f"{path}: the config changed since this checkpoint was written ({listing}); the resumed "
                              f"run would not continue the same training. Restore those values, or pass "
                              f"--allow_config_change to resume anyway")
    logging.getLogger("train").warning("resuming %s with a changed config (%s); the optimizer and scheduler state "
                                       "are restored as saved", path, listing)


def load_optimizer_state(optimizer, state: dict, path) -> None:
    """``optimizer.load_state_dict(state)``, or CheckpointError naming ``path`` when the state was written by another
    optimizer (different hyper-parameter names) or for other parameters. The implementation flags (``fused`` /
    ``foreach``) stay this device's: a checkpoint of a CUDA run (fused Adam) resumes on the CPU and vice versa."""
    saved_keys = set(state["param_groups"][0]) if state.get("param_groups") else set()
    needed = set(optimizer.param_groups[0]) - saved_keys - {"params"}
    if needed:
        raise CheckpointError(f"{path}: its optimizer state was written by another optimizer than "
                              f"{type(optimizer).__name__} (it lacks {sorted(needed)}); use --only_weights to start a "
                              f"fresh optimizer")
    implementation = [{k: group[k] for k in ("fused", "foreach") if k in group} for group in optimizer.param_groups]
    try:
        optimizer.load_state_dict(state)
    except (ValueError, KeyError) as err:
        raise CheckpointError(f"{path}: its optimizer state does not fit the model's parameters ({err})") from None
    for group, flags in zip(optimizer.param_groups, implementation):  # the saved run's device chose its own
        group.update(flags)


def restore(path, model, optimizer, scheduler, only_weights: bool, config: dict | None = None,
            allow_config_change: bool = False) -> tuple[TrainState, list[str]]:
    """Load a checkpoint before ``accelerator.prepare``; returns the state and the model keys it lacked.

    ``only_weights`` (fine-tuning, e.g. UniHOPE from an HFL-Net checkpoint): parameters the checkpoint lacks keep
    their initialisation, optimizer / scheduler / counters start fresh. Otherwise the load is strict, the
    checkpoint's config is compared with ``config`` (:func:`check_resume_config`), and the optimizer, scheduler,
    counters and the position inside the epoch are restored.
    """
    checkpoint = load_checkpoint(path)
    missing, _ = load_weights(model, checkpoint["state_dict"], strict=not only_weights, source=str(path))
    if only_weights:
        return TrainState(), missing
    check_resume_config(checkpoint.get("config"), config, path, allow_config_change)
    if checkpoint.get("optimizer"):
        load_optimizer_state(optimizer, checkpoint["optimizer"], path)
    if checkpoint.get("scheduler"):
        scheduler.load_state_dict(checkpoint["scheduler"])
    return TrainState(epoch=checkpoint["epoch"], step=checkpoint["step"],
                      step_in_epoch=checkpoint.get("step_in_epoch", 0),
                      score_status=checkpoint.get("score_status") or {},
                      loss_sums=checkpoint.get("loss_sums") or {}), missing


def freeze_loaded_parameters(model, missing_keys) -> list[str]:
    """Official ``train.freeze_model``: when the resumed checkpoint lacked some of the model's parameters (the
    "new" ones), every parameter it did provide stops training (``requires_grad = False``); with nothing new,
    nothing is frozen. Returns the names of the frozen parameters."""
    missing = set(missing_keys)
    loaded = [(name, parameter) for name, parameter in model.named_parameters() if name not in missing]
    if len(loaded) == len(list(model.parameters())):
        return []
    for _, parameter in loaded:
        parameter.requires_grad_(False)
    return [name for name, _ in loaded]


def fit(trainer: Trainer, state: TrainState, num_epochs: int, val_loaders: dict, checkpoints: RunCheckpoints,
        logger, with_global: bool = True, stop_after_steps: int | None = None) -> TrainState:
    """Train from ``state`` to ``num_epochs``; validate on every split in ``val_loaders`` after each epoch.

    ``stop_after_steps``: leave after that many global steps with ``model_latest.pth`` written (for
    time-limited jobs; resume with ``--resume model_latest.pth``).
    """
    def after_step(trainer_, state_):
        checkpoints.after_step(trainer_, state_)
        if stop_after_steps is not None and state_.step >= stop_after_steps:
            checkpoints.save("model_latest.pth", trainer_, state_)
            return True
        return False

    trainer.on_step_end = after_step
    while state.epoch < num_epochs:
        losses = trainer.train_one_epoch(state)
        if stop_after_steps is not None and state.step >= stop_after_steps:
            logger.info("stopped after step %d (epoch %d, batch %d); resume from model_latest.pth",
                        state.step, state.epoch, state.step_in_epoch)
            return state
        split_metrics = {split: validate(trainer.model, loader, trainer.accelerator,
                                         lambda data: validation_metrics(data, with_global), VALIDATION_KEYS,
                                         desc=f"{split} {state.epoch}")
                         for split, loader in val_loaders.items()}
        if not is_per_iteration(trainer.scheduler):
            trainer.scheduler.step()
        state.epoch += 1
        state.step_in_epoch, state.loss_sums = 0, {}
        log_epoch(trainer, state, losses, split_metrics, logger)
        checkpoints.after_epoch(trainer, state, split_metrics)
    return state


def log_epoch(trainer: Trainer, state: TrainState, losses: dict, split_metrics: dict, logger) -> None:
    """One log line per split and TensorBoard scalars for the finished epoch."""
    logger.info("epoch %d: train %s", state.epoch, " ".join(f"{k}={v:.4g}" for k, v in losses.items()))
    for split, metrics in split_metrics.items():
        logger.info("epoch %d: %s %s", state.epoch, split, " ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
        if trainer.writer is not None:
            for key, value in metrics.items():
                trainer.writer.add_scalar(f"{split}_metric/{key}", value, state.epoch)
    if trainer.writer is not None:
        for key, value in losses.items():
            trainer.writer.add_scalar(f"train_epoch/{key}", value, state.epoch)
        trainer.writer.add_scalar("train/lr_epoch", trainer.optimizer.param_groups[0]["lr"], state.epoch)
        trainer.writer.flush()


def apply_not_load_rot_reg(cfg, model) -> None:
    """Official ``train.not_load_rot_reg``: after the optional resume, H2ONet's global-rotation regressor
    (``decoder3d.rot_reg``) starts again from a Kaiming-uniform init; any other model is a config error."""
    reset = getattr(model, "reset_rotation_regressor", None)
    if reset is None:
        raise ValueError(f"{cfg.source}: train.not_load_rot_reg re-initialises H2ONet's decoder3d.rot_reg, "
                         f"which model {cfg.model.name!r} does not have")
    reset()


def make_trainer(cfg, accelerator, model, loss_fn, train_loader, resume=None, only_weights=False,
                 writer=None, allow_config_change=False) -> tuple[Trainer, TrainState]:
    """Optimizer and scheduler from the config, optional resume, then ``accelerator.prepare``.

    The model moves to the accelerator's device first (in channels-last memory format with
    ``train.channels_last``), so that the optimizer is built for the device its parameters train on (fused
    Adam / AdamW on CUDA); ``train.compile`` compiles its forward in place (state-dict keys unchanged). The
    scheduler is not handed to accelerate: it is stepped once per epoch (or after every optimizer step for a
    per-iteration schedule), whatever the number of processes.
    """
    if len(train_loader) == 0:
        raise DataError(f"{cfg.source}: the training split has {len(train_loader.dataset)} samples, fewer than "
                        f"train.batch_size={cfg.train.batch_size}; every epoch would train on no batch "
                        f"(the last partial batch is dropped)")
    model.to(accelerator.device)
    if cfg.train.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model.parameters(), cfg.optimizer, accelerator.device)
    scheduler = build_scheduler(optimizer, cfg, steps_per_epoch=len(train_loader))
    state, missing = restore(resume, model, optimizer, scheduler, only_weights, cfg.to_dict(), allow_config_change) \
        if resume else (TrainState(), [])
    if cfg.train.freeze_model:
        frozen = freeze_loaded_parameters(model, missing)
        logging.getLogger("train").warning(
            f"{cfg.source}: train.freeze_model froze {len(frozen)} loaded parameters (the checkpoint lacked "
            f"{len(missing)} keys, which keep training)" if frozen else
            f"{cfg.source}: train.freeze_model has no effect: it freezes the parameters loaded by --resume only when "
            "the checkpoint lacks some of the model's (use --only_weights with such a checkpoint), as officially")
    if cfg.train.not_load_rot_reg:
        apply_not_load_rot_reg(cfg, model)
    if cfg.train.compile:
        model.compile()
    model, optimizer, train_loader = accelerator.prepare(model, optimizer, train_loader)
    trainer = Trainer(accelerator=accelerator, model=model, loss_fn=loss_fn, optimizer=optimizer, scheduler=scheduler,
                      train_loader=train_loader, seed=cfg.base.seed, grad_norm_clip=cfg.train.grad_norm_clip,
                      writer=writer, summary_steps=cfg.summary.save_summary_steps,
                      channels_last=cfg.train.channels_last)
    return trainer, state
