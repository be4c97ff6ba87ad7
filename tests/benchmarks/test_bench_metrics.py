"""benchmarks/bench_metrics.py at a tiny size: both data sets run and the evaluator matches the per-sample loop."""
import numpy as np
import pytest

from benchmarks import bench_metrics


def test_both_data_sets_run_and_match_the_loop(capsys):
    bench_metrics.main(["--samples", "12", "--batch", "5", "--rounds", "1"])
    printed = capsys.readouterr().out
    assert "first evaluator call" in printed
    assert "random: 12 samples" in printed and "hands: 12 samples" in printed
    assert printed.count("results identical") == 2 and printed.count("total") == 2


def test_hand_data_are_hand_shaped_and_the_check_catches_a_difference():
    pred_j, pred_v, gt_j, gt_v, root = bench_metrics.make_hand_data(4)
    assert pred_j.shape == gt_j.shape == (4, 21, 3) and pred_v.shape == gt_v.shape == (4, 778, 3)
    np.testing.assert_array_equal(root, gt_j[:, 0])
    extent = np.ptp(gt_v, axis=1).max(axis=1)
    assert np.all((extent > 0.12) & (extent < 0.3))  # a hand, in metres
    ours = bench_metrics.batched_evaluation((pred_j, pred_v, gt_j, gt_v, root), 2)
    ref = bench_metrics.loop_evaluation(pred_j, pred_v, gt_j, gt_v, root, dict.fromkeys(bench_metrics.PARTS, 0.0))
    bench_metrics.check_identical(ours, ref)
    ref["f5_aligned"] = np.nextafter(ref["f5_aligned"], 0.0)
    with pytest.raises(AssertionError, match="f5_aligned"):
        bench_metrics.check_identical(ours, ref)
