"""The parts behind predict.py: boxes files, crops, 2D joint decoding, camera placement, smoothing, meshes."""
import json

import numpy as np
import pytest

from datasets import geometry as geo
from datasets.hand_object_sample import SampleSettings
from engine.predict import PredictInputError
from engine.predict.crops import build_hand_crop
from engine.predict.hand_boxes import HandBox, full_image_box, hands_for, read_boxes_file
from engine.predict.network import joints_2d_crop_px
from engine.predict.outputs import hand_faces, write_obj
from engine.predict.placement import PlacedHand, place_hand
from engine.predict.video import HandSmoother

SETTINGS = SampleSettings(res=64)


def test_json_and_csv_boxes_files_read_the_same_hands(tmp_path):
    records = [{"image": "a.png", "box": [10, 20, 50, 80], "side": "left", "object_box": [30, 30, 90, 90],
                "intrinsics": [500, 500, 320, 240]},
               {"image": "a.png", "box": [100, 20, 150, 70], "score": 0.9},
               {"image": "7", "box": [1, 2, 3, 4]}]
    (tmp_path / "b.json").write_text(json.dumps(records))
    (tmp_path / "b.csv").write_text("image,x1,y1,x2,y2,side,ox1,oy1,ox2,oy2,score\n"
                                    "a.png,10,20,50,80,left,30,30,90,90,\n"
                                    "a.png,100,20,150,70,,,,,,0.9\n"
                                    "7,1,2,3,4,right,,,,,\n")
    for name in ("b.json", "b.csv"):
        hands = read_boxes_file(tmp_path / name)
        assert sorted(hands) == ["7", "a.png"]
        first, second = hands["a.png"]
        assert first.side == "left" and first.box.tolist() == [10, 20, 50, 80]
        assert first.object_box.tolist() == [30, 30, 90, 90]
        assert first.intrinsics is None or first.intrinsics.tolist() == [500, 500, 320, 240]  # JSON only
        assert second.side == "right" and second.object_box is None and second.score == pytest.approx(0.9)
        assert hands_for(hands, "/x/a.png", "a.png") == hands["a.png"]
        assert hands_for(hands, "b.png") == []


@pytest.mark.parametrize("content, message", [
    ('{"image": "a.png"}', "expected a JSON list"),
    ('[{"image": "a.png", "box": [10, 20, 5, 80]}]', r"record 0, 'box': expected x2 > x1"),
    ('[{"image": "a.png", "box": [1, 2, 3, 4]}, {"image": "b.png", "box": [1, 2, 3]}]', r"record 1, 'box'"),
    ('[{"image": "a.png", "box": [1, 2, 3, 4], "hand": 1}]', r"record 0: unknown key\(s\) \['hand'\]"),
    ('[{"image": "a.png", "box": [1, 2, 3, 4], "side": "up"}]', "side must be one of"),
    ('[{"box": [1, 2, 3, 4]}]', "missing 'image'"),
    ('[{"image": "a.png", "box": [1, 2, 3, 4], "object_box": [0, 0, "x", 1]}]', "'object_box': expected 4 numbers"),
    ('not json', "not valid JSON"),
    ('[{"image": "a.png", "box": [1, 2, 3, 4], "intrinsics": [0, 1, 2, 3]}]', r"'intrinsics' must be \[fx, fy, cx, cy\]"),
])
def test_bad_json_boxes_name_the_file_and_the_record(tmp_path, content, message):
    path = tmp_path / "boxes.json"
    path.write_text(content)
    with pytest.raises(PredictInputError, match=message) as error:
        read_boxes_file(path)
    assert str(path) in str(error.value)


def test_bad_csv_boxes_name_the_line(tmp_path):
    path = tmp_path / "boxes.csv"
    path.write_text("image,x1,y1,x2,y2,ox1,oy1,ox2,oy2\na.png,1,2,3,4,,,,\nb.png,1,2,3,4,5,6,,\n")
    with pytest.raises(PredictInputError, match="line 3: the object box needs all of"):
        read_boxes_file(path)
    path.write_text("image,x1,y1,x2\na.png,1,2,3\n")
    with pytest.raises(PredictInputError, match=r"lacks \['y2'\]"):
        read_boxes_file(path)
    with pytest.raises(PredictInputError, match="does not exist"):
        read_boxes_file(tmp_path / "missing.csv")


