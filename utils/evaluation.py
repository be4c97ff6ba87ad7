"""Evaluation accumulators (hand, object pose) and the sample groupings of the official eval scripts.

``HandEvaluator.add`` takes one batch of predictions and GT (metres, camera frame, manopth joint order),
root-aligns copies of them to the GT root (docs/official-data.md §4.1; the caller's arrays are never
modified), and keeps per-sample results only: the mean error per sample and, per joint / vertex, the index
of the first PCK threshold it passes (uint8), plus the vertex F-scores. That is enough to report exact
means, PCK curves, AUCs and F-scores for *any subset* of the samples (the groups below) without keeping
(N, 778, 3) arrays in memory: about 3.3 kB per sample instead of 37 kB.

Groupings (pure functions on the per-sample labels, returning index arrays; a group may be empty):
``grasp_groups`` -> "all", "h" (GT not grasping), "ho" (GT grasping), as ``eval_h_ho.py``;
``occlusion_groups`` -> "occ_[lo,hi]" bins as ``eval_occ_intervals.py``.
"""
from dataclasses import dataclass, field

import numpy as np

from utils.config import ConfigError
from utils.hand_conventions import MM_PER_M
from utils.metrics.arrays import to_numpy
from utils.metrics.fscore import F_SCORE_THRESHOLDS_M, f_scores
from utils.metrics.hand import point_errors, procrustes_align, root_align
from utils.metrics.object_pose import object_pose_errors, object_success_rates
from utils.metrics.pck import PCK_20_50_THRESHOLDS_M, PCK_THRESHOLDS_M, auc, pck_from_bins, threshold_bins
from utils.ycb import DEXYCB_SYMMETRIC_IDS, YCB_CLASSES, box_diameter

__all__ = [
    "FAMILIES",
    "FAMILY_SUFFIX",
    "DEFAULT_OCC_INTERVALS",
    "HandReport",
    "HandEvaluator",
    "ObjectPoseEvaluator",
    "grasp_groups",
    "occlusion_groups",
    "object_eval_selection",
]

# Metric families: (name, key suffix). xyz = joints, mesh = vertices; "_al" = after Procrustes.
FAMILIES = ("xyz", "xyz_al", "mesh", "mesh_al")
FAMILY_SUFFIX = {"xyz": "j", "xyz_al": "pa_j", "mesh": "v", "mesh_al": "pa_v"}
_MEAN_KEY = {"xyz": "mpjpe", "xyz_al": "pa_mpjpe", "mesh": "mpvpe", "mesh_al": "pa_mpvpe"}
_GRID = np.union1d(PCK_THRESHOLDS_M, PCK_20_50_THRESHOLDS_M)  # every threshold any curve needs, metres
DEFAULT_OCC_INTERVALS = (0.0, 0.25, 0.5, 0.75, 1.0)
OUT_OF_RANGE_BIN = "occ_(1,)"


@dataclass
class HandReport:
    """Hand results of one group of samples.

    scores: ``num_samples``; ``mpjpe, pa_mpjpe, mpvpe, pa_mpvpe`` (mm); ``auc_j, auc_pa_j, auc_v, auc_pa_v``
        (0-50 mm) and ``auc20_50_*`` (20-50 mm), ``f5, f5_aligned, f15, f15_aligned``, all in percent (x100,
        as the paper's tables). NaN when the group is empty. Callers may add entries (grasp / object metrics).
    pck: {family: (100,) PCK curve, fraction} for ``FAMILIES`` at ``thresholds_m``.
    """

    scores: dict
    pck: dict
    thresholds_m: np.ndarray = field(default_factory=lambda: PCK_THRESHOLDS_M.copy())


