"""Registry contract (every registered model builds from a config, declares its outputs, trains), the grasp
classifier, and A+B routing (docs/official-model.md §2.1-§2.3)."""
import json
from pathlib import Path

import pytest
import torch
from fixtures_models import make_batch, model_config
from torch import nn

from models import MODELS, build_model
from models.registry import get_model_builder, register_model
from models.two_in_one import TwoInOneBaselineClassifier, select_samples, sub_model_config

SIZE = 64  # contract runs use the smallest valid input (multiple of 32)
B = 2
GRID = (B, 32, 32, 21)
HAND_OUTPUTS = {"preds_joints2d": (B, 21, 2), "preds_obj_0": GRID, "preds_obj_1": GRID, "preds_obj_2": GRID,
                "pred_verts3d_cam": (B, 778, 3), "pred_joints3d_cam": (B, 21, 3),
                "gt_verts3d_cam": (B, 778, 3), "gt_joints3d_cam": (B, 21, 3)}
A_PLUS_B = {"cls_model": {"name": "classifier"}, "h_model": {"name": "hflnet", "model": {"pretrain": False}},
            "ho_model": {"name": "hflnet"}}

MANO_BASELINE_OUTPUTS = {"pred_joints3d_cam": (B, 21, 3), "pred_verts3d_cam": (B, 778, 3),
                         "pred_mano_pose": (B, 16, 3, 3), "pred_mano_pose_aa": (B, 48), "pred_mano_shape": (B, 10),
                         "pred_joints_img": (B, 21, 2), "pred_joints3d_w_gr": (B, 21, 3),
                         "pred_verts3d_w_gr": (B, 778, 3), "gt_joints3d_cam": (B, 21, 3),
                         "gt_verts3d_cam": (B, 778, 3), "gt_mano_pose": (B, 16, 3, 3), "gt_mano_shape": (B, 10),
                         "gt_joints3d_w_gr": (B, 21, 3), "gt_verts3d_w_gr": (B, 778, 3), "joints_img": (B, 21, 2)}

MESH_DECODER_OUTPUTS = {"pred_verts3d_cam": (B, 778, 3), "pred_joints3d_cam": (B, 21, 3),
                        "pred_verts3d_w_gr": (B, 778, 3), "pred_joints3d_w_gr": (B, 21, 3),
                        "pred_joints_img": (B, 21, 2), "gt_verts3d_cam": (B, 778, 3), "gt_joints3d_cam": (B, 21, 3),
                        "joints_img": (B, 21, 2)}
SIMPLE_HAND_MODEL = {k: v for k, v in json.loads(
    (Path(__file__).resolve().parents[2] / "experiment/simplehand.dexycb_s0.h-ho_train/cfg.json").read_text())["model"].items()
    if k != "name"}

# name -> (extra model keys, extra data keys, declared test-time outputs {key: shape}); a data key
# ``input_img_shape`` sets the input size of the run (models with a fixed size)
CONTRACT = {
    "hand_occ_net": ({}, {"input_img_shape": [256, 256]}, MANO_BASELINE_OUTPUTS),
    "semi_hand": ({}, {}, MANO_BASELINE_OUTPUTS),
    "semi_hand_object": ({}, {}, {**MANO_BASELINE_OUTPUTS, "preds_joints2d": (B, 21, 2), "preds_obj_0": GRID,
                                  "preds_obj_1": GRID, "preds_obj_2": GRID}),
    "unihope_net": ({}, {}, {**HAND_OUTPUTS, "pred_obj_conf": (B, 2), "pred_hand_occ": (B, 2),
                             "pred_grasping": (B,)}),
    "hflnet": ({}, {}, HAND_OUTPUTS),
    "simple_hand": (SIMPLE_HAND_MODEL, {"input_img_shape": [224, 224]},
                    {"uv": (B, 42), "pred_joints3d_cam": (B, 21, 3), "pred_verts3d_cam": (B, 778, 3),
                     "gt_verts3d_cam": (B, 778, 3), "gt_joints3d_cam": (B, 21, 3)}),
    "mobrecon": ({}, {"input_img_shape": [128, 128]}, MESH_DECODER_OUTPUTS),
    "h2onet": ({}, {"input_img_shape": [128, 128]},
               {**MESH_DECODER_OUTPUTS, "pred_verts3d_wo_gr": (B, 778, 3), "pred_joints3d_wo_gr": (B, 21, 3),
                "pred_glob_rot": (B, 6), "pred_glob_rot_mat": (B, 3, 3), "gt_verts3d_w_gr": (B, 778, 3),
                "gt_joints3d_w_gr": (B, 21, 3), "gt_glob_rot": (B, 3), "gt_glob_rot_mat": (B, 3, 3),
                "gt_verts3d_wo_gr": (B, 778, 3), "gt_joints3d_wo_gr": (B, 21, 3)}),
    "mean_pose": ({}, {}, {k: HAND_OUTPUTS[k] for k in ("pred_verts3d_cam", "pred_joints3d_cam", "gt_verts3d_cam",
                                                       "gt_joints3d_cam")}),
    "classifier": ({}, {}, {"pred_obj_conf": (B, 2), "pred_grasping": (B,)}),
    "twoinone_baseline_classifier": (A_PLUS_B, {"input_img_shape_cls": [SIZE, SIZE]},
                                     {"pred_verts3d_cam": (B, 778, 3), "pred_joints3d_cam": (B, 21, 3),
                                      "pred_grasping": (B,), "gt_verts3d_cam": (B, 778, 3),
                                      "gt_joints3d_cam": (B, 21, 3), "preds_obj_0": GRID,
                                      "preds_obj_1": GRID, "preds_obj_2": GRID}),
}


