"""Export any registered model to ONNX, for ``predict.py --onnx`` (ONNX Runtime, no PyTorch training stack).

    python -m engine.export_onnx --model_dir experiment/unihope.dexycb_s0 --resume test_model_best.pth --out m.onnx

The ONNX graph takes the crop inputs ``predict.py`` builds (``img`` (B, 3, res, res), ``bbox_hand`` /
``bbox_obj`` (B, 4) crop px, plus the experiment's extra resized images) and returns the test-time outputs
``predict.py`` reads (engine/predict/network.py ``PREDICTION_KEYS``, those the model has), batch axis dynamic.
Tracing records one path through data-dependent Python control flow, so the A+B model (which routes samples to
one sub-model by the classifier) is exported as :class:`RouteFreeTwoInOne`: both sub-models on every sample, the
classifier's choice taken per sample with ``torch.where``; its outputs equal the routed forward's.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from datasets.hand_object_sample import SampleSettings
from datasets.registry import sample_settings
from engine.cli import base_parser, load_run_config
from engine.eval_command import add_weight_arguments, load_eval_weights
from engine.predict.crops import build_hand_crop
from engine.predict.hand_boxes import full_image_box
from engine.predict.network import PREDICTION_KEYS, model_input_keys
from models import build_model
from models.blocks.classifier_heads import GRASPING
from models.two_in_one import MESH_KEYS, TwoInOneBaselineClassifier

ONNX_OPSET = 17


class RouteFreeTwoInOne(nn.Module):
    """A+B for export (module docstring): mesh outputs and ``pred_grasping`` of the wrapped model, no routing."""

    def __init__(self, model: TwoInOneBaselineClassifier):
        super().__init__()
        self.model = model

    def forward(self, batch: dict) -> dict:
        grasping = self.model.cls_model(batch)["pred_obj_conf"].argmax(dim=1) == GRASPING  # (B,)
        ho = self.model.ho_model({**batch, "img": batch.get("img_ho", batch["img"])})
        h = self.model.h_model({**batch, "img": batch.get("img_h", batch["img"])})
        output = {key: torch.where(grasping.view(-1, 1, 1), ho[key], h[key]) for key in MESH_KEYS}
        output["pred_grasping"] = grasping
        return output


class _PositionalModel(nn.Module):
    """Adapter for the exporter: positional tensors in the order of ``input_keys`` -> tuple of ``output_keys``."""

    def __init__(self, model: nn.Module, input_keys: tuple, output_keys: tuple):
        super().__init__()
        self.model, self.input_keys, self.output_keys = model, input_keys, output_keys

    def forward(self, *tensors):
        outputs = self.model(dict(zip(self.input_keys, tensors)))
        return tuple(outputs[key] for key in self.output_keys)


def example_inputs(settings: SampleSettings, batch_size: int = 1) -> dict:
    """Crop inputs (numpy, batch axis first) of a grey picture seen as one whole-image hand."""
    image = np.full((settings.res, settings.res, 3), 128, np.uint8)
    crop = build_hand_crop(image, full_image_box(settings.res, settings.res), settings)
    return {key: np.repeat(crop.inputs[key][None], batch_size, axis=0) for key in model_input_keys(settings)}


def export_model(model: nn.Module, settings: SampleSettings, path: str | Path) -> tuple[str, ...]:
    """Write ``model`` (eval mode, CPU) as ONNX to ``path``; returns the exported output names."""
    model = model.cpu().eval()
    if isinstance(model, TwoInOneBaselineClassifier):
        model = RouteFreeTwoInOne(model).eval()
    input_keys = model_input_keys(settings)
    tensors = tuple(torch.from_numpy(v) for v in example_inputs(settings, batch_size=2).values())
    with torch.no_grad():
        outputs = model(dict(zip(input_keys, tensors)))
    output_keys = tuple(key for key in PREDICTION_KEYS if key in outputs)
    dynamic = {name: {0: "batch"} for name in (*input_keys, *output_keys)}
    with warnings.catch_warnings():  # the tracer warns at every shape check of the models (constants once traced)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter: the dynamo one needs onnxscript
        # models/blocks/roi.py uses sampling_ratio=-1 (adaptive), which is what ONNX's 0 means
        warnings.filterwarnings("ignore", message="ONNX export for RoIAlign with a non-zero sampling_ratio")
        torch.onnx.export(_PositionalModel(model, input_keys, output_keys), tensors, str(path), dynamo=False,
                          input_names=list(input_keys), output_names=list(output_keys), dynamic_axes=dynamic,
                          opset_version=ONNX_OPSET)
    return output_keys


def main(argv=None) -> Path:
    parser = base_parser("Export a model of an experiment folder to ONNX (inputs and outputs of predict.py).")
    add_weight_arguments(parser)
    parser.add_argument("--out", required=True, help="ONNX file to write")
    args = parser.parse_args(argv)
    cfg = load_run_config(args)
    model = build_model(cfg)
    load_eval_weights(model, args)
    names = export_model(model, sample_settings(cfg, "test", "dexycb"), args.out)
    print(f"ONNX written: {args.out} (outputs {', '.join(names)})")
    return Path(args.out)


if __name__ == "__main__":
    main()
