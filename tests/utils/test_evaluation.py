"""Evaluation accumulators, groupings, report files, atomic writes and the HO3D submission zip."""
import json
import math
import os
import zipfile

import numpy as np
import pytest
import torch
from scipy.linalg import orthogonal_procrustes
from scipy.spatial import cKDTree

from utils.atomic import atomic_write, atomic_write_json, atomic_write_text
from engine.reports import write_group_reports, write_report
from engine.ho3d_submission import HO3DSubmission, write_ho3d_submission
from utils.evaluation import HandEvaluator, ObjectPoseEvaluator, grasp_groups, object_eval_selection, occlusion_groups
from utils.metrics.object_pose import add_s_error, reprojection_error_px

HAND_KEYS = ["num_samples", "mpjpe", "pa_mpjpe", "mpvpe", "pa_mpvpe", "auc_j", "auc_pa_j", "auc_v", "auc_pa_v",
             "auc20_50_j", "auc20_50_pa_j", "auc20_50_v", "auc20_50_pa_v", "f5", "f5_aligned", "f15", "f15_aligned"]


def random_batch(rng, batch, noise=0.01):
    gt_j = rng.normal(size=(batch, 21, 3)) * 0.04
    gt_v = rng.normal(size=(batch, 778, 3)) * 0.04
    return (gt_j + rng.normal(size=gt_j.shape) * noise + 0.5, gt_v + rng.normal(size=gt_v.shape) * noise + 0.5,
            gt_j, gt_v, gt_j[:, 0].copy())


def reference_scores(pred_j, pred_v, gt_j, gt_v, root):
    """Independent per-sample loop: scipy Procrustes, per-keypoint PCK with trapezoid, cKDTree F-scores."""
    offset = pred_j[:, :1] - root[:, None]
    pred_j, pred_v = pred_j - offset, pred_v - offset

    def align(gt, pred):
        gt_c, pred_c = gt - gt.mean(0), pred - pred.mean(0)
        n_gt, n_pred = np.linalg.norm(gt_c) + 1e-8, np.linalg.norm(pred_c) + 1e-8
        rot, s = orthogonal_procrustes(gt_c / n_gt, pred_c / n_pred)
        return (pred_c / n_pred) @ rot.T * s * n_gt + gt.mean(0)

    def auc_per_keypoint(errors, thresholds):
        per_kp = [np.trapezoid([np.mean(errors[:, k] <= t) for t in thresholds], thresholds)
                  for k in range(errors.shape[1])]
        return np.mean(per_kp) / np.trapezoid(np.ones_like(thresholds), thresholds) * 100

    def f_score(pred, gt, t):
        p = np.mean(cKDTree(pred).query(gt)[0] < t)
        r = np.mean(cKDTree(gt).query(pred)[0] < t)
        return 2 * p * r / (p + r) if p + r > 0 else 0.0

    families = {"j": (pred_j, gt_j), "pa_j": (np.stack([align(g, p) for g, p in zip(gt_j, pred_j)]), gt_j),
                "v": (pred_v, gt_v), "pa_v": (np.stack([align(g, p) for g, p in zip(gt_v, pred_v)]), gt_v)}
    out = {}
    grid = np.linspace(0, 0.05, 100)
    for suffix, (pred, gt) in families.items():
        errors = np.linalg.norm(pred - gt, axis=-1)
        out[suffix] = errors.mean() * 1000
        out["auc_" + suffix] = auc_per_keypoint(errors, grid)
    for mm in (5, 15):
        out[f"f{mm}"] = np.mean([f_score(p, g, mm / 1000) for p, g in zip(pred_v, gt_v)]) * 100
        out[f"f{mm}_aligned"] = np.mean([f_score(p, g, mm / 1000) for p, g in zip(*families["pa_v"])]) * 100
    return out


