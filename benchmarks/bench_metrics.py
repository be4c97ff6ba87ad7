"""Hand-metric throughput: the batched evaluator against a per-sample loop like the official eval.py.

For N samples (21 joints + 778 vertices, metres) it times, in the same run:
  loop     - per sample: root alignment, scipy ``orthogonal_procrustes`` for joints and vertices
             (official ``align_w_scale``), FreiHAND-``EvalUtil``-style per-keypoint PCK (one mean per
             keypoint and threshold), KD-tree F-scores (scipy cKDTree, standing in for Open3D);
  batched  - ``utils.evaluation.HandEvaluator`` (add in batches, then ``results()``);
and per component (Procrustes, PCK/AUC, F-score), on two data sets:
  random   - Gaussian point clouds (pred = GT + noise + offset);
  hands    - the stand-in hand mesh (data_creation/standin_mano/geometry.py; MANO's 778-vertex layout)
             moved, turned and scaled per sample, pred = GT under a small random similarity and linear
             deformation plus 3 mm noise: errors and F-scores in the range of real predictions.
Each side runs ``--rounds`` times, alternating, and its best round is kept. Prints samples/s and the speed-up
ratios, and checks that both paths give the same numbers: means and AUCs to rtol 1e-9, the four F-scores
(5 / 15 mm, raw / Procrustes-aligned) exactly. The first evaluator call (numba compiling, or loading its cache
in ``__pycache__``) is timed once, before the rounds.

    python -m benchmarks.bench_metrics [--samples 1000] [--batch 500] [--rounds 3] [--threads 2]

Run from the repository root.
"""
import argparse
import time

import numba
import numpy as np
from scipy.linalg import orthogonal_procrustes
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from data_creation.standin_mano.geometry import build_hand_mesh
from utils.evaluation import HandEvaluator
from utils.hand_conventions import MM_PER_M
from utils.metrics.fscore import f_scores
from utils.metrics.hand import point_errors, procrustes_align
from utils.metrics.pck import PCK_THRESHOLDS_M, auc, pck_from_bins, threshold_bins

FAMILIES = (("j", "mpjpe"), ("pa_j", "pa_mpjpe"), ("v", "mpvpe"), ("pa_v", "pa_mpvpe"))
PARTS = ("procrustes", "pck/auc", "f-score")


def make_data(num, seed=0):
    """Random clouds: (pred_j, pred_v, gt_j, gt_v, gt_root)."""
    rng = np.random.default_rng(seed)
    gt_j, gt_v = rng.normal(size=(num, 21, 3)) * 0.04, rng.normal(size=(num, 778, 3)) * 0.04
    pred_j = gt_j + rng.normal(size=gt_j.shape) * 0.01 + 0.3
    pred_v = gt_v + rng.normal(size=gt_v.shape) * 0.01 + 0.3
    return pred_j, pred_v, gt_j, gt_v, gt_j[:, 0].copy()


def make_hand_data(num, seed=0):
    """Stand-in hand meshes: (pred_j, pred_v, gt_j, gt_v, gt_root); joints = wrist and joint-ring centroids
    and fingertip vertices of the same mesh (21)."""
    rng = np.random.default_rng(seed)
    mesh = build_hand_mesh()
    template = mesh.verts - mesh.verts[mesh.joint_rings[0]].mean(axis=0)
    rings = [mesh.joint_rings[k] for k in sorted(mesh.joint_rings)]

    def joints(verts):
        centroids = np.stack([verts[:, ring].mean(axis=1) for ring in rings], axis=1)
        return np.concatenate([centroids, verts[:, list(mesh.tips.values())]], axis=1)[:, :21]

    def similarity(points, angle, scale, shift):
        rot = Rotation.from_rotvec(rng.normal(size=(num, 3)) * angle).as_matrix()
        return np.einsum("bij,bpj->bpi", rot, points) * scale[:, None, None] + shift[:, None]

    gt_v = similarity(template[None].repeat(num, axis=0), np.pi, rng.uniform(0.9, 1.1, num),
                      rng.normal(size=(num, 3)) * 0.1 + [0.0, 0.0, 0.6])
    centre = gt_v.mean(axis=1, keepdims=True)
    warped = centre + np.einsum("bij,bpj->bpi", np.eye(3) + rng.normal(size=(num, 3, 3)) * 0.07, gt_v - centre)
    pred_v = similarity(warped - centre, 0.1, 1.0 + rng.normal(size=num) * 0.03, np.zeros((num, 3))) + centre
    pred_v += rng.normal(size=(num, 1, 3)) * 0.01 + rng.normal(size=pred_v.shape) * 0.003
    gt_j = joints(gt_v)
    return joints(pred_v), pred_v, gt_j, gt_v, gt_j[:, 0].copy()


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
    """The official-style per-sample evaluation; adds to ``timings`` per component, returns the scores."""
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
    scores.update({key: np.stack(errors[k]).mean() * MM_PER_M for k, key in FAMILIES})
    for column, key in enumerate(("f5", "f15", "f5_aligned", "f15_aligned")):
        scores[key] = np.mean([f[column] for f in fs]) * 100
    return scores


