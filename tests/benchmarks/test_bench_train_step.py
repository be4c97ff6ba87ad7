"""benchmarks/bench_train_step.py at a tiny size: every variant trains on the same weights and batch."""
import json

import pytest

from benchmarks import bench_train_step


@pytest.mark.slow
def test_variants_run_the_same_step_and_report_rates(standin_mano_root, tmp_path, capsys):
    out = tmp_path / "step.json"
    results = bench_train_step.main(["--batch_size", "2", "--res", "32", "--backbone", "resnet18", "--roi_res", "16",
                                     "--repeats", "1", "--mano_root", str(standin_mano_root), "--json", str(out)])
    assert [row["variant"] for row in results] == ["official", "ours", "ours+gpu"]
    assert all(row["samples_per_s"] > 0 for row in results)
    official, ours, fast = (row["first_loss"] for row in results)
    assert ours == official  # same weights, batch and dropout draws, same arithmetic on the CPU (fp32, NCHW)
    assert fast == pytest.approx(official, rel=0.05)  # bf16 + channels-last: the same step up to rounding
    assert json.loads(out.read_text())["results"] == results
    printed = capsys.readouterr().out
    assert "B=2, 32 px, resnet18, ROI 16" in printed and "ours+gpu" in printed


def test_pair_batch_has_the_paired_loader_layout():
    batch = bench_train_step.pair_batch(3, 64, "cpu")
    assert batch["img"].shape == (3, 6, 64, 64) and batch["bbox_hand"].shape == (3, 8)
    assert batch["mano_param"].shape == (3, 116) and batch["joints_img"].shape == (3, 42, 2)
    assert batch["obj_mask"].shape == (3, 64, 32) and batch["gt_grasping"][:, 0].all()
    assert not batch["is_filtered"].any()
