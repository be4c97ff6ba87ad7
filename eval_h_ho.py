"""Evaluate split by the GT grasp label: hand-only (``h/``), hand-object (``ho/``) and ``all/``.

    accelerate launch --config_file yaml/1_gpu.yaml eval_h_ho.py --model_dir experiment/unihope.dexycb_s0 \\
        --resume experiment/unihope.dexycb_s0/test_model_best.pth
"""
from engine.cli import eval_parser
from utils.errors import command_main


def groups(predictions, cfg):
    from utils.evaluation import grasp_groups  # lazy (entry point): --help answers without numpy

    return grasp_groups(predictions.hand.grasp_labels)


def main(argv=None):
    args = eval_parser("Evaluate hand-only vs hand-object samples.").parse_args(argv)
    from engine.eval_command import run_evaluation  # lazy (entry point): --help answers without torch or the models

    return run_evaluation(args, groups, "scores_h_ho_table.txt")


if __name__ == "__main__":
    command_main(main)
