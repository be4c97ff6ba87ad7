"""Hand-metric throughput: the batched evaluator against a per-sample loop like the official eval.py.

For N samples (21 joints + 778 vertices, metres) it times, in the same run:
  loop     - per sample: root alignment, scipy ``orthogonal_procrustes`` for joints and vertices
             (official ``align_w_scale``), FreiHAND-``EvalUtil``-style per-keypoint PCK (one mean per
             keypoint and threshold), KD-tree F-scores (scipy cKDTree, standing in for Open3D);
  batched  - ``utils.evaluation.HandEvaluator`` (add in batches, then ``results()``);
and per component (Procrustes, PCK/AUC, F-score). The F-score row also times a batched dense
``torch.cdist`` alternative on a subset, the reason the evaluator keeps per-sample KD-trees.
Prints samples/s and the speed-up ratios; checks that both paths give the same numbers.

    python -m benchmarks.bench_metrics [--samples 10000] [--batch 500] [--dense_subset 1000] [--threads 2]

Run from the repository root.
"""
import argparse
import time

import numpy as np
import torch
from scipy.linalg import orthogonal_procrustes
from scipy.spatial import cKDTree

from utils.evaluation import HandEvaluator
from utils.hand_conventions import MM_PER_M
from utils.metrics.fscore import f_scores
from utils.metrics.hand import point_errors, procrustes_align
from utils.metrics.pck import PCK_THRESHOLDS_M, auc, pck_from_bins, threshold_bins


def make_data(num, seed=0):
    rng = np.random.default_rng(seed)
    gt_j, gt_v = rng.normal(size=(num, 21, 3)) * 0.04, rng.normal(size=(num, 778, 3)) * 0.04
    pred_j = gt_j + rng.normal(size=gt_j.shape) * 0.01 + 0.3
    pred_v = gt_v + rng.normal(size=gt_v.shape) * 0.01 + 0.3
    return pred_j, pred_v, gt_j, gt_v, gt_j[:, 0].copy()


def align_w_scale(gt, pred):
    t1, t2 = gt.mean(0), pred.mean(0)
    gt_t, pred_t = gt - t1, pred - t2
    s1, s2 = np.linalg.norm(gt_t) + 1e-8, np.linalg.norm(pred_t) + 1e-8
    rot, s = orthogonal_procrustes(gt_t / s1, pred_t / s2)
    return (pred_t / s2) @ rot.T * s * s1 + t1


def f_score_loop(pred, gt, threshold):
    p = np.mean(cKDTree(pred).query(gt)[0] < threshold)
    r = np.mean(cKDTree(gt).query(pred)[0] < threshold)
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def eval_util_auc(errors):
    """EvalUtil-style: per keypoint, PCK at each threshold by a mean, trapezoid AUC, averaged over keypoints."""
    norm = np.trapezoid(np.ones_like(PCK_THRESHOLDS_M), PCK_THRESHOLDS_M)
    return np.mean([np.trapezoid([np.mean(errors[:, k] <= t) for t in PCK_THRESHOLDS_M], PCK_THRESHOLDS_M) / norm
                    for k in range(errors.shape[1])])


def loop_evaluation(pred_j, pred_v, gt_j, gt_v, root, timings):
    """The official-style per-sample evaluation; fills ``timings`` per component, returns the scores."""
    errors = {"j": [], "pa_j": [], "v": [], "pa_v": []}
    fs = []
    for pj, pv, gj, gv, r in zip(pred_j, pred_v, gt_j, gt_v, root):
        offset = pj[0] - r
        pj, pv = pj - offset, pv - offset
        start = time.perf_counter()
        pj_al, pv_al = align_w_scale(gj, pj), align_w_scale(gv, pv)
        timings["procrustes"] += time.perf_counter() - start
        for key, p, g in (("j", pj, gj), ("pa_j", pj_al, gj), ("v", pv, gv), ("pa_v", pv_al, gv)):
            errors[key].append(np.linalg.norm(p - g, axis=1))
        start = time.perf_counter()
        fs.append([f_score_loop(p, gv, t) for p in (pv, pv_al) for t in (0.005, 0.015)])
        timings["f-score"] += time.perf_counter() - start
    start = time.perf_counter()
    scores = {f"auc_{k}": eval_util_auc(np.stack(v)) * 100 for k, v in errors.items()}
    timings["pck/auc"] += time.perf_counter() - start
    scores.update({k: np.stack(v).mean() * MM_PER_M for k, v in errors.items()})
    scores["f15"] = np.mean([f[1] for f in fs]) * 100
    return scores


