"""UniHOPE / HFL-Net forward behaviour: test-time outputs, the grasp-aware fusion rule, mappers skipped at
inference, the paired training forward (docs/official-model.md §1.13, §1.14)."""
import pytest
import torch
from fixtures_models import make_batch

from models.hflnet import HFLNet
from models.unihope import UniHOPENet

TEST_KEYS = ["preds_joints2d", "preds_obj_0", "preds_obj_1", "preds_obj_2", "pred_verts3d_cam",
             "pred_joints3d_cam", "gt_verts3d_cam", "gt_joints3d_cam", "pred_obj_conf", "pred_hand_occ",
             "pred_grasping"]


def _expected_test_shapes(batch_size):
    grid = (batch_size, 32, 32, 21)
    return {"preds_joints2d": (batch_size, 21, 2), "preds_obj_0": grid, "preds_obj_1": grid, "preds_obj_2": grid,
            "pred_verts3d_cam": (batch_size, 778, 3), "pred_joints3d_cam": (batch_size, 21, 3),
            "gt_verts3d_cam": (batch_size, 778, 3), "gt_joints3d_cam": (batch_size, 21, 3),
            "pred_obj_conf": (batch_size, 2), "pred_hand_occ": (batch_size, 2), "pred_grasping": (batch_size,)}


@pytest.fixture(scope="module")
def mano_layer(unihope_dexycb):
    return unihope_dexycb.mano_branch.mano_layer


def test_test_time_outputs_at_128(unihope_dexycb):
    batch = make_batch(2, 128)
    with torch.no_grad():
        out = unihope_dexycb(batch)
    assert list(out) == TEST_KEYS
    assert {k: tuple(v.shape) for k, v in out.items()} == _expected_test_shapes(2)
    assert out["pred_grasping"].dtype == torch.int64
    assert torch.equal(out["pred_grasping"], out["pred_obj_conf"].argmax(dim=1))
    # soft-argmax stays inside the hand box, confidences are probabilities
    assert out["preds_joints2d"].min() >= 0 and out["preds_joints2d"].max() <= 1
    assert out["preds_obj_2"].min() >= 0 and out["preds_obj_2"].max() <= 1
    # GT mesh is the MANO layer on mano_param, in metres
    mano_param = batch["mano_param"]
    verts_mm, joints_mm = unihope_dexycb.mano_branch.mano_layer(mano_param[:, :48], mano_param[:, 48:])
    torch.testing.assert_close(out["gt_verts3d_cam"], verts_mm / 1000)
    torch.testing.assert_close(out["gt_joints3d_cam"], joints_mm / 1000)


def test_unused_official_inputs_are_not_required(unihope_dexycb):
    """root_joint_flip / gt_grasping / aug_rot_mat and mano_param are optional (official bug 5)."""
    batch = make_batch(2, 128, with_mano=False)
    with torch.no_grad():
        out = unihope_dexycb(batch)
    assert "gt_verts3d_cam" not in out and out["pred_verts3d_cam"].shape == (2, 778, 3)


