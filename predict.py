"""Reconstruct the hands in your own images and videos (README "Your own images").

    python predict.py photo.jpg --model_dir experiment/unihope.dexycb_s0 --resume test_model_best.pth \\
        --boxes boxes.json --out predictions/
"""
from utils.errors import command_main


def main(argv=None):
    """Bad input (options, boxes, images, config, checkpoint, missing files) ends with one message and exit status 2
    (utils/errors.py ``command_main``; ``--debug`` shows the traceback)."""
    from engine.predict.command import main as predict_main  # lazy: a fast --help (entry point)

    return command_main(predict_main, argv)


if __name__ == "__main__":
    main()