def batched_components(pred_j, pred_v, gt_j, gt_v, batch, timings):
    """The evaluator's steps timed one by one (errors computed outside the timers, as in the loop)."""
    bins = {family: [] for family in ("j", "pa_j", "v", "pa_v")}
    for s in range(0, len(pred_j), batch):
        part = slice(s, s + batch)
        start = time.perf_counter()
        aligned_j = procrustes_align(pred_j[part], gt_j[part])
        aligned_v = procrustes_align(pred_v[part], gt_v[part])
        timings["procrustes"] += time.perf_counter() - start
        pairs = {"j": (pred_j[part], gt_j[part]), "pa_j": (aligned_j, gt_j[part]),
                 "v": (pred_v[part], gt_v[part]), "pa_v": (aligned_v, gt_v[part])}
        errors = {family: point_errors(*pair) for family, pair in pairs.items()}
        start = time.perf_counter()
        for family, err in errors.items():
            bins[family].append(threshold_bins(err, PCK_THRESHOLDS_M))
        timings["pck/auc"] += time.perf_counter() - start
        start = time.perf_counter()
        f_scores(pred_v[part], gt_v[part])
        f_scores(aligned_v, gt_v[part])
        timings["f-score"] += time.perf_counter() - start
    start = time.perf_counter()
    for parts in bins.values():
        auc(pck_from_bins(np.concatenate(parts), len(PCK_THRESHOLDS_M)))
    timings["pck/auc"] += time.perf_counter() - start


def dense_f_scores(pred, gt, chunk=64):
    """Batched alternative: dense float64 torch.cdist per chunk of samples (exact differences)."""
    out = []
    for s in range(0, len(pred), chunk):
        dist = torch.cdist(torch.from_numpy(pred[s:s + chunk]), torch.from_numpy(gt[s:s + chunk]),
                           compute_mode="donot_use_mm_for_euclid_dist")
        to_gt, to_pred = dist.min(dim=2).values.numpy(), dist.min(dim=1).values.numpy()
        p, r = (to_pred < 0.015).mean(axis=1), (to_gt < 0.015).mean(axis=1)
        out.append(np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-12), 0.0))
    return np.concatenate(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--dense_subset", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = make_data(args.samples)
    n = args.samples
    print(f"{n} samples, 21 joints + 778 vertices, float64, torch threads {torch.get_num_threads()}")

    loop_t = dict.fromkeys(["procrustes", "pck/auc", "f-score"], 0.0)
    start = time.perf_counter()
    ref = loop_evaluation(*data, loop_t)
    loop_total = time.perf_counter() - start

    start = time.perf_counter()
    evaluator = HandEvaluator()
    for s in range(0, n, args.batch):
        evaluator.add(*(a[s:s + args.batch] for a in data))
    ours = evaluator.results().scores
    batched_total = time.perf_counter() - start
    for ours_key, ref_key in [("mpjpe", "j"), ("pa_mpjpe", "pa_j"), ("mpvpe", "v"), ("pa_mpvpe", "pa_v"),
                              ("auc_j", "auc_j"), ("auc_pa_v", "auc_pa_v"), ("f15", "f15")]:
        assert np.isclose(ours[ours_key], ref[ref_key], rtol=1e-9), (ours_key, ours[ours_key], ref[ref_key])

    batched_t = dict.fromkeys(loop_t, 0.0)
    batched_components(*data[:4], args.batch, batched_t)
    sub = slice(0, min(args.dense_subset, n))
    start = time.perf_counter()
    dense_f_scores(data[1][sub], data[3][sub])
    dense_rate = (sub.stop - sub.start) / (time.perf_counter() - start) / 2  # per sample, 1 of the 2 F calls

    print(f"{'part':<12}{'loop (samples/s)':>18}{'batched (samples/s)':>22}{'speed-up':>10}")
    for part in loop_t:
        print(f"{part:<12}{n / loop_t[part]:>18.0f}{n / batched_t[part]:>22.0f}{loop_t[part] / batched_t[part]:>9.1f}x")
    print(f"{'total':<12}{n / loop_total:>18.0f}{n / batched_total:>22.0f}{loop_total / batched_total:>9.1f}x")
    ours_f = n / batched_t["f-score"]
    print(f"F-score alternative, dense torch.cdist (batched, {sub.stop} samples): {dense_rate:.0f} samples/s "
          f"= {dense_rate / ours_f:.2f}x the per-sample KD-tree used by the evaluator")
    print("results identical (rtol 1e-9): MPJPE, PA-MPJPE, MPVPE, PA-MPVPE, AUC-J, AUC-PA-V, F@15")


if __name__ == "__main__":
    main()
