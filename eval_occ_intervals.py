"""Evaluate by hand-occlusion ratio bins (edges ``data.occ_intervals``, default [0, .25, .5, .75, 1]).

Bins follow the official membership rule (``lo <= r <= hi``, a ratio on an inner edge goes to the lower bin);
ratios outside the edges go to ``occ_(1,)``. Results in ``<model_dir>/occ_[lo,hi]/``; empty bins are reported
as empty.

    accelerate launch --config_file yaml/1_gpu.yaml eval_occ_intervals.py --model_dir experiment/unihope.dexycb_s0 \\
        --resume experiment/unihope.dexycb_s0/test_model_best.pth --set data.occ_intervals=[0,0.5,1]
"""
from engine.cli import eval_parser
from utils.errors import command_main


def groups(predictions, cfg):
    from utils.evaluation import occlusion_groups  # lazy (entry point): --help answers without numpy

    return occlusion_groups(predictions.hand.occlusion_ratios, cfg.data.occ_intervals)


def check_edges(cfg):
    """``data.occ_intervals`` must be usable bin edges; checked before any model or data is loaded."""
    from utils.evaluation import occlusion_edges  # lazy (entry point): --help answers without numpy

    occlusion_edges(cfg.data.occ_intervals)


def main(argv=None):
    args = eval_parser("Evaluate by hand-occlusion ratio bins.").parse_args(argv)
    from engine.eval_command import run_evaluation  # lazy (entry point): --help answers without torch or the models

    return run_evaluation(args, groups, "scores_occ_table.txt", check_config=check_edges)


if __name__ == "__main__":
    command_main(main)
