"""``predict.py``: hands in the user's own images and videos (boxes in, placed meshes, overlays and records out).

Modules by job: ``hand_boxes`` (where the hands are: boxes files, whole-image crops), ``detector`` (the optional
MediaPipe detector in its own environment), ``dataset_boxes`` (boxes files from a dataset's ground truth),
``crops`` (network inputs as in training), ``network`` (PyTorch or ONNX Runtime forward, 2D joint decoding),
``placement`` (camera placement and un-mirroring), ``pipeline`` (one image: crops -> network -> placement),
``outputs`` (overlay image, montage, JSON record, ``.obj``), ``video`` (frames, ``.mp4``, smoothing),
``command`` (the command-line flow).
"""


from utils.errors import InputError


class PredictInputError(InputError, ValueError):
    """Bad user input (file, record, key, option); ``predict.py`` prints it and exits with status 2."""