def _config(mano_root, name, model_keys=None, data_keys=None, input_size=SIZE):
    from utils.config import config_from_dict

    cfg = model_config(mano_root, name, input_size=input_size, **(model_keys or {}))
    raw = cfg.to_dict()
    raw["data"].update(data_keys or {})
    return config_from_dict(raw, source=f"<contract {name}>")


def _float_tensors(value):
    if isinstance(value, torch.Tensor):
        return [value] if value.is_floating_point() else []
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _float_tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _float_tensors(v)]
    return []


def test_every_registered_model_has_a_contract_case():
    assert set(MODELS) == set(CONTRACT)


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_registered_model_contract(name, standin_mano_root):
    model_keys, data_keys, declared = CONTRACT[name]
    torch.manual_seed(0)
    model = build_model(_config(standin_mano_root, name, model_keys, data_keys))
    batch = make_batch(B, data_keys.get("input_img_shape", [SIZE])[0])
    with torch.no_grad():
        out = model.eval()(batch)
    assert {k: tuple(v.shape) for k, v in out.items()} == declared
    if not any(p.requires_grad for p in model.parameters()):
        return  # nothing to train (the mean_pose baseline)
    model.train()
    loss = sum(t.float().mean() for t in _float_tensors(model(batch)))
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def test_unknown_model_name_lists_known_models():
    with pytest.raises(KeyError, match=r"unknown model 'unihope'.*known models: \['classifier', .*'hflnet'"):
        get_model_builder("unihope")


def test_duplicate_registration_is_refused():
    with pytest.raises(KeyError, match="'hflnet' is already registered"):
        register_model("hflnet")(lambda cfg: None)


def test_unknown_sub_model_raises_the_registry_error(standin_mano_root):
    cfg = _config(standin_mano_root, "twoinone_baseline_classifier",
                  {**A_PLUS_B, "h_model": {"name": "kypt_transformer", "model": {"pretrain": False}}})
    with pytest.raises(KeyError, match=r"unknown model 'kypt_transformer'.*known models"):
        build_model(cfg)


def test_sub_model_configs(standin_mano_root):
    cfg = _config(standin_mano_root, "twoinone_baseline_classifier", A_PLUS_B,
                  {"input_img_shape_h": [128, 128]}, input_size=256)
    cls_cfg, h_cfg, ho_cfg = (sub_model_config(cfg, role) for role in ("cls_model", "h_model", "ho_model"))
    assert cls_cfg.model.name == "classifier" and cls_cfg.data.input_img_shape == [128, 128]  # official 128
    assert h_cfg.model.name == "hflnet" and h_cfg.data.input_img_shape == [128, 128]
    assert ho_cfg.data.input_img_shape == [256, 256] and ho_cfg.base.mano_root == str(standin_mano_root)
    broken = _config(standin_mano_root, "twoinone_baseline_classifier", {**A_PLUS_B, "ho_model": {"model": {}}})
    with pytest.raises(ValueError, match=r"model.ho_model must be an object with a 'name'"):
        sub_model_config(broken, "ho_model")


def test_classifier_reads_img_cls_first_and_any_size(standin_mano_root):
    torch.manual_seed(0)
    model = build_model(_config(standin_mano_root, "classifier", input_size=96)).eval()
    assert model.obj_conf_layer[2].in_features == 64 * 24 * 24
    img = torch.rand(2, 3, 96, 96)
    with torch.no_grad():
        direct = model.obj_conf_layer(model.base_net(img)[1])
        via_cls = model({"img": torch.zeros(2, 3, 128, 128), "img_cls": img})
        via_img = model({"img": img})
    torch.testing.assert_close(via_cls["pred_obj_conf"], direct)
    torch.testing.assert_close(via_img["pred_obj_conf"], direct)
    with pytest.raises(ValueError, match=r"built for 96x96 images, got \(128, 128\) \(batch key img\)"):
        model({"img": torch.zeros(1, 3, 128, 128)})


class _FlagClassifier(nn.Module):
    """Test double: logits from ``batch['flags']`` (1 = grasping); records the image it was given."""

    def forward(self, batch):
        self.seen_img = batch.get("img_cls", batch["img"])
        flags = batch["flags"].float()
        return {"pred_obj_conf": torch.stack([1 - flags, flags], dim=1)}