def test_hand_evaluator_matches_independent_per_sample_loop():
    rng = np.random.default_rng(0)
    evaluator = HandEvaluator()
    batches = [random_batch(rng, 6), random_batch(rng, 4)]
    for batch in batches:
        evaluator.add(*batch)
    merged = [np.concatenate(parts) for parts in zip(*batches)]
    expected = reference_scores(*merged)
    scores = evaluator.results().scores
    assert list(scores) == HAND_KEYS and scores["num_samples"] == 10
    for ours, ref in [("mpjpe", "j"), ("pa_mpjpe", "pa_j"), ("mpvpe", "v"), ("pa_mpvpe", "pa_v")]:
        assert scores[ours] == pytest.approx(expected[ref], rel=1e-9)
    for key in ["auc_j", "auc_pa_j", "auc_v", "auc_pa_v", "f5", "f5_aligned", "f15", "f15_aligned"]:
        assert scores[key] == pytest.approx(expected[key], rel=1e-9), key
    assert 0 < scores["f5"] < scores["f15"] < 100


def test_identical_prediction_gives_zero_error_full_auc_and_f_one():
    rng = np.random.default_rng(1)
    _, _, gt_j, gt_v, root = random_batch(rng, 3)
    pred_j, pred_v = gt_j.copy(), gt_v.copy()
    inputs = [a.copy() for a in (pred_j, pred_v, gt_j, gt_v, root)]
    evaluator = HandEvaluator()
    evaluator.add(torch.from_numpy(pred_j), pred_v, gt_j, gt_v, root)
    for before, after in zip(inputs, (pred_j, pred_v, gt_j, gt_v, root)):
        np.testing.assert_array_equal(before, after)  # nothing mutated
    report = evaluator.results()
    assert report.scores["mpjpe"] == 0.0 and report.scores["mpvpe"] == 0.0
    for key in ["pa_mpjpe", "pa_mpvpe"]:
        assert report.scores[key] == pytest.approx(0.0, abs=1e-4)
    for key in ["auc_j", "auc_v", "auc20_50_j", "auc20_50_pa_j", "auc20_50_v", "auc20_50_pa_v",
                "f5", "f5_aligned", "f15", "f15_aligned"]:
        assert report.scores[key] == pytest.approx(100.0), key
    np.testing.assert_array_equal(report.pck["xyz"], np.ones(100))
    # the 0 mm threshold counts exact zeros only: the 1e-8 norm epsilon of the official Procrustes leaves
    # ~1e-9 m errors, which lose the first half step of the curve
    assert report.scores["auc_pa_j"] == pytest.approx(100.0 * 98.5 / 99)
    shift = rng.normal(size=(3, 1, 3))
    shifted = HandEvaluator()
    shifted.add(pred_j + shift, pred_v + shift, gt_j, gt_v, root)  # a translated hand is root-aligned back
    assert shifted.results().scores["mpjpe"] == pytest.approx(0.0, abs=1e-12)
    assert shifted.results().scores["mpvpe"] == pytest.approx(0.0, abs=1e-12)


def test_hand_evaluator_rejects_mismatched_shapes():
    rng = np.random.default_rng(2)
    pred_j, pred_v, gt_j, gt_v, root = random_batch(rng, 2)
    with pytest.raises(ValueError, match="prediction and GT shapes differ"):
        HandEvaluator().add(pred_j, pred_v[:, :700], gt_j, gt_v, root)
    with pytest.raises(ValueError, match="grasp: expected 2 values"):
        HandEvaluator().add(pred_j, pred_v, gt_j, gt_v, root, grasp=[1, 0, 1])
    with pytest.raises(ValueError, match="no samples"):
        HandEvaluator().results()


def test_grasp_groups_and_missing_labels():
    groups = grasp_groups(np.array([1, 0, 1, 1], dtype=np.int8))
    assert {k: v.tolist() for k, v in groups.items()} == {"all": [0, 1, 2, 3], "h": [1], "ho": [0, 2, 3]}
    with pytest.raises(ValueError, match="missing for 1 of 2 samples"):
        grasp_groups(np.array([1, -1]))