class HandEvaluator:
    """Accumulates per-sample hand errors of an evaluation run; ``results(indices)`` reports any subset.

    Args:
        allow_reflection: Procrustes option (see ``utils.metrics.hand.similarity_procrustes``); the official
            protocol is True.
        f_thresholds_m: F-score thresholds in metres (5 mm, 15 mm).
    """

    def __init__(self, allow_reflection=True, f_thresholds_m=F_SCORE_THRESHOLDS_M):
        self.allow_reflection = allow_reflection
        self.f_thresholds_m = tuple(f_thresholds_m)
        self._batches = []  # list of dicts of per-sample arrays
        self._merged = None

    def __len__(self):
        return sum(len(b["grasp"]) for b in self._batches)

    def add(self, pred_joints, pred_verts, gt_joints, gt_verts, gt_root, grasp=None, occ_ratio=None):
        """Add a batch.

        Args:
            pred_joints, gt_joints: (B, 21, 3) metres. pred_verts, gt_verts: (B, 778, 3) metres.
            gt_root: (B, 3) metres, GT wrist (``root_joint_flip``).
            grasp: (B,) GT grasp labels (bool / 0-1), or None if unknown.
            occ_ratio: (B,) hand occlusion ratios (``gt_occ_ratio``), or None if unknown.
        """
        pred_j, pred_v = root_align(pred_joints, pred_verts, gt_root)
        gt_j, gt_v = root_align(gt_joints, gt_verts, gt_root)
        if pred_v is None or gt_v is None:
            raise ValueError("HandEvaluator.add: pred_verts and gt_verts are required")
        if gt_j.shape != pred_j.shape or gt_v.shape != pred_v.shape:
            raise ValueError(f"HandEvaluator.add: prediction and GT shapes differ: joints {pred_j.shape} vs "
                             f"{gt_j.shape}, verts {pred_v.shape} vs {gt_v.shape}")
        batch = pred_j.shape[0]
        aligned = {"xyz_al": procrustes_align(pred_j, gt_j, self.allow_reflection),
                   "mesh_al": procrustes_align(pred_v, gt_v, self.allow_reflection)}
        record = {"grasp": _per_sample(grasp, batch, "grasp", np.int8, -1),
                  "occ": _per_sample(occ_ratio, batch, "occ_ratio", np.float64, np.nan)}
        for family, pred, gt in (("xyz", pred_j, gt_j), ("xyz_al", aligned["xyz_al"], gt_j),
                                 ("mesh", pred_v, gt_v), ("mesh_al", aligned["mesh_al"], gt_v)):
            errors = point_errors(pred, gt)  # (B, P) metres
            record[f"{family}_mean"] = errors.mean(axis=1)
            record[f"{family}_bins"] = threshold_bins(errors, _GRID)
        record["f"] = f_scores(pred_v, gt_v, self.f_thresholds_m)  # (B, T)
        record["f_al"] = f_scores(aligned["mesh_al"], gt_v, self.f_thresholds_m)
        self._batches.append(record)
        self._merged = None

    @property
    def grasp_labels(self):
        """(N,) int8: 1 grasping, 0 not, -1 unknown."""
        return self._all()["grasp"].copy()

    @property
    def joint_errors_mm(self):
        """(N,) per-sample root-aligned mean joint error (J-PE), mm."""
        return self._all()["xyz_mean"] * MM_PER_M

    @property
    def occlusion_ratios(self):
        """(N,) float64, NaN where unknown."""
        return self._all()["occ"].copy()

    def _all(self):
        if self._merged is None:
            if not self._batches:
                raise ValueError("HandEvaluator: no samples were added")
            self._merged = {k: np.concatenate([b[k] for b in self._batches]) for k in self._batches[0]}
            self._batches = [self._merged]
        return self._merged

    def results(self, indices=None):
        """``HandReport`` of the samples ``indices`` (int indices or bool mask; None = all).

        An empty selection gives ``num_samples = 0`` and NaN metrics.
        """
        data = self._all()
        select = _selection(indices)
        num = len(data["grasp"][select])
        scores = {"num_samples": int(num)}
        scores.update({_MEAN_KEY[f]: _mean(data[f"{f}_mean"][select]) * MM_PER_M for f in FAMILIES})
        grid_curves = {f: pck_from_bins(data[f"{f}_bins"][select], len(_GRID)) for f in FAMILIES}
        pck = {f: curve[np.searchsorted(_GRID, PCK_THRESHOLDS_M)] for f, curve in grid_curves.items()}
        for f in FAMILIES:
            scores[f"auc_{FAMILY_SUFFIX[f]}"] = auc(pck[f], PCK_THRESHOLDS_M) * 100.0
        for f in FAMILIES:
            curve_20_50 = grid_curves[f][np.searchsorted(_GRID, PCK_20_50_THRESHOLDS_M)]
            scores[f"auc20_50_{FAMILY_SUFFIX[f]}"] = auc(curve_20_50, PCK_20_50_THRESHOLDS_M) * 100.0
        for column, threshold in enumerate(self.f_thresholds_m):
            name = f"f{threshold * MM_PER_M:g}"
            scores[name] = _mean(data["f"][select][:, column]) * 100.0
            scores[f"{name}_aligned"] = _mean(data["f_al"][select][:, column]) * 100.0
        return HandReport(scores=scores, pck=pck)


