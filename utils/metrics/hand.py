"""Hand pose errors: root alignment, MPJPE / MPVPE, similarity Procrustes, PA errors, the validation score.

All functions are batched over samples, take metres (camera frame) and never modify their inputs.
Joint order: manopth / DexYCB (wrist = joint 0). Reference: docs/official-data.md §4.1-4.3, §11.
The passes over the points (root translation, Procrustes sums, applying the similarity, point distances) are
small numba kernels: numpy broadcasts over a last axis of 3 with a short inner loop per point and needs
temporaries. The (B, 3, 3) SVDs are numpy's batched ``svd``.
"""
import numpy as np
from numba import njit

from utils.hand_conventions import MM_PER_M
from utils.metrics.arrays import as_float_array, as_points

__all__ = [
    "WRIST",
    "root_align",
    "point_errors",
    "mean_point_error_mm",
    "similarity_procrustes",
    "procrustes_align",
    "validation_scores",
]

WRIST = 0
_NORM_EPS = 1e-8  # added to the Frobenius norms, as the official align_w_scale does


def root_align(pred_joints, pred_verts, gt_root, root_index=WRIST):
    """Translate each predicted hand so that its root joint lands on the GT root (official §4.1).

    ``pred -= pred[root] - gt_root``; the vertices get the same per-sample offset.

    Args:
        pred_joints: (B, J, 3) metres.
        pred_verts: (B, V, 3) metres, or None.
        gt_root: (B, 3) metres, the GT root joint (``root_joint_flip`` for DexYCB).
        root_index: index of the root joint in ``pred_joints``.

    Returns:
        (joints (B, J, 3), verts (B, V, 3) or None) as new float64 arrays.
    """
    joints = as_points(pred_joints, "pred_joints", copy=False)
    batch = joints.shape[0]
    root = as_float_array(gt_root, "gt_root", (batch, 3), copy=False)
    offset = joints[:, root_index] - root  # (B, 3)
    if pred_verts is None:
        return _translated(joints, offset), None
    verts = as_points(pred_verts, "pred_verts", batch=batch, copy=False)
    return _translated(joints, offset), _translated(verts, offset)


@njit(cache=True)
def _translated(points, offset):
    """``points - offset[:, None]``: (B, P, 3), (B, 3) -> new (B, P, 3)."""
    out = np.empty_like(points)
    for b in range(points.shape[0]):
        for p in range(points.shape[1]):
            for i in range(3):
                out[b, p, i] = points[b, p, i] - offset[b, i]
    return out


def point_errors(pred, gt):
    """Euclidean distance per point. pred, gt: (B, P, 3) -> (B, P), same units as the input."""
    pred = as_points(pred, "pred", copy=False)
    gt = as_points(gt, "gt", num_points=pred.shape[1], batch=pred.shape[0], copy=False)
    return _distances(pred, gt)


@njit(cache=True)
def _distances(pred, gt):
    """(B, P, 3), (B, P, 3) -> (B, P) Euclidean distances, the squares summed x, y, z in that order."""
    out = np.empty(pred.shape[:2])
    for b in range(pred.shape[0]):
        for p in range(pred.shape[1]):
            dx, dy, dz = pred[b, p, 0] - gt[b, p, 0], pred[b, p, 1] - gt[b, p, 1], pred[b, p, 2] - gt[b, p, 2]
            out[b, p] = np.sqrt(dx * dx + dy * dy + dz * dz)
    return out


def mean_point_error_mm(pred, gt, per_sample=False):
    """Mean per-point position error in millimetres (MPJPE for joints, MPVPE for vertices).

    Args:
        pred, gt: (B, P, 3) metres.
        per_sample: return (B,) per-sample means instead of the batch mean.
    """
    errors = point_errors(pred, gt).mean(axis=1) * MM_PER_M  # (B,)
    return errors if per_sample else float(errors.mean())


def similarity_procrustes(pred, gt, allow_reflection=True):
    """Per-sample similarity transform (scale, rotation, translation) best mapping ``pred`` onto ``gt``.

    Same construction as the official ``align_w_scale(gt, pred)``: both point sets are centred on their
    means and divided by their Frobenius norms (+1e-8); ``R, s = scipy.linalg.orthogonal_procrustes(gt_n,
    pred_n)`` i.e. ``U S Vt = svd(gt_nᵀ pred_n)``, ``R = U Vt``, ``s = sum(S)``; then
    ``pred_aligned = (pred_n Rᵀ) s ‖gt_c‖ + mean(gt)``. Batched with ``np.linalg.svd`` on (B, 3, 3).

    Reflections: the official code (and the default ``allow_reflection=True``) keeps ``R = U Vt`` even
    when ``det(R) = -1``, i.e. the "rotation" may be a reflection. With ``allow_reflection=False`` the
    Kabsch/Umeyama correction is applied where ``det(U Vt) < 0``: the sign of the last column of ``U``
    (smallest singular value) is flipped, giving a proper rotation, and ``s = S1 + S2 - S3``.

    Args:
        pred, gt: (B, P, 3).

    Returns:
        scale (B,), rotation (B, 3, 3), translation (B, 3) such that
        ``pred_aligned = scale * pred @ rotation.T + translation`` (column-vector convention ``R x``).
    """
    pred = as_points(pred, "pred", copy=False)
    gt = as_points(gt, "gt", num_points=pred.shape[1], batch=pred.shape[0], copy=False)
    mean_pred, mean_gt, norm_pred, norm_gt, cross = _centred_sums(pred, gt)
    norm_pred += _NORM_EPS  # (B,)
    norm_gt += _NORM_EPS
    cross /= (norm_gt * norm_pred)[:, None, None]  # gt_nᵀ pred_n
    u, sing, vt = np.linalg.svd(cross)  # (B,3,3), (B,3), (B,3,3)
    if not allow_reflection:
        flip = np.linalg.det(u @ vt) < 0  # (B,)
        u[flip, :, 2] *= -1
        sing[flip, 2] *= -1
    rotation = u @ vt  # maps gt_n onto pred_n: gt_n R ≈ pred_n, so pred_n Rᵀ ≈ gt_n
    scale = sing.sum(axis=1) * norm_gt / norm_pred
    translation = mean_gt - scale[:, None] * np.einsum("bij,bj->bi", rotation, mean_pred)
    return scale, rotation, translation


