"""Command-line arguments shared by train.py and the evaluation scripts (official names kept)."""
from __future__ import annotations

import argparse
import logging

from utils.config import load_config
from utils.config_effects import inert_key_warnings

# A+B evaluation: command-line flag -> the sub-model that receives that checkpoint
AB_CHECKPOINTS = {"resume_cls": "cls_model", "resume_h": "h_model", "resume_ho": "ho_model"}


def base_parser(description: str) -> argparse.ArgumentParser:
    """``--model_dir`` (folder with cfg.json; overrides ``base.model_dir``), ``--set section.key=value`` and
    ``--debug``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model_dir", required=True, help="experiment folder holding cfg.json; outputs go here")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override any config key, e.g. --set train.batch_size=8 (repeatable; JSON values)")
    parser.add_argument("--debug", "-d", action="store_true",
                        help="debugging run: stop each loop after 10 batches, and show the traceback of every error "
                             "(without it, bad input ends the command with one message and exit status 2)")
    return parser


def add_weight_arguments(parser: argparse.ArgumentParser) -> None:
    """``--resume`` and the A+B ``--resume_cls/_h/_ho`` flags (read by ``engine.eval_command.load_eval_weights``)."""
    parser.add_argument("--resume", default=None, help="checkpoint of the model (official layout or bare state dict)")
    for flag, part in AB_CHECKPOINTS.items():
        parser.add_argument(f"--{flag}", default=None, help=f"A+B models: checkpoint of the {part}")


def eval_parser(description: str) -> argparse.ArgumentParser:
    """The evaluation scripts' command line: :func:`base_parser` plus the checkpoint and output options."""
    parser = base_parser(description)
    add_weight_arguments(parser)
    parser.add_argument("--save_predictions", action="store_true",
                        help="also write per-sample predictions to <model_dir>/predictions_test.npz")
    parser.add_argument("--no_plots", action="store_true", help="skip the PCK plot PNGs")
    parser.add_argument("--sheet", type=int, default=0, metavar="N",
                        help="also draw the predicted hand mesh over N test images: <model_dir>/prediction_sheet.png")
    return parser


def count(minimum: int):
    """argparse ``type``: a whole number >= ``minimum`` (the error names the value and the bound)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value
    return parse


def load_run_config(args, extra_overrides=()):
    """The experiment config with ``--set`` overrides and ``--model_dir`` applied; logs a warning for every key it
    sets that has no effect here (``utils/config_effects.py``: key, file, what the official code did)."""
    cfg = load_config(args.model_dir, overrides=[*args.overrides, *extra_overrides], model_dir=args.model_dir)
    for message in inert_key_warnings(cfg):
        logging.getLogger("config").warning(message)
    return cfg