def test_full_image_crop_is_the_whole_image():
    image = np.random.default_rng(0).integers(0, 255, (90, 90, 3), dtype=np.uint8)
    crop = build_hand_crop(image, full_image_box(90, 90), SETTINGS)
    assert np.allclose(geo.apply_affine(crop.image_to_crop, np.array([[0.0, 0.0], [90.0, 90.0]])), [[0, 0], [64, 64]])
    assert crop.inputs["img"].shape == (3, 64, 64)
    assert np.allclose(crop.inputs["bbox_obj"], crop.inputs["bbox_hand"])


def test_left_hand_crop_equals_the_mirrored_right_hand_crop():
    image = np.random.default_rng(1).integers(0, 255, (80, 120, 3), dtype=np.uint8)
    box = np.array([20.0, 10.0, 60.0, 50.0], np.float32)
    mirrored_box = np.array([120 - 1 - 60.0, 10.0, 120 - 1 - 20.0, 50.0], np.float32)
    left = build_hand_crop(image, HandBox(box, "left"), SETTINGS)
    right = build_hand_crop(np.ascontiguousarray(image[:, ::-1]), HandBox(mirrored_box, "right"), SETTINGS)
    for key in ("img", "bbox_hand", "bbox_obj"):
        assert np.array_equal(left.inputs[key], right.inputs[key]), key
    assert left.is_left and not right.is_left


def test_box_outside_the_image_is_refused():
    with pytest.raises(PredictInputError, match="outside the 50x40 image"):
        build_hand_crop(np.zeros((40, 50, 3), np.uint8), HandBox(np.array([60.0, 5, 80, 20], np.float32)), SETTINGS,
                        where="image x.png")


def test_2d_joints_decode_per_training_convention():
    bbox = np.array([[10.0, 20.0, 30.0, 60.0]])
    uv = np.zeros((1, 21, 2))
    uv[0, 1] = [0.5, 0.25]
    boxed = joints_2d_crop_px({"preds_joints2d": uv}, bbox, 64, box_normalised=True)
    assert boxed[0, 0].tolist() == [10.0, 20.0] and boxed[0, 1].tolist() == [20.0, 30.0]
    assert joints_2d_crop_px({"pred_joints_img": uv}, bbox, 64, box_normalised=False)[0, 1].tolist() == [32.0, 16.0]
    flat = uv.reshape(1, 42)
    assert joints_2d_crop_px({"uv": flat}, bbox, 224, box_normalised=True)[0, 1].tolist() == [112.0, 56.0]
    assert joints_2d_crop_px({"pred_joints3d_cam": uv}, bbox, 64, True) is None


@pytest.fixture(scope="module")
def gt_frames(tiny_dexycb):
    """One right-hand and one left-hand test frame of the tiny DexYCB tree (records with GT 2D / 3D joints)."""
    from datasets import build_dataset
    from utils.config import config_from_dict

    cfg = config_from_dict({"base": {"mano_root": str(tiny_dexycb.mano_root)},
                            "data": {"name": "DEX_YCB", "root_dir": str(tiny_dexycb.root), "data_split": "s0"}})
    dataset = build_dataset(cfg, "test")
    by_side = {dataset.record(i).is_left: dataset.record(i) for i in range(len(dataset))}
    return [by_side[False], by_side[True]]


def oracle_outputs(record, crop):
    """What a perfect network would output for this crop: root-relative GT joints in the network's (mirrored for
    left hands) frame, GT 2D joints normalised to ``bbox_hand``; the mesh is the joints (the placement's input)."""
    joints_3d = geo.mirror_points_3d(record.joints_3d) if record.is_left else np.asarray(record.joints_3d)
    joints_2d = geo.mirror_points_2d(record.joints_2d, crop.width) if record.is_left else record.joints_2d
    box = crop.inputs["bbox_hand"]
    uv = (geo.apply_affine(crop.image_to_crop, joints_2d) - box[:2]) / (box[2:] - box[:2])
    rel = (joints_3d - joints_3d[0] + [0.01, -0.02, 0.03])[None]  # any root offset: the solve removes it
    return {"pred_joints3d_cam": rel, "pred_verts3d_cam": rel, "preds_joints2d": uv[None],
            "pred_obj_conf": np.array([[0.0, 2.0]]), "pred_hand_occ": np.array([[1.0, 0.0]])}