def test_occlusion_groups_edges_ties_out_of_range_and_empty_bins():
    ratios = [0.0, 0.25, 0.3, 0.5, 1.0, 1.2, -0.1, float("nan"), 0.6]
    groups = occlusion_groups(ratios)
    assert {k: v.tolist() for k, v in groups.items()} == {
        "occ_[0,0.25]": [0, 1], "occ_[0.25,0.5]": [2, 3], "occ_[0.5,0.75]": [8], "occ_[0.75,1]": [4],
        "occ_(1,)": [5, 6, 7]}
    only_low = occlusion_groups([0.1], edges=[0, 0.5, 1])
    assert {k: v.tolist() for k, v in only_low.items()} == {"occ_[0,0.5]": [0], "occ_[0.5,1]": []}
    with pytest.raises(ValueError, match="strictly increasing"):
        occlusion_groups([0.1], edges=[0, 0.5, 0.5])


def test_empty_group_reports_without_crashing(tmp_path):
    rng = np.random.default_rng(3)
    evaluator = HandEvaluator()
    evaluator.add(*random_batch(rng, 2), grasp=[1, 1], occ_ratio=[0.9, 0.95])
    reports = {name: evaluator.results(idx) for name, idx in grasp_groups(evaluator.grasp_labels).items()}
    assert reports["h"].scores["num_samples"] == 0 and math.isnan(reports["h"].scores["mpjpe"])
    by_mask = evaluator.results(np.array([False, True]))
    assert by_mask.scores == evaluator.results([1]).scores and by_mask.scores["num_samples"] == 1
    table = write_group_reports(tmp_path, reports, "h_ho_table.txt")
    assert sorted(p.name for p in (tmp_path / "h").iterdir()) == ["scores.json", "scores_table.txt"]
    saved = json.loads((tmp_path / "h" / "scores.json").read_text())
    assert saved["num_samples"] == 0 and saved["mpjpe"] is None
    assert "empty group" in (tmp_path / "h" / "scores_table.txt").read_text()
    assert (tmp_path / "h_ho_table.txt").read_text() == table
    header = table.splitlines()[0].split()
    assert header == ["metric", "all", "h", "ho"]
    samples_row = table.splitlines()[2].split()
    assert samples_row == ["samples", "2", "0", "2"]


