"""predict.py end to end on frames of the tiny DexYCB tree with a small randomly initialised UniHOPE.

A random model's 2D and 3D predictions disagree, so the geometry of the placement is checked on ground truth in
tests/engine/test_predict_parts.py; here: the outputs and their schema, left hands un-mirrored, videos, ONNX
parity, and the errors a user meets.
"""
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import predict
from datasets import geometry as geo


@pytest.fixture(scope="module")
def experiment(tiny_dexycb, tmp_path_factory):
    """(experiment folder, checkpoint, [(image path, hand box, is_left, intrinsics)] of a right and a left frame)."""
    from datasets import build_dataset
    from models import build_model
    from utils.checkpoint import save_checkpoint
    from utils.config import load_config

    folder = tmp_path_factory.mktemp("predict_exp")
    cfg = {"base": {"model_dir": str(folder), "mano_root": str(tiny_dexycb.mano_root)},
           "data": {"name": "DEX_YCB", "root_dir": str(tiny_dexycb.root), "input_img_shape": [64, 64]},
           "model": {"name": "unihope_net", "obj_conf_layer_legacy": False, "backbone": "resnet18", "roi_res": 16},
           "train": {"init_layer_weight": True}}
    (folder / "cfg.json").write_text(json.dumps(cfg))
    torch.manual_seed(0)
    save_checkpoint(folder / "model.pth", build_model(load_config(folder)).state_dict())
    dataset = build_dataset(load_config(folder), "test")
    frames = {}
    for i in range(len(dataset)):
        record = dataset.record(i)
        points = record.hand_points_2d
        frames.setdefault(record.is_left, (record.image_path, np.concatenate([points.min(0), points.max(0)]),
                                           record.is_left, record.intrinsics))
    return folder, folder / "model.pth", [frames[False], frames[True]]


def model_args(experiment):
    folder, checkpoint, _ = experiment
    return ["--model_dir", str(folder), "--resume", str(checkpoint)]


def boxes_json(path, frames, key=lambda i, frame: frame[0]):
    path.write_text(json.dumps([{"image": key(i, f), "box": f[1].tolist(), "side": "left" if f[2] else "right"}
                                for i, f in enumerate(frames)]))
    return path


def test_images_give_overlays_records_and_meshes(experiment, tmp_path):
    folder, _, frames = experiment
    out = tmp_path / "out"
    fx, fy, cx, cy = 612.0, 611.0, 320.0, 240.0
    summary = predict.main([str(frames[0][0]), str(frames[1][0]), *model_args(experiment), "--out", str(out),
                            "--boxes", str(boxes_json(tmp_path / "b.json", frames)), "--save_mesh",
                            "--montage", str(tmp_path / "montage.png"),
                            "--intrinsics", str(fx), str(fy), str(cx), str(cy)])
    assert summary["images"] == 2 and summary["hands"] == 2
    # DexYCB names every frame color_00000k.jpg: outputs are named by the path below the common folder
    common = Path(os.path.commonpath([frames[0][0], frames[1][0]]))
    name = "__".join(Path(frames[0][0]).relative_to(common).with_suffix("").parts)
    assert Path(frames[0][0]).stem == Path(frames[1][0]).stem and name.endswith("__color_000000")
    assert {p.name for p in out.iterdir()} >= {f"{name}.json", f"{name}_overlay.png", f"{name}_hand0.obj"}
    record = json.loads((out / f"{name}.json").read_text())
    assert record["image"] == frames[0][0]
    assert record["width"] == 640 and record["height"] == 480
    assert record["intrinsics"] == [[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]]
    (hand,) = record["hands"]
    assert set(hand) == {"box", "side", "object_box", "detector_score", "placement", "joints_2d_px",
                         "joints_3d_cam_m", "verts_3d_cam_m", "grasp_probability", "occlusion_probability",
                         "grasping"}
    assert np.array(hand["joints_2d_px"]).shape == (21, 2)
    assert np.array(hand["joints_3d_cam_m"]).shape == (21, 3) and np.array(hand["verts_3d_cam_m"]).shape == (778, 3)
    assert np.array(hand["joints_3d_cam_m"])[:, 2].min() > 0.05  # in front of the camera
    assert 0.0 <= hand["grasp_probability"] <= 1.0 and 0.0 <= hand["occlusion_probability"] <= 1.0
    assert hand["placement"] in ("joints_2d", "hand_box") and isinstance(hand["grasping"], bool)
    overlay = cv2.imread(str(out / f"{name}_overlay.png"))
    assert overlay.shape == (480, 640 + 480, 3)
    original = cv2.imread(record["image"])
    assert (overlay[:, :640] != original).any(axis=2).sum() > 100  # the mesh is drawn over the photo
    assert (overlay[:, 640:] != 255).any(axis=2).sum() > 100  # and in the side view
    assert cv2.imread(str(tmp_path / "montage.png")).shape == (240, 2 * 2 * 240, 3)  # 2 images: window + side
    obj = (out / f"{name}_hand0.obj").read_text().splitlines()
    assert sum(line.startswith("v ") for line in obj) == 778 and sum(line.startswith("f ") for line in obj) == 1538


