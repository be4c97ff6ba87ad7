"""Evaluate a checkpoint on the whole test split; results in ``<model_dir>/all/``.

    accelerate launch --config_file yaml/1_gpu.yaml eval.py --model_dir experiment/unihope.dexycb_s0 \\
        --resume experiment/unihope.dexycb_s0/test_model_best.pth
"""
from engine.cli import eval_parser
from utils.errors import command_main


def groups(predictions, cfg):
    return {"all": None}


def main(argv=None):
    args = eval_parser("Evaluate on the test split.").parse_args(argv)
    from engine.eval_command import run_evaluation  # lazy (entry point): --help answers without torch or the models

    return run_evaluation(args, groups, "scores_all_table.txt")


if __name__ == "__main__":
    command_main(main)