def test_write_report_files_and_contents(tmp_path):
    rng = np.random.default_rng(4)
    evaluator = HandEvaluator()
    evaluator.add(*random_batch(rng, 5))
    report = evaluator.results()
    table = write_report(tmp_path / "all", report)
    folder = tmp_path / "all"
    assert sorted(p.name for p in folder.iterdir()) == sorted([
        "scores.json", "scores_table.txt", "scores.txt", "pck_data.json",
        "pck_xyz.png", "pck_xyz_al.png", "pck_mesh.png", "pck_mesh_al.png"])
    saved = json.loads((folder / "scores.json").read_text())
    for key in HAND_KEYS:
        assert saved[key] == pytest.approx(report.scores[key])
    assert "mm" in saved["units"]
    lines = (folder / "scores.txt").read_text().splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "xyz_mean3d", "xyz_auc3d", "xyz_al_mean3d", "xyz_al_auc3d", "mesh_mean3d", "mesh_auc3d",
        "mesh_al_mean3d", "mesh_al_auc3d", "f_score_5", "f_al_score_5", "f_score_15", "f_al_score_15"]
    assert lines[0] == f"xyz_mean3d: {report.scores['mpjpe'] / 10:f}"  # centimetres
    assert lines[1] == f"xyz_auc3d: {report.scores['auc_j'] / 100:f}"  # fraction
    pck = json.loads((folder / "pck_data.json").read_text())
    assert sorted(pck) == ["mesh", "mesh_al", "xyz", "xyz_al"]
    thresholds_cm, curve = pck["xyz"]
    assert len(thresholds_cm) == 100 and thresholds_cm[0] == 0.0 and thresholds_cm[-1] == pytest.approx(5.0)
    np.testing.assert_allclose(curve, report.pck["xyz"])
    assert (folder / "pck_mesh.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (folder / "scores_table.txt").read_text() == table
    assert f"{report.scores['mpjpe']:.2f}" in table and "MPJPE (mm)" in table


def test_extra_scores_appear_in_json_and_table(tmp_path):
    rng = np.random.default_rng(5)
    evaluator = HandEvaluator()
    evaluator.add(*random_batch(rng, 2))
    report = evaluator.results()
    report.scores["grasp"] = {"grasp_accuracy": np.float32(0.75), "grasp_precision": float("nan"),
                              "counts": np.array([3, 1])}
    table = write_report(tmp_path, report, plots=False)
    saved = json.loads((tmp_path / "scores.json").read_text())
    assert saved["grasp"] == {"grasp_accuracy": 0.75, "grasp_precision": None, "counts": [3, 1]}
    assert "grasp.grasp_accuracy" in table and not list(tmp_path.glob("*.png"))


def test_atomic_write_keeps_old_file_on_exception(tmp_path):
    target = tmp_path / "scores.json"
    atomic_write_json(target, {"mpjpe": 1.0})
    with pytest.raises(RuntimeError, match="crash"):
        with atomic_write(target, mode="w") as f:
            f.write('{"mpjpe": 2')
            raise RuntimeError("crash while writing")
    assert json.loads(target.read_text()) == {"mpjpe": 1.0}
    with pytest.raises(TypeError):
        atomic_write_json(target, {"bad": object()})
    assert json.loads(target.read_text()) == {"mpjpe": 1.0}
    assert [p.name for p in tmp_path.iterdir()] == ["scores.json"]  # no temp files left behind
    atomic_write_text(target, "replaced")
    assert target.read_text() == "replaced"
    target.chmod(0o640)
    atomic_write_text(target, "again")
    assert target.stat().st_mode & 0o777 == 0o640  # permissions of the replaced file are kept
    fresh = tmp_path / "fresh.txt"
    umask = os.umask(0o022)
    try:
        atomic_write_text(fresh, "new")
    finally:
        os.umask(umask)
    assert fresh.stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600
    with pytest.raises(FileNotFoundError, match="does not exist"):
        atomic_write_text(tmp_path / "missing" / "x.txt", "")


def test_ho3d_submission_zip_order_frame_and_count(tmp_path):
    joints = np.zeros((2, 21, 3))
    joints[:, :, 0] = np.arange(21)  # joint j sits at x = j (manopth order)
    joints[:, :, 1] = 0.5
    verts = np.tile(np.array([0.1, 0.2, 0.3]), (2, 778, 1))
    root = np.array([[0.0, 0.0, 0.7], [1.0, 1.0, 1.0]])
    submission = HO3DSubmission()
    submission.add(joints, verts, root)
    with pytest.raises(ValueError, match="got 2 joint and 2 vertex predictions but the evaluation set has 3"):
        submission.write(tmp_path / "pred.zip", expected_count=3)
    assert not (tmp_path / "pred.zip").exists()
    submission.write(tmp_path / "pred.zip", expected_count=2)
    with zipfile.ZipFile(tmp_path / "pred.zip") as archive:
        assert archive.namelist() == ["pred.json"]
        joints_list, verts_list = json.loads(archive.read("pred.json"))
    ho3d_order = [0, 5, 6, 7, 9, 10, 11, 17, 18, 19, 13, 14, 15, 1, 2, 3, 4, 8, 12, 16, 20]
    out = np.array(joints_list)
    assert out.shape == (2, 21, 3) and np.array(verts_list).shape == (2, 778, 3)
    # root-aligned (wrist -> root), then OpenGL (y, z negated), then reordered manopth -> HO3D
    np.testing.assert_allclose(out[0, :, 0], ho3d_order)
    np.testing.assert_allclose(out[0, :, 1], -0.0)
    np.testing.assert_allclose(out[0, :, 2], -0.7)
    np.testing.assert_allclose(out[1, 0], [1.0, -1.0, -1.0])
    np.testing.assert_allclose(verts_list[0][0], [0.1, -(0.2 - 0.5), -(0.3 + 0.7)], atol=1e-6)


def test_write_ho3d_submission_rounds_to_micrometres(tmp_path):
    joints, verts = np.full((1, 21, 3), -0.1234567891), np.zeros((1, 778, 3))
    write_ho3d_submission(tmp_path / "pred.zip", joints, verts, expected_count=1)
    with zipfile.ZipFile(tmp_path / "pred.zip") as archive:
        assert json.loads(archive.read("pred.json"))[0][0][0] == [-0.123457] * 3


def test_object_evaluator_and_selection():
    points = {1: np.array([[0.0, 0.0, 0.0], [0.02, 0.0, 0.0]]), 13: np.array([[0.01, 0.01, 0.0], [-0.01, 0.0, 0.0]])}
    evaluator = ObjectPoseEvaluator(points)
    rot = np.tile(np.eye(3), (3, 1, 1))
    t_gt = np.array([[0.0, 0.0, 0.5]] * 3)
    t_pred = t_gt + np.array([[0.001, 0, 0], [0.0, 0.03, 0], [0.0, 0.0, 0.0]])
    intr = np.tile(np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]]), (3, 1, 1))
    evaluator.add((rot, t_pred), (rot, t_gt), np.array([1, 1, 13]), intr)
    assert len(evaluator) == 3
    # ADD for class 1 (plain); ADD-S for the bowl (13, symmetric) -> 0 for an exact pose
    result = evaluator.results(indices=[0, 1, 2])
    assert result["ADD"]["002_master_chef_can"] == 0.5  # 1 mm <= 0.1 * 0.02 m; 30 mm is not
    assert result["ADD"]["024_bowl"] == 1.0
    rep0 = reprojection_error_px(points[1], (rot[:1], t_pred[:1]), (rot[:1], t_gt[:1]), intr[:1])[0]
    assert rep0 == pytest.approx(1.0)  # 1 mm at 0.5 m, f = 500 px
    assert result["REP"]["average"] == pytest.approx(2 / 3)
    assert add_s_error(points[13], (rot[:1], t_gt[:1]), (rot[:1], t_gt[:1]))[0] == 0.0
    with pytest.raises(KeyError, match="has no model points"):
        evaluator.add((rot[:1], t_gt[:1]), (rot[:1], t_gt[:1]), np.array([5]), intr[:1])
    gt_grasp, pred_grasp = np.array([1, 0, 1, 1]), np.array([1, 1, 0, 1])
    assert object_eval_selection("gt", gt_grasp).tolist() == [0, 2, 3]
    assert object_eval_selection("pred-gt", gt_grasp, pred_grasp).tolist() == [0, 3]
    assert object_eval_selection("all", gt_grasp).tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="unknown obj_eval_mode 'both'"):
        object_eval_selection("both", gt_grasp)


