"""The network behind ``predict.py``: a PyTorch model or an exported ONNX file, same inputs, same outputs.

Both backends take the batched crop inputs of :mod:`engine.predict.crops` (numpy, batch axis first) and return
numpy arrays under the model's own output names (:data:`PREDICTION_KEYS`, those the model has). The 2D joints
come back in each model family's training convention and are decoded to crop pixels by :func:`joints_2d_crop_px`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import torch

from engine.predict import PredictInputError
from utils.runtime import to_device

JOINTS_3D_KEY, VERTS_3D_KEY = "pred_joints3d_cam", "pred_verts3d_cam"
# 2D joints: normalised by the batch's joints_img convention (HFL-Net / UniHOPE / Semi-Hand-Object:
# preds_joints2d; HandOccNet / Semi-Hand / MobRecon / H2ONet: pred_joints_img), or SimpleHand's uv = px / res.
JOINT_2D_KEYS = ("preds_joints2d", "pred_joints_img")
SIMPLEHAND_UV_KEY = "uv"
PREDICTION_KEYS = (JOINTS_3D_KEY, VERTS_3D_KEY, *JOINT_2D_KEYS, SIMPLEHAND_UV_KEY, "pred_obj_conf",
                   "pred_hand_occ", "pred_grasping")


def model_input_keys(settings) -> tuple[str, ...]:
    """The crop input names a model of these :class:`SampleSettings` reads (fixed order, used by ONNX too)."""
    return ("img", "bbox_hand", "bbox_obj", *sorted(settings.extra_resolutions))


def joints_2d_crop_px(outputs: dict, bbox_hand: np.ndarray, res: int, box_normalised: bool) -> Optional[np.ndarray]:
    """(B, 21, 2) predicted 2D joints in crop px, or None when the model predicts none (A+B, mean pose).

    Args:
        outputs: the network's numpy outputs.
        bbox_hand: (B, 4) crop px, the ``bbox_hand`` input.
        res: crop side px.
        box_normalised: ``cfg.data.bbox_hand_normalize_2d_joint``: the loader's ``joints_img`` (what the 2D head
            was trained on) is relative to ``bbox_hand`` when True, else ``px / res``.
    """
    if SIMPLEHAND_UV_KEY in outputs:
        return np.asarray(outputs[SIMPLEHAND_UV_KEY], np.float64).reshape(-1, 21, 2) * res
    key = next((k for k in JOINT_2D_KEYS if k in outputs), None)
    if key is None:
        return None
    uv = np.asarray(outputs[key], np.float64)
    if not box_normalised:
        return uv * res
    box = np.asarray(bbox_hand, np.float64)[:, None, :]  # (B, 1, 4)
    return box[..., :2] + uv * (box[..., 2:] - box[..., :2])


def _numpy(value: torch.Tensor) -> np.ndarray:
    value = value.detach().cpu()
    return value.float().numpy() if value.is_floating_point() else value.numpy()


class TorchPredictor:
    """A built model with its weights loaded, in eval mode on ``device``."""

    def __init__(self, model: torch.nn.Module, device):
        self.model, self.device = model.to(device).eval(), device

    @torch.no_grad()
    def __call__(self, inputs: dict) -> dict:
        batch = to_device({key: torch.from_numpy(np.ascontiguousarray(v)) for key, v in inputs.items()}, self.device)
        outputs = self.model(batch)
        return {key: _numpy(outputs[key]) for key in PREDICTION_KEYS if key in outputs}


class OnnxPredictor:
    """An ONNX file written by :mod:`engine.export_onnx`, run by ONNX Runtime on the CPU."""

    def __init__(self, path: str | Path):
        try:
            import onnxruntime
        except ImportError:
            raise PredictInputError("--onnx needs onnxruntime: .venv/bin/python -m pip install onnxruntime") from None
        path = Path(path)
        if not path.is_file():
            raise PredictInputError(f"ONNX file {path} does not exist")
        self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.input_names = [node.name for node in self.session.get_inputs()]
        self.output_names = [node.name for node in self.session.get_outputs()]

    def __call__(self, inputs: dict) -> dict:
        missing = [name for name in self.input_names if name not in inputs]
        if missing:
            raise PredictInputError(f"the ONNX file expects inputs {self.input_names}; this experiment's crops lack "
                                    f"{missing} (was it exported from another --model_dir?)")
        values = self.session.run(self.output_names, {name: np.ascontiguousarray(inputs[name])
                                                      for name in self.input_names})
        return dict(zip(self.output_names, values))
