"""ONNX export of the A+B model: the route-free form equals the routed forward, and ONNX Runtime agrees with it;
its grasp classifier alone is refused by predict.py.

(UniHOPE's export and its parity are covered through predict.py in tests/commands/test_predict.py.)
"""
import numpy as np
import pytest
import torch

from datasets.registry import sample_settings
from engine.export_onnx import RouteFreeTwoInOne, example_inputs, export_model
from engine.predict.network import OnnxPredictor, TorchPredictor
from models import build_model
from models.two_in_one import MESH_KEYS
from utils.config import config_from_dict

SMALL = {"backbone": "resnet18", "roi_res": 16}


@pytest.fixture(scope="module")
def a_plus_b(standin_mano_root):
    """A small A+B (ResNet-18 classifier and HFL-Nets, 64 px) whose classifier routes the two samples of
    :func:`mixed_inputs` to different sub-models, with its settings and those inputs."""
    cfg = config_from_dict({
        "base": {"mano_root": str(standin_mano_root)},
        "data": {"input_img_shape": [64, 64], "input_img_shape_cls": [64, 64]},
        "model": {"name": "twoinone_baseline_classifier", "cls_model": {"name": "classifier", "model": SMALL},
                  "h_model": {"name": "hflnet", "model": SMALL}, "ho_model": {"name": "hflnet", "model": SMALL}}})
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    settings = sample_settings(cfg, "test", "dexycb")
    inputs = example_inputs(settings, batch_size=2)
    rng = np.random.default_rng(0)
    for key in ("img", "img_cls"):
        inputs[key] = rng.random(inputs[key].shape, dtype=np.float32)
    head = model.cls_model.obj_conf_layer[-1]
    with torch.no_grad():
        logits = model.cls_model({key: torch.from_numpy(v) for key, v in inputs.items()})["pred_obj_conf"]
        margin = (logits[:, 1] - logits[:, 0]).tolist()
        assert margin[0] != margin[1]
        head.bias[1] -= (margin[0] + margin[1]) / 2  # one sample above the decision line, one below
    return model, settings, inputs


def test_route_free_form_equals_the_routed_forward(a_plus_b):
    model, _, inputs = a_plus_b
    batch = {key: torch.from_numpy(v) for key, v in inputs.items()}
    with torch.no_grad():
        routed, route_free = model(batch), RouteFreeTwoInOne(model)(batch)
    assert sorted(routed["pred_grasping"].tolist()) == [False, True]  # both sub-models are used
    assert torch.equal(routed["pred_grasping"], route_free["pred_grasping"])
    for key in MESH_KEYS:
        assert torch.allclose(routed[key], route_free[key], atol=1e-6), key


def test_a_plus_b_onnx_matches_pytorch(a_plus_b, tmp_path):
    model, settings, inputs = a_plus_b
    names = export_model(model, settings, tmp_path / "ab.onnx")
    assert names == ("pred_joints3d_cam", "pred_verts3d_cam", "pred_grasping")
    expected = TorchPredictor(model, "cpu")(inputs)
    got = OnnxPredictor(tmp_path / "ab.onnx")(inputs)
    assert got["pred_grasping"].tolist() == expected["pred_grasping"].tolist()
    for key in MESH_KEYS:
        assert np.abs(got[key] - expected[key]).max() <= 1e-5, key


def test_a_grasp_classifier_alone_is_refused_by_predict(a_plus_b):
    from engine.predict import PredictInputError
    from engine.predict.hand_boxes import full_image_box
    from engine.predict.pipeline import HandPipeline

    model, settings, _ = a_plus_b
    pipeline = HandPipeline(TorchPredictor(model.cls_model, "cpu"), settings, box_normalised=True)
    with pytest.raises(PredictInputError, match="predicts no hand mesh"):
        pipeline(np.zeros((64, 64, 3), np.uint8), [full_image_box(64, 64)], np.eye(3))