def test_saved_predictions_hold_the_per_sample_arrays_and_labels(tmp_path):
    from engine.eval_pass import Predictions, save_predictions

    joints = [np.arange(6.0).reshape(1, 2, 3), np.arange(6.0, 12.0).reshape(1, 2, 3)]
    predictions = Predictions(grasp=[np.array([1.0]), np.array([-1.0])], occ_ratio=[np.array([0.2]), np.array([0.7])],
                              saved={"pred_joints3d_cam": joints})
    save_predictions(tmp_path / "no_switcher.npz", predictions)
    with np.load(tmp_path / "no_switcher.npz") as saved:
        assert sorted(saved.files) == ["gt_grasping", "gt_occ_ratio", "pred_joints3d_cam"]
        np.testing.assert_array_equal(saved["pred_joints3d_cam"], np.arange(12.0).reshape(2, 2, 3))
        np.testing.assert_array_equal(saved["gt_grasping"], [1.0, -1.0])
    predictions.pred_grasp = [np.array([0.0]), np.array([1.0])]
    save_predictions(tmp_path / "switcher.npz", predictions)
    with np.load(tmp_path / "switcher.npz") as saved:
        np.testing.assert_array_equal(saved["pred_grasping"], [0.0, 1.0])
        np.testing.assert_array_equal(saved["gt_occ_ratio"], [0.2, 0.7])
