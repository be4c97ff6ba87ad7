"""Train a model described by ``experiment/<name>/cfg.json`` on any device through accelerate.

    accelerate launch --config_file yaml/1_gpu.yaml train.py --model_dir experiment/unihope.dexycb_s0
    accelerate launch --config_file yaml/cpu.yaml train.py --model_dir experiment/x --resume experiment/x/model_latest.pth
    python train.py --model_dir experiment/x --resume hflnet_best.pth --only_weights   # fine-tune, new params allowed

``train.batch_size`` is the global batch, split across processes (official ``split_batches=True``).
"""
from __future__ import annotations

import os

from engine.cli import base_parser, count, load_run_config
from utils.errors import command_main


def parse_args(argv=None):
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--resume", default=None, help="checkpoint to resume from (official layout)")
    parser.add_argument("--only_weights", "-ow", action="store_true",
                        help="load weights only (non-strict, fresh optimizer): fine-tuning from another model")
    parser.add_argument("--skip_evaluate", action="store_true", help="no validation after each epoch")
    parser.add_argument("--allow_config_change", action="store_true",
                        help="--resume even if the config changed in ways that break step-exact resume (warns)")
    parser.add_argument("--save_every_steps", type=count(0), default=0,
                        help="also write model_latest.pth every N steps (pre-emptible jobs; 0 = never)")
    parser.add_argument("--stop_after_steps", type=count(1), default=None,
                        help="leave after N global steps with model_latest.pth written (resume later)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = load_run_config(args)

    # lazy (entry point): --help and config errors answer without loading torch, accelerate or the models
    from accelerate.utils import DataLoaderConfiguration, DistributedDataParallelKwargs

    from datasets import build_dataset, build_loader
    from engine.fit import RunCheckpoints, fit, make_trainer
    from engine.trainer import SeededSamples
    from models import build_model
    from models.losses import build_loss
    from utils.atomic import remove_stale_temporaries
    from utils.config import save_config
    from utils.runtime import (allow_tf32_matmul, make_accelerator, resolve_mixed_precision, seed_everything,
                               setup_logger, summary_writer)

    allow_tf32_matmul(cfg.train.tf32)
    accelerator = make_accelerator(
        split_batches=True, mixed_precision=resolve_mixed_precision(cfg.train.mixed_precision),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=cfg.base.seed,
                                                  non_blocking=True),
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    main_process = accelerator.is_main_process
    os.makedirs(cfg.base.model_dir, exist_ok=True)
    logger = setup_logger("train", os.path.join(cfg.base.model_dir, "train.log"), main_process)
    if main_process:
        for leftover in remove_stale_temporaries(cfg.base.model_dir):
            logger.info("removed %s, left by an interrupted save", leftover)
        save_config(cfg, os.path.join(cfg.base.model_dir, "cfg_resolved.json"))
    seed_everything(cfg.base.seed, accelerator.process_index)
    logger.info("processes=%d device=%s global batch=%d precision=%s channels_last=%s tf32=%s compile=%s",
                accelerator.num_processes, accelerator.device, cfg.train.batch_size, accelerator.mixed_precision,
                cfg.train.channels_last, cfg.train.tf32, cfg.train.compile)

    model = build_model(cfg)
    debug_limit = {"train": 10 * cfg.train.batch_size, "eval": 10 * cfg.test.batch_size} if args.debug else {}
    train_set = SeededSamples(build_dataset(cfg, "train"), cfg.base.seed, debug_limit.get("train"))
    train_loader = build_loader(cfg, "train", train_set)
    val_loaders = {} if args.skip_evaluate else {
        split: accelerator.prepare(build_loader(cfg, split, _first(build_dataset(cfg, split), debug_limit.get("eval"))))
        for split in cfg.data.eval_type}
    writer = summary_writer(cfg.base.model_dir, main_process)
    trainer, state = make_trainer(cfg, accelerator, model, build_loss(cfg), train_loader, resume=args.resume,
                                  only_weights=args.only_weights, writer=writer,
                                  allow_config_change=args.allow_config_change)
    checkpoints = RunCheckpoints(cfg.base.model_dir, accelerator, cfg.summary, args.save_every_steps, cfg.to_dict())
    state = fit(trainer, state, cfg.train.num_epochs, val_loaders, checkpoints, logger,
                with_global=cfg.train.w_gr, stop_after_steps=args.stop_after_steps)
    logger.info("finished at epoch %d, step %d; scores %s", state.epoch, state.step, state.score_status)
    if accelerator.num_processes > 1:
        sums = replica_checksums(accelerator, trainer.model)
        logger.info("replica parameter checksums: [%s]", ", ".join(repr(s) for s in sums))
        if len(set(sums)) != 1:
            raise RuntimeError(f"model replicas diverged across processes: parameter checksums {sums}")
    if writer is not None:
        writer.close()
    accelerator.wait_for_everyone()
    accelerator.end_training()


def replica_checksums(accelerator, model) -> list[float]:
    """Sum of all parameters of each process's replica (float64), gathered: equal when DDP kept them in sync."""
    total = sum(p.detach().double().sum() for p in model.parameters())
    return accelerator.gather(total.reshape(1).to(accelerator.device)).tolist()


def _first(dataset, limit):
    """The first ``limit`` samples of ``dataset`` (``--debug``), or all of it."""
    from torch.utils.data import Subset  # lazy (entry point): see main()

    return dataset if limit is None else Subset(dataset, range(min(len(dataset), limit)))


if __name__ == "__main__":
    command_main(main)
