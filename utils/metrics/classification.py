"""Grasp classification metrics (hand-only = 0 vs hand-object / grasping = 1).

The official classifier metric is ``obj_grasp_acc = mean(argmax(logits) == gt_grasping)``
(docs/official-data.md §4.2); precision and recall of the "grasping" class are added here.
"""
import numpy as np

from utils.metrics.arrays import to_numpy

__all__ = ["grasp_labels_from_predictions", "grasp_classification_metrics"]


def grasp_labels_from_predictions(pred):
    """Predicted grasp labels (B,) bool from logits (B, 2) (argmax; ties -> class 0) or labels (B,)."""
    pred = to_numpy(pred)
    if pred.ndim == 2 and pred.shape[1] == 2:
        return pred.argmax(axis=1) == 1
    if pred.ndim == 1:
        if pred.dtype != bool and not np.all(np.isin(pred, (0, 1))):
            raise ValueError("grasp predictions given as labels must be 0/1 or bool; "
                             f"got values {np.unique(pred)[:5]} (pass logits as shape (B, 2))")
        return pred.astype(bool)
    raise ValueError(f"grasp predictions: expected logits (B, 2) or labels (B,), got shape {pred.shape}")


def grasp_classification_metrics(pred, gt_grasping):
    """Accuracy, precision and recall of the grasping class.

    Args:
        pred: logits (B, 2) or predicted labels (B,) (bool / 0-1).
        gt_grasping: (B,) GT labels (bool / 0-1), ``gt_grasping`` of the batch.

    Returns:
        dict ``grasp_accuracy, grasp_precision, grasp_recall`` (fractions in [0, 1]) and ``grasp_num_samples``.
        Precision is NaN when nothing is predicted as grasping, recall is NaN when no sample is grasping,
        everything is NaN for B = 0 (undefined, never silently 0).
    """
    pred_labels = grasp_labels_from_predictions(pred)
    gt = grasp_labels_from_predictions(np.asarray(to_numpy(gt_grasping)).reshape(-1))
    if gt.shape != pred_labels.shape:
        raise ValueError(f"grasp predictions ({pred_labels.shape[0]}) and labels ({gt.shape[0]}) differ in count")
    true_pos = np.sum(pred_labels & gt)

    def ratio(num, den):
        return float(num / den) if den > 0 else float("nan")

    return {
        "grasp_accuracy": ratio(np.sum(pred_labels == gt), len(gt)),
        "grasp_precision": ratio(true_pos, np.sum(pred_labels)),
        "grasp_recall": ratio(true_pos, np.sum(gt)),
        "grasp_num_samples": int(len(gt)),
    }
