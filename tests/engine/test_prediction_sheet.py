"""The prediction sheet: meshes land on the hand in the original image (both sides), and eval.py writes it."""
import json

import numpy as np
import pytest

from engine.prediction_sheet import hand_window, placed_vertices, sheet_indices


def test_sheet_indices_spread_over_the_split():
    assert sheet_indices(10, 4).tolist() == [0, 3, 6, 9]
    assert sheet_indices(3, 8).tolist() == [0, 1, 2]
    assert sheet_indices(5, 0).tolist() == []


def test_placed_vertices_moves_the_wrist_onto_the_gt_root_and_mirrors_left_hands():
    verts = np.array([[0.01, 0.02, 0.03], [0.05, 0.0, 0.0]])
    joints = np.array([[0.01, 0.02, 0.03], [0.0, 0.0, 0.0]])
    root = np.array([0.1, -0.2, 0.6])
    right = placed_vertices(verts, joints, root, is_left=False)
    assert np.allclose(right, [[0.1, -0.2, 0.6], [0.14, -0.22, 0.57]])
    left = placed_vertices(verts, joints, root, is_left=True)
    assert np.allclose(left, [[-0.1, -0.2, 0.6], [-0.14, -0.22, 0.57]])


def test_hand_window_is_square_enlarged_and_clipped():
    points = np.array([[100.0, 200.0], [140.0, 220.0]])
    assert hand_window(points, 640, 480, scale=1.5) == (90, 180, 150, 240)
    assert hand_window(np.array([[630.0, 470.0], [639.0, 479.0]]), 640, 480)[2:] == (640, 480)


@pytest.fixture(scope="module")
def test_split(tiny_dexycb, tmp_path_factory):
    from datasets import build_dataset
    from utils.config import load_config

    folder = tmp_path_factory.mktemp("sheet_exp")
    cfg = {"base": {"model_dir": str(folder), "mano_root": str(tiny_dexycb.mano_root)},
           "data": {"name": "DEX_YCB", "root_dir": str(tiny_dexycb.root), "data_split": "s0",
                    "input_img_shape": [64, 64]},
           "model": {"name": "mean_pose"}, "test": {"batch_size": 5}}
    (folder / "cfg.json").write_text(json.dumps(cfg))
    return folder, build_dataset(load_config(folder), "test")


def test_gt_mesh_drawn_as_a_prediction_covers_the_hand_segmentation(test_split, tiny_dexycb):
    """The GT mesh, placed like a prediction, must cover the pixels DexYCB's ``seg`` labels as hand (255).

    Left hands are rendered with the left model, whose shape blend shapes reproduce MANO_LEFT.pkl's x-sign issue,
    while the GT mesh comes from the right model on the mirrored pose (as the official evaluation): the two differ
    by up to a few centimetres for large betas, hence the looser bound for left hands.
    """
    from models import build_model
    from utils.config import load_config
    from utils.mano_io import load_mano_assets
    from engine.prediction_sheet import overlay_mesh
    from utils.render import MeshRenderer

    folder, dataset = test_split
    model = build_model(load_config(folder))  # its gt_meshes: the loss / metric GT, metres
    faces = load_mano_assets(tiny_dexycb.mano_root, "right").faces
    sides = {dataset.record(i).is_left: i for i in range(len(dataset))}
    assert set(sides) == {False, True}
    with MeshRenderer(640, 480, background=(0.0, 0.0, 0.0)) as renderer:
        for is_left, index in sides.items():
            record, sample = dataset.record(index), dataset[index]
            verts, joints = (t[0].numpy() for t in model.gt_meshes(sample["mano_param"][None, :58].float()))
            placed = placed_vertices(verts, joints, sample["root_joint_flip"].numpy(), record.is_left)
            drawn = overlay_mesh(np.zeros((480, 640, 3), np.uint8), placed, faces, record.intrinsics, renderer)
            covered = drawn.any(axis=2)
            hand = np.load(record.image_path.replace("color_", "labels_").replace(".jpg", ".npz"))["seg"] == 255
            assert hand.sum() > 50, index
            coverage = (covered & hand).sum() / hand.sum()
            assert coverage > (0.7 if is_left else 0.9), (is_left, coverage)
            if is_left:  # the un-mirrored placement would miss the hand
                wrong = overlay_mesh(np.zeros((480, 640, 3), np.uint8), placed_vertices(
                    verts, joints, sample["root_joint_flip"].numpy(), False), faces, record.intrinsics, renderer)
                assert (wrong.any(axis=2) & hand).sum() / hand.sum() < 0.3


def test_eval_py_writes_the_sheet(test_split):
    import eval as eval_script
    from engine.mean_pose_fit import main as fit_main
    from PIL import Image

    folder, dataset = test_split
    path = fit_main(["--model_dir", str(folder)])
    eval_script.main(["--model_dir", str(folder), "--resume", str(path), "--no_plots", "--sheet", "4"])
    with Image.open(folder / "prediction_sheet.png") as image:
        width, height = image.size
    assert width > 400 and height > 100
