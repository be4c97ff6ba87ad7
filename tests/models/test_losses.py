"""Loss terms against hand-computed values (official-model.md §4) and the official-bug fixes."""
import math

import pytest
import torch

from models.losses import (HandObjectLoss, LossWeights, build_loss, classification_loss, distillation_loss,
                           joint2d_loss, mano_loss, object_voting_loss)
from utils.config import config_from_dict

W = LossWeights()


def _mano(b, p, verts, joints, shape):
    eye = torch.eye(3).expand(b, 16 * p, 3, 3).clone()
    return {"verts3d": torch.full((b, 778 * p, 3), verts), "joints3d": torch.full((b, 21 * p, 3), joints),
            "mano_pose": eye, "mano_shape": torch.full((b, 10 * p), shape)}


def test_mano_loss_hand_computed():
    pred, gt = _mano(1, 1, 0.0, 0.0, 0.0), _mano(1, 1, 1.0, 0.5, 2.0)
    # 1e4 * 1 + 1e4 * 0.25 + 10 * 0 + 0.1 * 4
    assert mano_loss(pred, gt, [0], W).item() == pytest.approx(12500.4)


def test_mano_loss_averages_parts():
    pred, gt = _mano(1, 2, 0.0, 0.0, 0.0), _mano(1, 2, 0.0, 0.0, 0.0)
    gt["verts3d"][:, :778] = 1.0  # part 0 error 1, part 1 error 0
    assert mano_loss(pred, gt, [0, 1], W).item() == pytest.approx(1e4 / 2)
    assert mano_loss(pred, gt, [1], W).item() == 0.0


def test_joint2d_loss_hand_computed():
    pred, gt = torch.full((2, 21, 2), 0.5), torch.full((2, 21, 2), 0.25)
    assert joint2d_loss(pred, gt, [0], W).item() == pytest.approx(100 * 0.0625)


def _voting(px, py, conf, b=1):
    return [torch.full((b, 32, 32, 21), v) for v in (px, py, conf)]


def test_object_loss_perfect_votes_only_confidence_term():
    preds = _voting(0.5, 0.5, 0.75)
    loss = object_voting_loss(preds, torch.full((1, 21, 2), 0.5), torch.ones(1, 32, 32), torch.tensor([True]), W)
    assert loss.item() == pytest.approx(100 * 0.25)  # reg 0; target exp(0) = 1; |0.75 - 1|


def test_object_loss_with_half_mask_hand_computed():
    preds = _voting(0.7, 0.7, 0.0)
    mask = torch.zeros(1, 32, 32)
    mask[:, :16] = 1
    loss = object_voting_loss(preds, torch.full((1, 21, 2), 0.5), mask, torch.tensor([True]), W)
    reg = 0.1 + 0.1                                   # |0.2| on half of the cells, for x and for y
    conf = 0.5 * math.exp(-math.sqrt(0.08))           # target on masked cells, prediction 0
    assert loss.item() == pytest.approx(500 * reg + 100 * conf, rel=1e-5)


def test_object_loss_without_selected_samples_is_float_zero():
    preds = [p.requires_grad_() for p in _voting(0.3, 0.3, 0.3, b=2)]
    loss = object_voting_loss(preds, torch.zeros(2, 21, 2), torch.ones(2, 32, 32), torch.tensor([False, False]), W)
    assert loss.dtype == torch.float32 and loss.item() == 0.0
    loss.backward()  # still part of the graph


def test_cross_entropy_hand_computed():
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0]])
    labels = torch.tensor([[True, False], [False, False]])  # part 0 labels: 1, 0
    expected = 10 * (-math.log(0.75) + math.log(2.0)) / 2
    assert classification_loss(logits, labels, 10.0).item() == pytest.approx(expected)


def test_distillation_gradient_reaches_only_the_original_half():
    features = torch.tensor([[1.0, 1.0, 0.0, 0.0], [5.0, 5.0, 0.0, 0.0]], requires_grad=True)
    mask = torch.tensor([True, False])
    loss = distillation_loss(features, mask, 0.5, "l1_loss")
    assert loss.item() == pytest.approx(0.5)
    loss.backward()
    assert torch.allclose(features.grad[0, :2], torch.full((2,), 0.5 / 2))
    assert torch.all(features.grad[0, 2:] == 0) and torch.all(features.grad[1] == 0)


