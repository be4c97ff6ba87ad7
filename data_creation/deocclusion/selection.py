"""Scoring de-occluded candidates with a hand pose model and choosing the control strength (adaptive strength).

A *scorer* is any callable ``scorer(images, sample) -> metrics``:

* ``images``: (N, 3, H, W) float32 tensor, RGB in [0, 1] — row 0 the original crop, rows 1.. the candidates,
  all at the stored crop resolution;
* ``sample``: the frame's un-augmented sample dict (official keys, numpy: ``bbox_hand`` / ``bbox_obj`` (4,) crop
  px, ``mano_param`` (58,), ...) plus ``key``;
* ``metrics``: dict name -> (N,) array, lower = better; ``score`` is required, ``mpjpe``, ``pa_mpjpe``,
  ``mpvpe``, ``pa_mpvpe`` (mm) are recorded when present.

:class:`ModelScorer` is the real one (a checkpoint of this project, ``score = MPJPE + PA-MPJPE + MPVPE +
PA-MPVPE`` as the training score); tests inject stubs. The chosen candidate is the one with the lowest score.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from models import build_model
from utils.checkpoint import load_model_checkpoint
from utils.config import load_config
from utils.metrics.hand import validation_scores

Scorer = Callable[[torch.Tensor, dict], dict]
METRIC_NAMES = ("mpjpe", "pa_mpjpe", "mpvpe", "pa_mpvpe", "score")
# names of the official generation record (docs/paper.md §2.2): ori_MPJPE, gen_PA_MPVPE, ori_score, ...
OFFICIAL_METRIC_NAMES = {"mpjpe": "MPJPE", "pa_mpjpe": "PA_MPJPE", "mpvpe": "MPVPE", "pa_mpvpe": "PA_MPVPE",
                         "score": "score"}


def checked_metrics(metrics: dict, count: int, key: str) -> dict[str, np.ndarray]:
    """Validate a scorer's output: a ``score`` entry and (count,) arrays; unknown names are dropped.

    Raises:
        ValueError: naming the sample key, when ``score`` is missing or a shape is wrong.
    """
    if "score" not in metrics:
        raise ValueError(f"sample '{key}': the scorer returned {sorted(metrics)}; a 'score' entry is required")
    out = {}
    for name in METRIC_NAMES:
        if name in metrics:
            values = np.asarray(metrics[name], dtype=np.float64).reshape(-1)
            if values.shape != (count,):
                raise ValueError(f"sample '{key}': scorer metric '{name}' has {values.size} values for {count} "
                                 f"images")
            out[name] = values
    return out


def lowest_score(scores: Sequence[float]) -> Optional[int]:
    """Index of the lowest finite score (first one on ties), or None when no score is finite."""
    finite = [(value, i) for i, value in enumerate(scores) if math.isfinite(value)]
    return min(finite)[1] if finite else None


def record_metrics(metrics: dict[str, np.ndarray], original: int, chosen: int) -> dict[str, float]:
    """Official-style record entries ``ori_<NAME>`` / ``gen_<NAME>`` for the original and the chosen image."""
    out = {}
    for name, values in metrics.items():
        out[f"ori_{OFFICIAL_METRIC_NAMES[name]}"] = float(values[original])
        out[f"gen_{OFFICIAL_METRIC_NAMES[name]}"] = float(values[chosen])
    return out


class ModelScorer:
    """Scores images with a hand pose model of this project (eval mode), against the sample's GT MANO.

    Args:
        model: a registered model whose eval forward takes ``img``, ``bbox_hand``, ``bbox_obj``, ``mano_param``
            and returns ``pred_joints3d_cam`` / ``pred_verts3d_cam`` / ``gt_joints3d_cam`` / ``gt_verts3d_cam``.
        input_res: the model's input side (px); images of another size are resized (bilinear) and the boxes
            scaled with them.
        with_global: ``cfg.train.w_gr`` (True: score = MPJPE + PA-MPJPE + MPVPE + PA-MPVPE).
    """

    def __init__(self, model: torch.nn.Module, input_res: int, with_global: bool = True):
        self.model = model.eval()
        self.input_res = int(input_res)
        self.with_global = with_global

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, sample: dict) -> dict[str, np.ndarray]:
        parameter = next(self.model.parameters())
        count, side = images.shape[0], images.shape[-1]
        images = images.to(device=parameter.device, dtype=parameter.dtype)
        if side != self.input_res:
            images = torch.nn.functional.interpolate(images, size=(self.input_res, self.input_res),
                                                     mode="bilinear", align_corners=False)
        factor = self.input_res / side

        def repeated(name: str, scale: float = 1.0) -> torch.Tensor:
            value = torch.as_tensor(np.asarray(sample[name], np.float32) * scale, device=parameter.device)
            return value.reshape(1, -1).expand(count, -1).to(parameter.dtype)

        output = self.model({"img": images, "bbox_hand": repeated("bbox_hand", factor),
                             "bbox_obj": repeated("bbox_obj", factor), "mano_param": repeated("mano_param")})
        arrays = [output[name].float().cpu().numpy() for name in
                  ("pred_joints3d_cam", "pred_verts3d_cam", "gt_joints3d_cam", "gt_verts3d_cam")]
        per_image = [validation_scores(*(a[i:i + 1] for a in arrays), with_global=self.with_global)
                     for i in range(count)]
        return {name: np.array([scores[name] for scores in per_image]) for name in METRIC_NAMES}


def build_model_scorer(model_dir: str | Path, checkpoint: str | Path, device: torch.device | str = "cpu",
                       overrides: Sequence[str] = ()) -> ModelScorer:
    """The scorer of an experiment: ``models.build_model(cfg)`` + strict ``load_model_checkpoint``."""
    cfg = load_config(model_dir, overrides=overrides)
    model = build_model(cfg)
    load_model_checkpoint(model, checkpoint)
    return ModelScorer(model.to(device), cfg.data.input_img_shape[0], cfg.train.w_gr)