def test_left_hands_come_back_unmirrored(experiment, tmp_path):
    """A left hand in an image = the right hand of the mirrored image, mirrored back (3D x -> -x, 2D u -> W-1-u)."""
    folder, _, frames = experiment
    path, box, _, intrinsics = frames[1]
    image = cv2.imread(path)
    width = image.shape[1]
    flipped = tmp_path / "flipped.png"
    cv2.imwrite(str(flipped), image[:, ::-1])
    flipped_box = [float(v) for v in (width - 1 - box[2], box[1], width - 1 - box[0], box[3])]
    boxes = tmp_path / "b.json"
    boxes.write_text(json.dumps([{"image": path, "box": box.tolist(), "side": "left"},
                                 {"image": "flipped.png", "box": flipped_box, "side": "right"}]))
    k = geo.mirror_intrinsics(intrinsics, width)
    assert k[0, 2] != intrinsics[0, 2]
    results = {}
    for name, image_path, camera in (("left", path, intrinsics), ("right", flipped, k)):
        out = tmp_path / name
        predict.main([str(image_path), *model_args(experiment), "--out", str(out), "--boxes", str(boxes),
                      "--intrinsics", *(str(v) for v in (camera[0, 0], camera[1, 1], camera[0, 2], camera[1, 2]))])
        (hand,) = json.loads(next(out.glob("*.json")).read_text())["hands"]
        results[name] = {key: np.array(hand[key]) for key in ("joints_2d_px", "joints_3d_cam_m", "verts_3d_cam_m")}
    left, right = results["left"], results["right"]
    assert np.allclose(left["joints_3d_cam_m"], right["joints_3d_cam_m"] * [-1, 1, 1], atol=1e-4)
    assert np.allclose(left["verts_3d_cam_m"], right["verts_3d_cam_m"] * [-1, 1, 1], atol=1e-4)
    assert np.allclose(left["joints_2d_px"][:, 0], width - 1 - right["joints_2d_px"][:, 0], atol=1e-2)
    assert np.allclose(left["joints_2d_px"][:, 1], right["joints_2d_px"][:, 1], atol=1e-2)
    # the left hand lies where the left hand is: its projection falls inside the given box
    centre = left["joints_2d_px"].mean(0)
    assert box[0] - 40 < centre[0] < box[2] + 40