@pytest.mark.parametrize("size", [256, 160])
def test_test_time_outputs_at_other_sizes(mano_layer, size):
    torch.manual_seed(0)
    model = UniHOPENet(mano_layer, input_size=size, obj_conf_layer_legacy=False).eval()
    assert model.obj_conf_layer[2].in_features == 64 * (size // 4) ** 2
    with torch.no_grad():
        out = model(make_batch(2, size))
    assert {k: tuple(v.shape) for k, v in out.items()} == _expected_test_shapes(2)


def test_wrong_input_size_is_reported(unihope_dexycb):
    with pytest.raises(ValueError, match=r"built for 128x128 images .*got \(160, 160\)"):
        unihope_dexycb(make_batch(1, 160))


def test_input_size_must_be_multiple_of_32(mano_layer):
    with pytest.raises(ValueError, match="multiple of 32, got 100"):
        UniHOPENet(mano_layer, input_size=100)


def _force_logits(module, logits):
    """Replace the output of a classifier head by fixed logits (B, 2); returns the hook handle."""
    return module.register_forward_hook(lambda _m, _inp, _out: logits.clone())


def _run_with_forced_switch(model, batch, grasp, occluded):
    """Test forward with the grasp / occlusion decisions forced per sample (bool lists)."""
    def logits(flags):
        flags = torch.tensor(flags)
        return torch.stack([(~flags).float(), flags.float()], dim=1)  # class 1 wins where flag is True
    handles = [_force_logits(model.obj_conf_layer, logits(grasp)),
               _force_logits(model.occ_cls_layer, logits(occluded))]
    try:
        with torch.no_grad():
            return model(batch)
    finally:
        for handle in handles:
            handle.remove()


def test_object_features_fused_only_for_grasping_non_occluded_samples(unihope_dexycb):
    model = unihope_dexycb
    batch = make_batch(4, 128)
    batch["bbox_obj"] = batch["bbox_obj"][[0, 0, 0, 0]]  # same boxes everywhere: only the switch differs
    batch["bbox_hand"] = batch["bbox_hand"][[0, 0, 0, 0]]
    #            sample: 0 grasp+visible, 1 grasp+occluded, 2 free+visible, 3 free+occluded
    mixed = _run_with_forced_switch(model, batch, [True, True, False, False], [False, True, False, True])
    all_fused = _run_with_forced_switch(model, batch, [True] * 4, [False] * 4)
    none_fused = _run_with_forced_switch(model, batch, [False] * 4, [False] * 4)
    assert torch.equal(mixed["pred_grasping"], torch.tensor([1, 1, 0, 0]))
    for key in ("pred_joints3d_cam", "pred_verts3d_cam", "preds_joints2d"):
        torch.testing.assert_close(mixed[key][:1], all_fused[key][:1])
        torch.testing.assert_close(mixed[key][1:], none_fused[key][1:])
        assert (all_fused[key][0] - none_fused[key][0]).abs().max() > 1e-6, key  # fusion does change the hand
    # the object branch never depends on the switch
    torch.testing.assert_close(mixed["preds_obj_0"], none_fused["preds_obj_0"])


def test_hflnet_fuses_unconditionally(unihope_dexycb):
    """HFL-Net built from the same weights equals UniHOPE with every sample forced to 'grasp, visible'."""
    model = unihope_dexycb
    hfl = HFLNet(model.mano_branch.mano_layer).eval()
    hfl.load_state_dict({k: v for k, v in model.state_dict().items() if k in hfl.state_dict()}, strict=True)
    batch = make_batch(2, 128)
    forced = _run_with_forced_switch(model, batch, [True, True], [False, False])
    with torch.no_grad():
        out = hfl(batch)
    assert list(out) == TEST_KEYS[:8]
    for key in out:
        torch.testing.assert_close(out[key], forced[key])


def _count_calls(modules):
    calls = []
    handles = [m.register_forward_hook(lambda *_: calls.append(1)) for m in modules]
    return calls, handles


def test_feature_mappers_are_skipped_at_inference_and_change_nothing(unihope_dexycb):
    model = unihope_dexycb
    mappers = [model.fpn_feature_mapper, model.hand_feature_mapper, model.mano_feature_mapper]
    batch = make_batch(2, 128)
    calls, handles = _count_calls(mappers)
    try:
        with torch.no_grad():
            out = model(batch)
            assert not calls  # skipped at test time
            official = model.net_forward(batch["img"], batch["bbox_hand"], batch["bbox_obj"], batch["mano_param"],
                                         return_feat=True, feature_mapping=True)
            assert len(calls) == 3  # the official test path runs all three mappers
            unmapped = model.net_forward(batch["img"], batch["bbox_hand"], batch["bbox_obj"], return_feat=True)
    finally:
        for handle in handles:
            handle.remove()
    assert torch.equal(out["pred_verts3d_cam"], official["pred_mano"]["verts3d"])
    assert torch.equal(out["pred_joints3d_cam"], official["pred_mano"]["joints3d"])
    assert torch.equal(out["preds_joints2d"], official["preds_joints2d"])
    assert torch.equal(out["preds_obj_2"], official["preds_obj"][2])
    assert torch.equal(out["pred_obj_conf"], official["pred_obj_conf"])
    mapped, raw = official["features"], unmapped["features"]
    torch.testing.assert_close(mapped["mano_encoding"],
                               model.mano_feature_mapper(raw["mano_encoding"][:, None])[:, 0].detach())
    assert not torch.allclose(mapped["mano_encoding"], raw["mano_encoding"])


def test_joint_features_sample_the_maps_at_the_predicted_joints(unihope_dexycb):
    """joint_img_feat = x_hand at the predicted box-normalised joints (bilinear, align_corners=True)."""
    model = unihope_dexycb
    batch = make_batch(1, 128)
    with torch.no_grad():
        res = model.net_forward(batch["img"], batch["bbox_hand"], batch["bbox_obj"], return_feat=True)
    uv = res["preds_joints2d"][0, 5]  # (2,) in [0, 1] of the 32x32 ROI
    x_hand = res["features"]["x_hand"][0]  # (256, 32, 32)
    col, row = (uv * 31).tolist()  # align_corners=True: 0 -> first cell centre, 1 -> last
    c0, r0 = int(col), int(row)
    fc, fr = col - c0, row - r0
    expected = (x_hand[:, r0, c0] * (1 - fc) * (1 - fr) + x_hand[:, r0, c0 + 1] * fc * (1 - fr)
                + x_hand[:, r0 + 1, c0] * (1 - fc) * fr + x_hand[:, r0 + 1, c0 + 1] * fc * fr)
    torch.testing.assert_close(res["features"]["joint_img_feat"][0, :, 5], expected, rtol=1e-4, atol=1e-5)


def test_paired_training_forward_concatenates_parts_and_maps_part_0_only(unihope_dexycb):
    model = unihope_dexycb  # eval mode: deterministic, BN stats untouched; train_forward called directly
    batch = make_batch(2, 128, pairs=True)
    with torch.no_grad():
        out = model.train_forward(batch)
        parts = [model.net_forward(batch["img"][:, 3 * i:3 * i + 3], batch["bbox_hand"][:, 4 * i:4 * i + 4],
                                   batch["bbox_obj"][:, 4 * i:4 * i + 4], return_feat=True) for i in (0, 1)]
    assert out["preds_joints2d"][0].shape == (2, 42, 2)
    assert [t.shape for t in out["preds_obj"]] == [(2, 64, 32, 21)] * 3
    shapes = {"pred_obj_conf": (2, 4), "pred_hand_occ": (2, 4), "pred_verts3d_cam": (2, 1556, 3),
              "pred_joints3d_cam": (2, 42, 3), "gt_verts3d_cam": (2, 1556, 3), "c3_h": (2, 1024, 16, 16),
              "x_hand": (2, 512, 32, 32), "mano_encoding": (2, 2048), "joint_base_feat": (2, 1024, 21),
              "joint_img_feat": (2, 512, 21), "mano_features": (2, 1024), "P2_o": (2, 512, 32, 32),
              "joints_img": (2, 42, 2)}
    assert {k: tuple(out[k].shape) for k in shapes} == shapes
    assert out["pred_mano_results"]["mano_pose"].shape == (2, 32, 3, 3)
    raw0, raw1 = parts[0]["features"], parts[1]["features"]
    torch.testing.assert_close(out["mano_encoding"][:, 1024:], raw1["mano_encoding"])  # part 1 unmapped
    torch.testing.assert_close(out["mano_encoding"][:, :1024],
                               model.mano_feature_mapper(raw0["mano_encoding"][:, None])[:, 0])
    torch.testing.assert_close(out["joint_base_feat"][:, :512], model.fpn_feature_mapper(raw0["joint_base_feat"]))
    torch.testing.assert_close(out["joint_base_feat"][:, 512:], raw1["joint_base_feat"])
    torch.testing.assert_close(out["preds_obj"][0][:, 32:], parts[1]["preds_obj"][0])
    torch.testing.assert_close(out["pred_verts3d_cam"][:, :778], parts[0]["pred_mano"]["verts3d"])


def test_training_forward_backward_with_image_pairs(mano_layer):
    torch.manual_seed(0)
    model = UniHOPENet(mano_layer, input_size=64, obj_conf_layer_legacy=False).train()
    out = model(make_batch(2, 64, pairs=True))
    loss = (out["pred_verts3d_cam"].square().mean() + out["preds_joints2d"][0].mean()
            + out["preds_obj"][2].mean() + out["pred_obj_conf"].logsumexp(1).mean()
            + out["pred_hand_occ"].logsumexp(1).mean()
            + (out["mano_encoding"][:, :1024] - out["mano_encoding"][:, 1024:].detach()).abs().mean())
    loss.backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    for name in ("base_net.layer0_h.0.weight", "hand_head.betas", "obj_head.out_conv.weight",
                 "obj_conf_layer.2.weight", "occ_cls_layer.2.weight", "mano_feature_mapper.w_vs.weight",
                 "transformer_obj.layers.0.encode_key.weight", "mano_branch.pose_reg.weight"):
        assert grads[name] is not None and grads[name].abs().sum() > 0, name
    assert all(torch.isfinite(g).all() for g in grads.values() if g is not None)


def test_three_channel_training_forward_exports_no_features(unihope_dexycb):
    with torch.no_grad():
        out = unihope_dexycb.train_forward(make_batch(2, 128))
    assert set(out) == {"preds_joints2d", "pred_mano_results", "gt_mano_results", "preds_obj", "pred_obj_conf",
                        "pred_hand_occ", "pred_verts3d_cam", "pred_joints3d_cam", "gt_verts3d_cam",
                        "gt_joints3d_cam"}
    assert out["pred_obj_conf"].shape == (2, 2) and out["preds_joints2d"][0].shape == (2, 21, 2)


def test_wrong_channel_counts_are_rejected(unihope_dexycb):
    batch = make_batch(1, 128)
    batch["img"] = torch.zeros(1, 5, 128, 128)
    with pytest.raises(ValueError, match="3 or 6 channels .*got 5"):
        unihope_dexycb.train_forward(batch)
    with pytest.raises(ValueError, match="test-time batch\\['img'\\] must have 3 channels .*got 6"):
        unihope_dexycb(make_batch(1, 128, pairs=True))


def test_unihope_on_a_resnet18_trunk_trains_with_pairs(standin_mano_root):
    from fixtures_models import model_config

    from models import build_model

    torch.manual_seed(0)
    model = build_model(model_config(standin_mano_root, "unihope_net", input_size=64, obj_conf_layer_legacy=False,
                                     backbone="resnet18", roi_res=16)).train()
    assert model.fpn_feature_mapper[0].in_channels == 128  # ResNet-18 stage-2 width
    out = model(make_batch(2, 64, pairs=True))
    assert out["joint_base_feat"].shape == (2, 256, 21) and out["pred_verts3d_cam"].shape == (2, 1556, 3)
    (out["pred_verts3d_cam"].square().mean() + out["joint_base_feat"].square().mean()).backward()
    assert model.base_net.layer2_h[0][0].conv1.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="<test config unihope_net>: model.backbone must be one of"):
        build_model(model_config(standin_mano_root, "unihope_net", backbone="resnet101"))
    with pytest.raises(ValueError, match="<test config unihope_net>: model.roi_res must be a positive multiple of 16"):
        build_model(model_config(standin_mano_root, "unihope_net", roi_res=24))