class _TaggingModel(nn.Module):
    """Test double: each output row encodes its input image's first pixel plus a model tag."""

    roi_res, num_object_keypoints = 4, 3

    def __init__(self, tag, with_gt=True):
        super().__init__()
        self.tag, self.with_gt, self.calls = tag, with_gt, []

    def forward(self, batch):
        self.calls.append(batch)
        value = batch["img"][:, 0, 0, 0] + self.tag  # (n,)
        out = {"pred_verts3d_cam": value[:, None, None].expand(-1, 778, 3),
               "pred_joints3d_cam": value[:, None, None].expand(-1, 21, 3),
               "preds_obj_0": value[:, None, None, None].expand(-1, 4, 4, 3),
               "preds_obj_1": -value[:, None, None, None].expand(-1, 4, 4, 3),
               "preds_obj_2": torch.ones(len(value), 4, 4, 3)}
        if self.with_gt:
            out["gt_verts3d_cam"] = out["pred_verts3d_cam"] * 2
            out["gt_joints3d_cam"] = out["pred_joints3d_cam"] * 2
        return out


def _routing_batch(flags):
    n = len(flags)
    pixel = torch.arange(n, dtype=torch.float32)
    img = pixel[:, None, None, None].expand(n, 3, 8, 8).clone()
    return {"img": img, "img_ho": img + 0.5, "img_h": img + 0.25, "flags": torch.tensor(flags),
            "bbox_hand": torch.rand(n, 4), "names": [f"s{i}" for i in range(n)], "split": "test"}


def test_two_in_one_routes_each_sample_and_keeps_input_order():
    h_model, ho_model = _TaggingModel(tag=100.0), _TaggingModel(tag=1000.0)
    model = TwoInOneBaselineClassifier(_FlagClassifier(), h_model, ho_model).eval()
    flags = [1, 0, 0, 1, 0]
    out = model(_routing_batch(flags))
    expected = torch.tensor([1000.5, 100.25 + 1, 100.25 + 2, 1000.5 + 3, 100.25 + 4])
    torch.testing.assert_close(out["pred_verts3d_cam"][:, 0, 0], expected)
    torch.testing.assert_close(out["pred_joints3d_cam"][:, 20, 2], expected)
    torch.testing.assert_close(out["gt_verts3d_cam"][:, 5, 1], 2 * expected)
    assert out["pred_grasping"].tolist() == [True, False, False, True, False]
    torch.testing.assert_close(out["preds_obj_0"][:, 1, 2, 0], torch.tensor([1000.5, 0, 0, 1003.5, 0]))
    torch.testing.assert_close(out["preds_obj_2"][:, 0, 0, 0], torch.tensor([1.0, 0, 0, 1, 0]))
    (ho_batch,), (h_batch,) = ho_model.calls, h_model.calls
    assert ho_batch["names"] == ["s0", "s3"] and h_batch["names"] == ["s1", "s2", "s4"]
    assert h_batch["split"] == "test" and h_batch["bbox_hand"].shape == (3, 4)


def test_two_in_one_without_grasping_samples_and_without_gt():
    model = TwoInOneBaselineClassifier(_FlagClassifier(), _TaggingModel(100.0, with_gt=False),
                                       _TaggingModel(1000.0)).eval()
    out = model(_routing_batch([0, 0]))
    assert "gt_verts3d_cam" not in out  # the hand-only model gave none
    assert out["preds_obj_1"].shape == (2, 4, 4, 3) and out["preds_obj_1"].abs().max() == 0
    model.train()
    assert "preds_obj_0" not in model(_routing_batch([1, 0]))  # object outputs only in eval mode


def test_two_in_one_classifier_sees_img_cls():
    cls = _FlagClassifier()
    model = TwoInOneBaselineClassifier(cls, _TaggingModel(0.0), _TaggingModel(1.0)).eval()
    batch = _routing_batch([1, 0])
    batch["img_cls"] = torch.full((2, 3, 4, 4), 7.0)
    model(batch)
    assert cls.seen_img.shape == (2, 3, 4, 4)


def test_select_samples_indexes_batch_sized_entries_only():
    batch = {"img": torch.arange(3.0)[:, None], "img_h": torch.arange(3.0)[:, None] + 10, "names": ["a", "b", "c"],
             "scale": torch.tensor(2.0), "pair": (1, 2)}
    sub = select_samples(batch, torch.tensor([False, True, True]), "img_h")
    assert sub["img"].tolist() == [[11.0], [12.0]] and sub["names"] == ["b", "c"]
    assert sub["scale"].item() == 2.0 and sub["pair"] == (1, 2)


def test_non_square_input_shape_is_reported(standin_mano_root):
    from utils.config import config_from_dict

    raw = _config(standin_mano_root, "classifier").to_dict()
    raw["data"]["input_img_shape"] = [128, 96]
    with pytest.raises(ValueError, match=r"<bad> \(classifier\): data.input_img_shape must be square .*\[128, 96\]"):
        build_model(config_from_dict(raw, source="<bad> (classifier)"))