def test_placement_recovers_the_gt_hand_in_the_camera_for_both_sides(gt_frames):
    from datasets.label_files import read_rgb

    for record in gt_frames:
        image = read_rgb(record.image_path)
        points = record.joints_2d
        hand = HandBox(np.concatenate([points.min(0), points.max(0)]), "left" if record.is_left else "right")
        crop = build_hand_crop(image, hand, SETTINGS)
        outputs = oracle_outputs(record, crop)
        joints_2d = joints_2d_crop_px(outputs, crop.inputs["bbox_hand"][None], SETTINGS.res, True)[0]
        placed = place_hand(hand, crop, outputs, 0, joints_2d, record.intrinsics)
        assert placed.placement == "joints_2d"
        assert np.abs(placed.joints_cam - record.joints_3d).max() < 1e-3, record.is_left  # metres
        assert np.abs(placed.joints_2d - record.joints_2d).max() < 0.05, record.is_left  # px
        reprojected = geo.project_points(placed.joints_cam, record.intrinsics)
        assert np.abs(reprojected - placed.joints_2d).max() < 0.5
        assert placed.grasp_probability == pytest.approx(1 / (1 + np.exp(-2.0)))
        assert placed.occlusion_probability == pytest.approx(1 / (1 + np.exp(1.0)))
        assert placed.grasping is None


def test_disagreeing_2d_joints_fall_back_to_the_hand_box(gt_frames):
    from datasets.label_files import read_rgb

    record = gt_frames[0]
    image = read_rgb(record.image_path)
    points = record.joints_2d
    hand = HandBox(np.concatenate([points.min(0), points.max(0)]))
    crop = build_hand_crop(image, hand, SETTINGS)
    outputs = oracle_outputs(record, crop)
    collapsed = np.full((21, 2), 32.0)  # every joint on one pixel: no depth information
    placed = place_hand(hand, crop, outputs, 0, collapsed, record.intrinsics)
    assert placed.placement == "hand_box"
    good = joints_2d_crop_px(outputs, crop.inputs["bbox_hand"][None], SETTINGS.res, True)[0]
    assert place_hand(hand, crop, outputs, 0, good, record.intrinsics).placement == "joints_2d"
    spread = good.mean(0) + (good - good.mean(0)) * 5  # 2D says 5x nearer than the 3D hand in its box
    assert place_hand(hand, crop, outputs, 0, spread, record.intrinsics).placement == "hand_box"
    assert placed.joints_cam[:, 2].min() > 0.05
    centre = geo.project_points(((placed.joints_cam.min(0) + placed.joints_cam.max(0)) / 2)[None], record.intrinsics)
    assert np.allclose(centre[0], (hand.box[:2] + hand.box[2:]) / 2, atol=0.5)


def placed(side, offset):
    joints = np.zeros((21, 3)) + [0, 0, 0.5 + offset]
    return PlacedHand(HandBox(np.array([0, 0, 1, 1], np.float32), side), np.zeros((21, 2)), joints,
                      np.zeros((778, 3)) + offset, "joints_2d")


def test_smoother_follows_slots_and_restarts_lost_ones():
    smoother = HandSmoother(fps=30.0, min_cutoff_hz=1.0, beta=0.0)
    first = smoother([placed("right", 0.0), placed("left", 0.0)])
    assert first[0].joints_cam[0, 2] == pytest.approx(0.5)
    second = smoother([placed("right", 0.1), placed("left", 0.1)])
    assert 0.5 < second[0].joints_cam[0, 2] < 0.6 and 0.0 < second[1].verts_cam[0, 0] < 0.1
    third = smoother([placed("right", 0.1)])  # the left hand is lost ...
    assert len(third) == 1
    restarted = smoother([placed("right", 0.1), placed("left", 0.3)])  # ... and comes back: no memory
    assert restarted[1].verts_cam[0, 0] == pytest.approx(0.3)


def test_obj_file_and_left_hand_winding(tmp_path):
    faces = np.array([[0, 1, 2]])
    assert hand_faces(faces, True).tolist() == [[2, 1, 0]]
    path = write_obj(tmp_path / "hand.obj", np.array([[0, 0, 0.5], [0.1, 0, 0.5], [0, 0.1, 0.5]]), faces)
    lines = path.read_text().splitlines()
    assert lines[1] == "v 0.100000 0.000000 0.500000" and lines[3] == "f 1 2 3"
