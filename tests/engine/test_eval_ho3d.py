"""eval.py on the HO3D v2 evaluation split: the validated submission zip and the local scores."""
import json
import shutil
import zipfile

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def ho3d_experiment(tmp_path_factory, tiny_ho3d):
    from models import build_model
    from utils.checkpoint import save_checkpoint
    from utils.config import load_config

    folder = tmp_path_factory.mktemp("ho3d_exp")
    root = folder / "HO3D_v2"
    shutil.copytree(tiny_ho3d.root, root)
    cfg = {"base": {"model_dir": str(folder), "mano_root": str(tiny_ho3d.mano_root)},
           "data": {"name": "HO3D", "root_dir": str(root), "input_img_shape": [64, 64]},
           "model": {"name": "hflnet", "roi_res": 16}, "test": {"batch_size": 4}}
    (folder / "cfg.json").write_text(json.dumps(cfg))
    torch.manual_seed(0)
    save_checkpoint(folder / "test_model_best.pth", build_model(load_config(folder)).state_dict())
    return folder, root


def _eval(folder):
    import eval as eval_script

    return eval_script.main(["--model_dir", str(folder), "--resume", str(folder / "test_model_best.pth"),
                             "--no_plots"])


def test_submission_then_local_scores_from_public_ground_truth(ho3d_experiment):
    folder, root = ho3d_experiment
    assert _eval(folder) == {}  # no public GT files yet: only the submission
    keys = (root / "evaluation.txt").read_text().split()
    with zipfile.ZipFile(folder / "pred.zip") as archive:
        assert archive.namelist() == ["pred.json"]
        joints, verts = (np.asarray(a) for a in json.loads(archive.read("pred.json")))
    assert joints.shape == (len(keys), 21, 3) and verts.shape == (len(keys), 778, 3)
    assert np.all(joints[..., 2] < 0)  # OpenGL frame
    # Use the submission itself as the public ground truth: the local evaluation must find (almost) no error,
    # which checks the frame flip and the joint order conversions both ways.
    (root / "evaluation_xyz.json").write_text(json.dumps(joints.tolist()))
    (root / "evaluation_verts.json").write_text(json.dumps(verts.tolist()))
    reports = _eval(folder)
    scores = json.loads((folder / "ho3d_local" / "scores.json").read_text())
    assert scores["num_samples"] == len(keys) == reports["ho3d_local"].scores["num_samples"]
    assert scores["mpjpe"] < 0.01 and scores["mpvpe"] < 0.01 and scores["f5"] == pytest.approx(100.0)
    assert scores["sc_tr_mpjpe"] < 0.01 and scores["auc_sc_tr_j"] > 99.0


def test_scale_translation_alignment_undoes_scale_and_shift():
    from utils.metrics.hand import scale_translation_align

    rng = np.random.default_rng(0)
    gt = rng.normal(size=(3, 21, 3))
    pred = 0.5 * gt + np.array([0.1, -0.2, 0.3])  # half size, shifted
    assert np.allclose(scale_translation_align(pred, gt), gt)
    rotated = gt @ np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]]).T  # a rotation is not undone
    assert not np.allclose(scale_translation_align(rotated, gt), gt)


def test_submission_writer_refuses_wrong_frame_and_count(tmp_path):
    from engine.ho3d_submission import write_ho3d_submission

    joints, verts = -np.ones((2, 21, 3)), np.zeros((2, 778, 3))
    with pytest.raises(ValueError, match="evaluation set has 3 samples"):
        write_ho3d_submission(tmp_path / "pred.zip", joints, verts, expected_count=3)
    with pytest.raises(ValueError, match="OpenGL frame"):
        write_ho3d_submission(tmp_path / "pred.zip", -joints, verts, expected_count=2)
    assert not (tmp_path / "pred.zip").exists()


def test_non_finite_or_malformed_local_ground_truth_is_named(tmp_path):
    from engine.ho3d_submission import load_ho3d_ground_truth
    from utils.errors import DataError

    joints, verts = np.zeros((2, 21, 3)), np.zeros((2, 778, 3))
    joints[1, 4, 2] = np.nan
    (tmp_path / "evaluation_xyz.json").write_text(json.dumps(joints.tolist()))
    (tmp_path / "evaluation_verts.json").write_text(json.dumps(verts.tolist()))
    with pytest.raises(DataError, match=r"evaluation_xyz\.json: holds non-finite values .* sample\(s\) \[1\]"):
        load_ho3d_ground_truth(tmp_path)
    (tmp_path / "evaluation_xyz.json").write_text("[[1, 2], [3]]")
    with pytest.raises(DataError, match=r"evaluation_xyz\.json: expected nested lists of numbers"):
        load_ho3d_ground_truth(tmp_path)
