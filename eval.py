"""Evaluate a checkpoint on the whole test split; results in ``<model_dir>/all/``.

    accelerate launch --config_file yaml/1_gpu.yaml eval.py --model_dir experiment/unihope.dexycb_s0 \\
        --resume experiment/unihope.dexycb_s0/test_model_best.pth
"""
from engine.eval_command import run_evaluation
from utils.errors import command_main


def groups(predictions, cfg):
    return {"all": None}


def main(argv=None):
    return run_evaluation(argv, "Evaluate on the test split.", groups, "scores_all_table.txt")


if __name__ == "__main__":
    command_main(main)