def _selection(indices):
    """None -> every sample; a bool mask -> its true positions; otherwise integer indices."""
    if indices is None:
        return slice(None)
    indices = np.asarray(to_numpy(indices)).reshape(-1)
    return np.flatnonzero(indices) if indices.dtype == bool else indices.astype(np.int64)


def _mean(values):
    return float(values.mean()) if len(values) else float("nan")


def _per_sample(values, batch, name, dtype, missing):
    if values is None:
        return np.full(batch, missing, dtype=dtype)
    arr = np.asarray(to_numpy(values)).reshape(-1)
    if len(arr) != batch:
        raise ValueError(f"{name}: expected {batch} values (one per sample), got {len(arr)}")
    return arr.astype(dtype)


class ObjectPoseEvaluator:
    """Accumulates per-sample object REP / ADD(-S) errors; ``results`` gives the official success rates.

    Args:
        object_points: {class_id: (P, 3) model points, metres} (DexYCB ``points.xyz``); ids may be ints or,
            for HO3D, names.
        symmetric_ids: classes evaluated with ADD-S (official DexYCB set 13, 16, 20, 21).
        class_names: {class_id: name} for the per-class table; default the DexYCB YCB table.
    """

    def __init__(self, object_points, symmetric_ids=DEXYCB_SYMMETRIC_IDS, class_names=YCB_CLASSES):
        self.object_points = {k: np.asarray(v, dtype=np.float64) for k, v in object_points.items()}
        self.diameters = {k: box_diameter(v) for k, v in self.object_points.items()}
        self.symmetric_ids = frozenset(symmetric_ids)
        self.class_names = dict(class_names)
        self._rep, self._add, self._cls = [], [], []

    def __len__(self):
        return sum(len(c) for c in self._cls)

    def add(self, pose_pred, pose_gt, class_ids, cam_intr):
        """Add a batch: poses as (rotation (B, 3, 3), translation (B, 3)) metres, ``class_ids`` (B,),
        ``cam_intr`` (B, 3, 3) of the image the poses were solved in."""
        class_ids = np.asarray(to_numpy(class_ids)).reshape(-1)
        arrays = (*pose_pred, *pose_gt, cam_intr)
        rot_p, t_p, rot_g, t_g, intr = (np.asarray(to_numpy(a), dtype=np.float64) for a in arrays)
        rep, add = np.empty(len(class_ids)), np.empty(len(class_ids))
        for cid in np.unique(class_ids):
            if cid.item() not in self.object_points:
                raise KeyError(f"object class {cid.item()!r} has no model points; known: {sorted(self.object_points)}")
            rows = np.flatnonzero(class_ids == cid)
            rep[rows], add[rows] = object_pose_errors(
                self.object_points[cid.item()], (rot_p[rows], t_p[rows]), (rot_g[rows], t_g[rows]), intr[rows],
                symmetric=cid.item() in self.symmetric_ids)
        self._rep.append(rep)
        self._add.append(add)
        self._cls.append(class_ids)

    def results(self, indices=None, rep_threshold=5.0, add_threshold=0.1):
        """Success rates (see ``object_success_rates``) of the samples ``indices`` (ints or bool mask; None = all)."""
        select = _selection(indices)
        arrays = [np.concatenate(parts) if parts else np.empty(0) for parts in (self._rep, self._add, self._cls)]
        rep, add, cls = (a[select] for a in arrays)
        return object_success_rates(rep, add, cls, self.diameters, rep_threshold, add_threshold, self.class_names)