def test_a_video_of_n_frames_gives_n_records_and_an_n_frame_mp4(experiment, tmp_path):
    _, _, frames = experiment
    path, box, is_left, _ = frames[0]
    image = cv2.resize(cv2.imread(path), (320, 240))  # half size: a quicker test
    box = box / 2
    count = 5
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (image.shape[1], image.shape[0]))
    for i in range(count):
        writer.write(np.roll(image, 2 * i, axis=1))
    writer.release()
    boxes = tmp_path / "boxes.csv"
    boxes.write_text("image,x1,y1,x2,y2\n" + "".join(
        f"{i},{box[0] + 2 * i},{box[1]},{box[2] + 2 * i},{box[3]}\n" for i in range(count)))
    out = tmp_path / "out"
    summary = predict.main([str(video), *model_args(experiment), "--out", str(out), "--boxes", str(boxes),
                            "--smooth", "--focal", "600"])
    assert summary["videos"] == {str(video): count}
    records = sorted((out / "clip_frames").glob("frame_*.json"))
    assert [r.name for r in records] == [f"frame_{i:06d}.json" for i in range(count)]
    last = json.loads(records[-1].read_text())
    assert last["frame"] == count - 1 and last["smoothed"] is True and last["time_s"] == pytest.approx(0.4)
    assert len(last["hands"]) == 1 and last["intrinsics"][0][0] == 600.0
    capture = cv2.VideoCapture(str(out / "clip_overlay.mp4"))
    frames_read = 0
    while capture.read()[0]:
        frames_read += 1
    assert frames_read == count
    assert int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)) == image.shape[1] + image.shape[0]
    capture.release()


def test_onnx_export_matches_pytorch_and_runs_in_predict(experiment, tmp_path):
    from datasets.registry import sample_settings
    from engine.export_onnx import example_inputs, main as export_main
    from engine.predict.network import OnnxPredictor, TorchPredictor
    from models import build_model
    from utils.checkpoint import load_model_checkpoint
    from utils.config import load_config

    folder, checkpoint, frames = experiment
    onnx_path = export_main([*model_args(experiment), "--out", str(tmp_path / "m.onnx")])
    cfg = load_config(folder)
    model = build_model(cfg)
    load_model_checkpoint(model, checkpoint)
    inputs = example_inputs(sample_settings(cfg, "test", "dexycb"), batch_size=3)
    inputs["img"] = np.random.default_rng(0).random(inputs["img"].shape, dtype=np.float32)
    torch_out, onnx_out = TorchPredictor(model, "cpu")(inputs), OnnxPredictor(onnx_path)(inputs)
    assert set(onnx_out) == set(torch_out) >= {"pred_joints3d_cam", "pred_verts3d_cam", "preds_joints2d"}
    for key in torch_out:
        assert np.abs(onnx_out[key].astype(np.float64) - torch_out[key]).max() <= 1e-5, key
    camera = [600.0, 601.0, 330.0, 250.0]
    boxes = tmp_path / "b.json"
    boxes.write_text(json.dumps([{"image": frames[0][0], "box": frames[0][1].tolist(), "intrinsics": camera}]))
    records = {}
    for inputs, backend in (([frames[0][0]], ["--onnx", str(onnx_path)]), ([], ["--resume", str(checkpoint)])):
        out = tmp_path / backend[0].strip("-")  # no inputs: the images the boxes file names
        predict.main([*inputs, "--model_dir", str(folder), *backend, "--out", str(out), "--boxes", str(boxes)])
        records[backend[0]] = json.loads(next(out.glob("*.json")).read_text())
    assert records["--resume"]["image"] == frames[0][0]
    assert records["--onnx"]["intrinsics"] == [[600.0, 0.0, 330.0], [0.0, 601.0, 250.0], [0.0, 0.0, 1.0]]
    for key in ("joints_3d_cam_m", "verts_3d_cam_m"):
        assert np.allclose(records["--onnx"]["hands"][0][key], records["--resume"]["hands"][0][key], atol=1e-4), key


def test_full_image_mode_needs_no_boxes(experiment, tmp_path):
    _, _, frames = experiment
    out = tmp_path / "out"
    summary = predict.main([frames[1][0], *model_args(experiment), "--out", str(out), "--full_image",
                            "--side", "left"])
    assert summary["hands"] == 1
    (hand,) = json.loads(next(out.glob("*.json")).read_text())["hands"]
    assert hand["side"] == "left" and hand["box"] == [106.67, 26.67, 533.33, 453.33]


