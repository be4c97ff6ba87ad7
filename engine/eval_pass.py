"""Evaluation runs shared by eval.py, eval_h_ho.py and eval_occ_intervals.py.

One pass over the test split through an accelerate-prepared loader: every process predicts its shard, the
needed tensors are gathered with ``gather_for_metrics`` (padding dropped: each sample exactly once, in loader
order, with any number of processes), and the main process streams them into the evaluators. Then the caller's
grouping (all / h-ho / occlusion bins) selects samples and each group's report is written.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from utils.atomic import atomic_write
from utils.evaluation import HandEvaluator, ObjectPoseEvaluator, object_eval_selection
from utils.metrics.classification import grasp_classification_metrics
from utils.metrics.object_pose import object_pose_from_voting
from utils.runtime import to_device
from utils.ycb import bbox21_from_points

HAND_KEYS = ("pred_joints3d_cam", "pred_verts3d_cam", "gt_joints3d_cam", "gt_verts3d_cam", "root_joint_flip")
LABEL_KEYS = ("gt_grasping", "gt_occ_ratio", "pred_obj_conf", "pred_grasping")
OBJECT_KEYS = ("preds_obj_0", "preds_obj_1", "preds_obj_2", "bbox_obj", "obj_pose", "obj_cls_label", "cam_intr",
               "affinetrans", "do_flip")


@dataclass
class Predictions:
    """What one evaluation pass collected (main process)."""
    hand: HandEvaluator | None = None
    objects: ObjectPoseEvaluator | None = None
    object_rows: list = field(default_factory=list)      # sample indices of the object evaluator's entries
    grasp: list = field(default_factory=list)            # (N,) GT grasp labels
    pred_grasp: list = field(default_factory=list)       # (N,) predicted grasp labels, when predicted
    occ_ratio: list = field(default_factory=list)        # (N,)
    saved: dict = field(default_factory=dict)            # per-sample arrays kept for --save_predictions / HO3D

    def labels(self, name) -> np.ndarray:
        values = getattr(self, name)
        return np.concatenate(values) if values else np.empty(0)


def _first_column(tensor: torch.Tensor) -> np.ndarray:
    array = tensor.detach().float().cpu().numpy()
    return array[:, 0] if array.ndim == 2 else array.reshape(len(array))


def predicted_grasp(outputs: dict) -> torch.Tensor | None:
    if "pred_grasping" in outputs:
        return outputs["pred_grasping"]
    if "pred_obj_conf" in outputs:
        return outputs["pred_obj_conf"][:, :2].argmax(1)
    return None


@torch.no_grad()
def collect(model, loader, accelerator, object_points: dict | None, obj_eval_mode: str = "gt",
            keep: tuple = (), progress=None) -> Predictions:
    """Run ``model`` over ``loader`` and stream gathered results into evaluators on the main process.

    Args:
        object_points: ``{class id: (N, 3) model points, metres}`` to evaluate object poses, or None.
        obj_eval_mode: ``cfg.metric.obj_eval_mode`` (``gt``, ``pred-gt``, ``all``).
        keep: output keys to keep per sample (e.g. ``pred_joints3d_cam`` for the HO3D submission).
    """
    model.eval()
    result = Predictions()
    offset = 0
    iterable = progress(loader) if progress else loader
    for batch in iterable:
        batch = to_device(batch, accelerator.device)
        outputs = model(batch)
        merged = {**batch, **outputs}
        grasp = predicted_grasp(outputs)
        if grasp is not None:
            merged["pred_grasping"] = grasp
        wanted = set(HAND_KEYS + LABEL_KEYS + tuple(keep)) | (set(OBJECT_KEYS) if object_points else set())
        gathered = accelerator.gather_for_metrics(
            {k: v.contiguous() for k, v in merged.items() if k in wanted and isinstance(v, torch.Tensor)})
        if not accelerator.is_main_process or not gathered:
            continue
        size = next(iter(gathered.values())).shape[0]
        _add_batch(result, gathered, object_points, obj_eval_mode, keep, offset)
        offset += size
    return result


def _add_batch(result: Predictions, data: dict, object_points, obj_eval_mode: str, keep: tuple, offset: int):
    numpy = {k: v.detach().float().cpu().numpy() for k, v in data.items()}
    size = len(next(iter(numpy.values())))
    grasp = _first_column(data["gt_grasping"]) if "gt_grasping" in data else np.full(size, -1.0)
    occ = numpy["gt_occ_ratio"].reshape(size) if "gt_occ_ratio" in numpy else np.full(size, np.nan)
    result.grasp.append(grasp)
    result.occ_ratio.append(occ)
    if "pred_grasping" in data:
        result.pred_grasp.append(numpy["pred_grasping"].reshape(size))
    if all(k in numpy for k in HAND_KEYS):
        result.hand = result.hand or HandEvaluator()
        result.hand.add(*(numpy[k] for k in HAND_KEYS), grasp=np.where(grasp < 0, -1, grasp > 0.5),
                        occ_ratio=occ)
    for key in keep:
        if key in numpy:
            result.saved.setdefault(key, []).append(numpy[key])
    if object_points and all(k in numpy for k in ("preds_obj_0", "obj_pose", "obj_cls_label")):
        _add_objects(result, numpy, grasp, object_points, obj_eval_mode, offset)


def _add_objects(result: Predictions, numpy: dict, grasp, object_points, obj_eval_mode: str, offset: int):
    rows = object_eval_selection(obj_eval_mode, grasp > 0.5, numpy.get("pred_grasping"))
    if len(rows) == 0:
        return
    result.objects = result.objects or ObjectPoseEvaluator(object_points)
    class_ids = numpy["obj_cls_label"].reshape(-1).astype(np.int64)[rows] + 1  # YCB id (HO3D obj_cls is a name)
    keypoints = np.stack([bbox21_from_points(object_points[int(c)]) for c in class_ids])
    rotation, translation = object_pose_from_voting(
        numpy["preds_obj_0"][rows], numpy["preds_obj_1"][rows], numpy["preds_obj_2"][rows],
        numpy["bbox_obj"][rows], keypoints, numpy["cam_intr"][rows],
        affinetrans=numpy["affinetrans"][rows] if "affinetrans" in numpy else None,
        do_flip=numpy["do_flip"][rows] if "do_flip" in numpy else None)
    pose_gt = numpy["obj_pose"][rows]
    result.objects.add((rotation, translation), (pose_gt[:, :3, :3], pose_gt[:, :3, 3]), class_ids,
                       numpy["cam_intr"][rows])
    result.object_rows.append(rows + offset)


def group_reports(predictions: Predictions, groups: dict, metric_cfg) -> dict:
    """``{group: HandReport}`` with grasp accuracy and object success rates added where available."""
    object_rows = np.concatenate(predictions.object_rows) if predictions.object_rows else np.empty(0, np.int64)
    gt, pred = predictions.labels("grasp"), predictions.labels("pred_grasp")
    reports = {}
    for name, indices in groups.items():
        report = predictions.hand.results(indices)
        rows = np.arange(len(gt)) if indices is None else np.asarray(indices)
        if len(pred) and len(rows) and np.all(gt[rows] >= 0):
            grasp = grasp_classification_metrics(pred[rows], gt[rows] > 0.5)
            report.scores.update(grasp)
        if predictions.objects is not None:
            selected = np.ones(len(object_rows), bool) if indices is None else np.isin(object_rows, indices)
            if selected.any():
                rates = predictions.objects.results(selected, metric_cfg.rep_threshold, metric_cfg.add_threshold)
                report.scores.update(obj_rep_success=100.0 * rates["REP"]["average"],
                                     obj_add_success=100.0 * rates["ADD"]["average"],
                                     obj_median_rep_px=rates["median_rep_px"], obj_median_add_mm=rates["median_add_mm"],
                                     obj_num_samples=rates["num_samples"], object=rates)
        reports[name] = report
    return reports


def save_predictions(path: Path, predictions: Predictions) -> None:
    """Per-sample arrays kept during the pass, plus the GT grasp label (-1 = none), the occlusion ratio and, when
    the model predicts one, the predicted grasp label, as an ``.npz`` (written atomically)."""
    arrays = {k: np.concatenate(v) for k, v in predictions.saved.items()}
    arrays.update(gt_grasping=predictions.labels("grasp"), gt_occ_ratio=predictions.labels("occ_ratio"))
    if predictions.pred_grasp:
        arrays.update(pred_grasping=predictions.labels("pred_grasp"))
    with atomic_write(path, mode="wb") as f:
        np.savez_compressed(f, **arrays)
