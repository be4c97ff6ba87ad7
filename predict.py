"""Reconstruct the hands in your own images and videos (README "Your own images").

    python predict.py photo.jpg --model_dir experiment/unihope.dexycb_s0 --resume test_model_best.pth \\
        --boxes boxes.json --out predictions/
"""
import os

from utils.errors import command_main


def main(argv=None):
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")  # headless rendering; before anything imports OpenGL
    from engine.predict.command import main as predict_main  # imported here: after PYOPENGL_PLATFORM is set

    return predict_main(argv)


if __name__ == "__main__":
    command_main(main)