def grasp_groups(grasp_labels):
    """{"all", "h", "ho"} -> sample indices, split by the GT grasp label (1 = grasping -> "ho").

    Raises ``ValueError`` if any label is unknown (-1), naming how many.
    """
    labels = np.asarray(grasp_labels).reshape(-1)
    unknown = int(np.sum(labels < 0))
    if unknown:
        raise ValueError(f"grasp labels are missing for {unknown} of {len(labels)} samples "
                         "(pass grasp=... to HandEvaluator.add)")
    return {"all": np.arange(len(labels)), "h": np.flatnonzero(labels == 0), "ho": np.flatnonzero(labels == 1)}


def occlusion_edges(edges) -> np.ndarray:
    """``data.occ_intervals`` as (K,) float64 edges; ConfigError unless >= 2 finite, strictly increasing numbers."""
    try:
        array = np.asarray(edges, dtype=np.float64)
    except (TypeError, ValueError):
        array = None
    if array is None or array.ndim != 1 or len(array) < 2 or not np.all(np.isfinite(array)) \
            or not np.all(np.diff(array) > 0):
        raise ConfigError(f"data.occ_intervals must be at least 2 finite, strictly increasing bin edges, "
                          f"got {edges!r}")
    return array


def occlusion_groups(occ_ratios, edges=DEFAULT_OCC_INTERVALS):
    """Occlusion-ratio bins as ``eval_occ_intervals.py``: {"occ_[lo,hi]": indices} for consecutive edges.

    Membership ``lo <= r <= hi``; a ratio exactly on an inner edge goes to the lower bin. Ratios outside
    ``[edges[0], edges[-1]]`` (or NaN) go to an extra bin "occ_(1,)", present only when non-empty. Every
    regular bin is present, possibly empty.

    Args:
        occ_ratios: (N,) ratios. edges: strictly increasing bin edges (``cfg.data.occ_intervals``).
    """
    edges = occlusion_edges(edges)
    ratios = np.asarray(occ_ratios, dtype=np.float64).reshape(-1)
    inside = (ratios >= edges[0]) & (ratios <= edges[-1])
    bins = np.maximum(np.searchsorted(edges, ratios, side="left") - 1, 0)
    groups = {f"occ_[{lo:g},{hi:g}]": np.flatnonzero(inside & (bins == i))
              for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:]))}
    if not np.all(inside):
        groups[OUT_OF_RANGE_BIN] = np.flatnonzero(~inside)
    return groups


def object_eval_selection(mode, gt_grasping, pred_grasping=None):
    """Indices of the samples the object metric uses (``cfg.metric.obj_eval_mode``).

    ``"gt"``: GT grasping; ``"pred-gt"``: GT and predicted grasping; ``"all"``: every sample.
    """
    gt = np.asarray(to_numpy(gt_grasping)).reshape(-1).astype(bool)
    if mode == "all":
        return np.arange(len(gt))
    if mode == "gt":
        return np.flatnonzero(gt)
    if mode == "pred-gt":
        if pred_grasping is None:
            raise ValueError("obj_eval_mode 'pred-gt' needs the predicted grasp labels")
        return np.flatnonzero(gt & np.asarray(to_numpy(pred_grasping)).reshape(-1).astype(bool))
    raise ValueError(f"unknown obj_eval_mode {mode!r}; expected one of 'gt', 'pred-gt', 'all'")