def _paired_batch_and_outputs(grasp, filtered):
    b = len(grasp)
    torch.manual_seed(0)
    pred = {k: v + 0.1 * torch.randn_like(v) for k, v in _mano(b, 2, 0.0, 0.0, 0.0).items()}
    outputs = {
        "pred_mano_results": pred, "gt_mano_results": _mano(b, 2, 0.0, 0.0, 0.0),
        "preds_joints2d": [torch.rand(b, 42, 2)], "preds_obj": _voting(0.5, 0.5, 0.5, b=b),
        "pred_obj_conf": torch.randn(b, 4), "pred_hand_occ": torch.randn(b, 4),
        "c3_h": torch.randn(b, 8, 4, 4, requires_grad=True), "x_hand": torch.randn(b, 6, 4, 4),
        "mano_encoding": torch.randn(b, 16),
    }
    outputs["preds_obj"] = [torch.cat([p, p], 1) for p in outputs["preds_obj"]]
    batch = {"gt_grasping": torch.tensor([[g, False] for g in grasp]), "gt_occ_cls": torch.zeros(b, 2, dtype=bool),
             "is_filtered": torch.tensor(filtered), "joints_img": torch.rand(b, 42, 2),
             "obj_p2d": torch.rand(b, 42, 2), "obj_mask": torch.ones(b, 64, 32)}
    return batch, outputs


def test_unihope_loss_terms_and_total():
    cfg = config_from_dict({"loss": {"name": "hflnet_grasping_objconf",
                                     "weight": {"c3_h": 0.1, "x_hand": 0.1, "mano_encoding": 0.5}}})
    loss_fn = build_loss(cfg)
    batch, outputs = _paired_batch_and_outputs([True, False], [False, True])
    losses = loss_fn(batch, outputs)
    assert set(losses) == {"mano_total_loss", "joint2d_loss", "obj_total_loss", "out_obj_conf_loss",
                           "hand_occ_cls_loss", "c3_h", "x_hand", "mano_encoding", "total"}
    expected_c3 = 0.1 * (outputs["c3_h"][0, :4] - outputs["c3_h"][0, 4:]).abs().mean()
    assert losses["c3_h"].item() == pytest.approx(expected_c3.item())
    assert losses["total"].item() == pytest.approx(sum(v.item() for k, v in losses.items() if k != "total"))


def test_batch_without_grasping_gives_finite_float_losses():
    loss_fn = HandObjectLoss(LossWeights.from_config_weights({"c3_h": 1.0}))
    batch, outputs = _paired_batch_and_outputs([False, False], [True, True])
    losses = loss_fn(batch, outputs)
    assert losses["obj_total_loss"].item() == 0.0 and losses["c3_h"].item() == 0.0
    assert torch.isfinite(losses["total"]) and losses["total"].dtype == torch.float32
    losses["total"].backward()


def test_term_weight_overrides_are_not_distillation_features():
    weights = LossWeights.from_config_weights({"c3_h": 0.1, "mano_lambda_verts3d": 5.0, "lambda_objects": 50})
    assert weights.mano_lambda_verts3d == 5.0 and weights.lambda_objects == 50.0
    assert weights.distillation == {"c3_h": 0.1}


def test_unknown_distillation_feature_and_loss_name_errors():
    loss_fn = HandObjectLoss(LossWeights.from_config_weights({"c4_h": 1.0}))
    batch, outputs = _paired_batch_and_outputs([True], [False])
    with pytest.raises(KeyError, match="c4_h"):
        loss_fn(batch, outputs)
    with pytest.raises(KeyError, match="unknown loss.name 'hflnet_typo'.*known: .*'hflnet'"):
        build_loss(config_from_dict({"loss": {"name": "hflnet_typo"}}))
    placeholder = build_loss(config_from_dict({"loss": {"name": "placeholder"}}, source="ab/cfg.json"))
    with pytest.raises(RuntimeError, match="ab/cfg.json: loss.name 'placeholder' marks an evaluation-only"):
        placeholder(batch, outputs)


def test_hflnet_loss_votes_on_every_sample_and_has_no_switch_terms():
    cfg = config_from_dict({"loss": {"name": "hflnet"}, "train": {"train_part": [0]}})
    batch, outputs = _paired_batch_and_outputs([False, False], [True, True])
    losses = build_loss(cfg)(batch, outputs)
    assert set(losses) == {"mano_total_loss", "joint2d_loss", "obj_total_loss", "total"}
    assert losses["obj_total_loss"].item() > 0


def test_object_loss_on_a_coarser_voting_grid_resamples_the_mask():
    preds = [torch.full((1, 16, 16, 21), v) for v in (0.7, 0.7, 0.0)]
    mask = torch.zeros(1, 32, 32)
    mask[:, :16] = 1  # top half, as in the 32 x 32 case above: same expected value on the 16 x 16 grid
    loss = object_voting_loss(preds, torch.full((1, 21, 2), 0.5), mask, torch.tensor([True]), W)
    assert loss.item() == pytest.approx(500 * 0.2 + 100 * 0.5 * math.exp(-math.sqrt(0.08)), rel=1e-5)