def run_expecting_exit_2(argv, capsys) -> str:
    with pytest.raises(SystemExit) as stop:
        predict.main(argv)
    assert stop.value.code == 2
    return capsys.readouterr().err


def test_missing_detector_says_how_to_install_it(experiment, tmp_path, capsys):
    _, _, frames = experiment
    message = run_expecting_exit_2([frames[0][0], *model_args(experiment), "--out", str(tmp_path), "--detector",
                                    "--detector_python", str(tmp_path / "no-venv" / "bin" / "python")], capsys)
    assert "pip install mediapipe==0.10.21" in message and "make detector-venv" in message


def test_bad_boxes_file_and_inputs_exit_2_with_the_reason(experiment, tmp_path, capsys):
    _, _, frames = experiment
    bad = tmp_path / "boxes.json"
    bad.write_text(json.dumps([{"image": frames[0][0], "box": [50, 60, 40, 70]}]))
    message = run_expecting_exit_2([frames[0][0], *model_args(experiment), "--out", str(tmp_path / "o"),
                                    "--boxes", str(bad)], capsys)
    assert str(bad) in message and "record 0" in message and "x2 > x1" in message
    message = run_expecting_exit_2([str(tmp_path / "nope.jpg"), *model_args(experiment), "--out", str(tmp_path),
                                    "--full_image"], capsys)
    assert "nope.jpg does not exist" in message
    message = run_expecting_exit_2([frames[0][0], *model_args(experiment), "--out", str(tmp_path)], capsys)
    assert "--boxes FILE, --detector or --full_image" in message
    folder = experiment[0]
    message = run_expecting_exit_2([frames[0][0], "--model_dir", str(folder), "--resume", str(tmp_path / "x.pth"),
                                    "--out", str(tmp_path), "--full_image"], capsys)
    assert "checkpoint not found" in message and "x.pth" in message


def test_dataset_boxes_lists_gt_boxes_sides_objects_and_cameras(experiment, tmp_path):
    from datasets import build_dataset
    from engine.predict.dataset_boxes import main as boxes_main
    from engine.predict.hand_boxes import read_boxes_file
    from utils.config import load_config

    folder, _, _ = experiment
    path = boxes_main(["--model_dir", str(folder), "--count", "4", "--out", str(tmp_path / "gt" / "boxes.json")])
    records = json.loads(path.read_text())
    dataset = build_dataset(load_config(folder), "test")
    assert len(records) == 4
    by_path = {dataset.record(i).image_path: dataset.record(i) for i in range(len(dataset))}
    for item in records:
        record = by_path[item["image"]]
        points = record.joints_2d
        assert np.allclose(item["box"], [*points.min(0), *points.max(0)], atol=0.01)
        assert item["side"] == ("left" if record.is_left else "right")
        assert ("object_box" in item) == record.grasping
        assert item["intrinsics"] == [record.intrinsics[0, 0], record.intrinsics[1, 1], record.intrinsics[0, 2],
                                      record.intrinsics[1, 2]]
    assert sum(len(hands) for hands in read_boxes_file(path).values()) == 4  # a valid predict.py boxes file


@pytest.mark.skipif(not Path(__file__).resolve().parents[2].joinpath(".venv-detector", "bin", "python").is_file(),
                    reason="the MediaPipe environment (make detector-venv) is not installed")
def test_detector_writes_a_boxes_file_that_predict_reads(experiment, tmp_path):
    """With the detector environment: --detector runs it and predicts on what it found (on the stand-in renders
    MediaPipe finds no hand, so this checks the plumbing, not the detector's recall)."""
    from engine.predict.hand_boxes import read_boxes_file

    _, _, frames = experiment
    out = tmp_path / "out"
    summary = predict.main([frames[0][0], *model_args(experiment), "--out", str(out), "--detector"])
    detected = read_boxes_file(out / "detected_boxes.json")
    assert summary["hands"] == sum(len(hands) for hands in detected.values())
    assert (out / f"{Path(frames[0][0]).stem}.json").is_file()