def procrustes_align(pred, gt, allow_reflection=True):
    """``pred`` (B, P, 3) after the per-sample similarity Procrustes onto ``gt`` (B, P, 3); new array."""
    scale, rotation, translation = similarity_procrustes(pred, gt, allow_reflection)
    return _apply_similarity(as_points(pred, "pred", copy=False), scale, rotation, translation)


@njit(cache=True)
def _centred_sums(pred, gt):
    """Per sample: means (B, 3) of pred and GT, Frobenius norms (B,) of the centred sets, and the (B, 3, 3)
    cross products ``gt_cᵀ pred_c`` of the centred sets."""
    batch, num_points = pred.shape[0], pred.shape[1]
    mean_pred, mean_gt = np.zeros((batch, 3)), np.zeros((batch, 3))
    norm_pred, norm_gt = np.zeros(batch), np.zeros(batch)
    cross = np.zeros((batch, 3, 3))
    for b in range(batch):
        for p in range(num_points):
            for i in range(3):
                mean_pred[b, i] += pred[b, p, i]
                mean_gt[b, i] += gt[b, p, i]
        for i in range(3):
            mean_pred[b, i] /= num_points
            mean_gt[b, i] /= num_points
        sq_pred = sq_gt = 0.0
        for p in range(num_points):
            pc = (pred[b, p, 0] - mean_pred[b, 0], pred[b, p, 1] - mean_pred[b, 1], pred[b, p, 2] - mean_pred[b, 2])
            gc = (gt[b, p, 0] - mean_gt[b, 0], gt[b, p, 1] - mean_gt[b, 1], gt[b, p, 2] - mean_gt[b, 2])
            for i in range(3):
                sq_pred += pc[i] * pc[i]
                sq_gt += gc[i] * gc[i]
                for j in range(3):
                    cross[b, i, j] += gc[i] * pc[j]
        norm_pred[b], norm_gt[b] = np.sqrt(sq_pred), np.sqrt(sq_gt)
    return mean_pred, mean_gt, norm_pred, norm_gt, cross


@njit(cache=True)
def _apply_similarity(points, scale, rotation, translation):
    """``scale * points @ rotation.T + translation`` per sample: (B, P, 3) -> new (B, P, 3)."""
    out = np.empty_like(points)
    for b in range(points.shape[0]):
        for p in range(points.shape[1]):
            x, y, z = points[b, p, 0], points[b, p, 1], points[b, p, 2]
            for i in range(3):
                out[b, p, i] = scale[b] * (rotation[b, i, 0] * x + rotation[b, i, 1] * y + rotation[b, i, 2] * z) \
                    + translation[b, i]
    return out


def scale_translation_align(pred, gt, bone=(0, 9)):
    """HO3D's ``align_sc_tr``: scale ``pred`` (B, 21, 3) so its bone ``bone`` (wrist -> middle MCP in the v2-era
    official script; manopth order) has the GT length, then translate its wrist onto the GT wrist; new array."""
    pred, gt = as_points(pred, "pred", copy=False), as_points(gt, "gt", copy=False)
    start, end = bone
    scale = (np.linalg.norm(gt[:, end] - gt[:, start], axis=-1)
             / np.linalg.norm(pred[:, end] - pred[:, start], axis=-1))[:, None, None]
    return (pred - pred[:, start:start + 1]) * scale + gt[:, start:start + 1]


def validation_scores(pred_joints, pred_verts, gt_joints, gt_verts, with_global=True):
    """The training-time validation metrics of the official ``compute_metric`` (mm), batch means.

    Every joint and vertex is expressed relative to the wrist (joint 0): the prediction is root-aligned to
    the GT wrist (pred and GT verts move with their joints' wrist), then errors are taken; PA errors use
    independent Procrustes for joints and vertices. The official code root-centres the joints in place
    with a self-overlapping subtraction, which on CPU only zeroes the wrist (docs/official-data.md §11);
    here the intended centring of all 21 joints is computed.

    Args:
        pred_joints, gt_joints: (B, 21, 3) metres. pred_verts, gt_verts: (B, 778, 3) metres.
        with_global: ``cfg.train.w_gr``; True -> ``score = MPJPE + PA-MPJPE + MPVPE + PA-MPVPE``,
            False -> ``score = PA-MPJPE + PA-MPVPE``. Lower is better.

    Returns:
        dict ``mpjpe, pa_mpjpe, mpvpe, pa_mpvpe, score`` (floats, mm).
    """
    gt_joints = as_points(gt_joints, "gt_joints", copy=False)
    joints, verts = root_align(pred_joints, pred_verts, gt_joints[:, WRIST])
    scores = {
        "mpjpe": mean_point_error_mm(joints, gt_joints),
        "pa_mpjpe": mean_point_error_mm(procrustes_align(joints, gt_joints), gt_joints),
        "mpvpe": mean_point_error_mm(verts, gt_verts),
        "pa_mpvpe": mean_point_error_mm(procrustes_align(verts, gt_verts), gt_verts),
    }
    aligned = scores["pa_mpjpe"] + scores["pa_mpvpe"]
    scores["score"] = aligned + scores["mpjpe"] + scores["mpvpe"] if with_global else aligned
    return scores