def batched_evaluation(data, batch):
    evaluator = HandEvaluator()
    for s in range(0, len(data[0]), batch):
        evaluator.add(*(a[s:s + batch] for a in data))
    return evaluator.results().scores


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


def check_identical(ours, ref):
    for key in [key for _, key in FAMILIES] + [f"auc_{k}" for k, _ in FAMILIES]:
        assert np.isclose(ours[key], ref[key], rtol=1e-9, atol=0.0), (key, ours[key], ref[key])
    for key in ("f5", "f15", "f5_aligned", "f15_aligned"):
        assert ours[key] == ref[key], (key, ours[key], ref[key])


def compare(name, data, batch, rounds):
    """Best of ``rounds`` alternating rounds of both sides on ``data``; prints the table."""
    num = len(data[0])
    best_loop, best_batched = {"total": np.inf}, {"total": np.inf}
    for _ in range(rounds):
        loop_t = dict.fromkeys(PARTS, 0.0)
        start = time.perf_counter()
        ref = loop_evaluation(*data, loop_t)
        loop_t["total"] = time.perf_counter() - start
        start = time.perf_counter()
        ours = batched_evaluation(data, batch)
        batched_t = {"total": time.perf_counter() - start, **dict.fromkeys(PARTS, 0.0)}
        check_identical(ours, ref)
        batched_components(*data[:4], batch, batched_t)
        for best, times in ((best_loop, loop_t), (best_batched, batched_t)):
            for part, seconds in times.items():
                best[part] = min(best.get(part, np.inf), seconds)
    print(f"\n{name}: {num} samples; mean errors (mm) j {ours['mpjpe']:.1f}, pa_j {ours['pa_mpjpe']:.1f}, "
          f"v {ours['mpvpe']:.1f}, pa_v {ours['pa_mpvpe']:.1f}; F@5 {ours['f5']:.1f} / aligned "
          f"{ours['f5_aligned']:.1f} %, F@15 {ours['f15']:.1f} / aligned {ours['f15_aligned']:.1f} %")
    print(f"{'part':<12}{'loop (samples/s)':>18}{'batched (samples/s)':>22}{'speed-up':>10}")
    for part in (*PARTS, "total"):
        loop_rate, batched_rate = num / best_loop[part], num / best_batched[part]
        print(f"{part:<12}{loop_rate:>18.0f}{batched_rate:>22.0f}{batched_rate / loop_rate:>9.1f}x")
    print("results identical: MPJPE, PA-MPJPE, MPVPE, PA-MPVPE and their AUCs to rtol 1e-9; "
          "F@5, F@15, F@5 aligned, F@15 aligned exactly")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="numba threads (the F-scores run samples in parallel)")
    args = parser.parse_args(argv)
    numba.set_num_threads(args.threads)
    datasets = {"random": make_data(args.samples), "hands": make_hand_data(args.samples)}
    print(f"21 joints + 778 vertices, float64, batches of {args.batch}, numba threads {numba.get_num_threads()}")
    start = time.perf_counter()
    batched_evaluation([a[:8] for a in datasets["random"]], args.batch)
    print(f"first evaluator call (numba compile, or load of its cache): {time.perf_counter() - start:.2f} s, "
          f"threading layer {numba.threading_layer()}")
    for name, data in datasets.items():
        compare(name, data, args.batch, args.rounds)


if __name__ == "__main__":
    main()
