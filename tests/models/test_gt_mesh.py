"""The shared ground-truth mesh helper: which MANO parameters a batch's GT comes from, metres, shape checks."""
import numpy as np
import pytest
import torch

from models.blocks.gt_mesh import gt_mesh_outputs, gt_pose_and_betas, mano_mesh_m
from models.blocks.mano_head import right_hand_mano_layer


def _batch(packed_pose: float, pair_pose: float):
    packed = torch.cat([torch.full((2, 48), packed_pose), torch.zeros(2, 10)], dim=1)
    return {"mano_param": packed, "mano_pose": torch.full((2, 48), pair_pose), "mano_shape": torch.ones(2, 10)}


def test_packed_parameters_win_unless_the_official_pair_is_preferred():
    batch = _batch(0.1, 0.2)
    pose, betas = gt_pose_and_betas(batch)
    assert torch.all(pose == 0.1) and torch.all(betas == 0.0)
    pose, betas = gt_pose_and_betas(batch, prefer_official_pair=True)
    assert torch.all(pose == 0.2) and torch.all(betas == 1.0)
    only_packed = {"mano_param": batch["mano_param"]}
    assert torch.all(gt_pose_and_betas(only_packed, prefer_official_pair=True)[0] == 0.1)
    only_pair = {"mano_pose": batch["mano_pose"], "mano_shape": batch["mano_shape"]}
    assert torch.all(gt_pose_and_betas(only_pair)[0] == 0.2)
    assert gt_pose_and_betas({"mano_pose": batch["mano_pose"]}) is None


def test_a_paired_mano_param_is_refused_with_its_shape():
    with pytest.raises(ValueError, match=r"batch\['mano_param'\] must be \(B, 58\).*got \(2, 116\)"):
        gt_pose_and_betas({"mano_param": torch.zeros(2, 116)})


def test_the_rest_pose_mesh_is_the_template_in_metres(standin_mano_root, mano_assets):
    assets = mano_assets["right"]
    layer = right_hand_mano_layer(standin_mano_root)
    verts, joints = mano_mesh_m(layer, torch.zeros(1, 48, dtype=torch.float64), torch.zeros(1, 10))
    assert verts.dtype == torch.float32
    np.testing.assert_allclose(verts[0].numpy(), assets.v_template, atol=1e-6)
    np.testing.assert_allclose(joints[0, 0].numpy(), assets.J_regressor[0] @ assets.v_template, atol=1e-6)


def test_outputs_are_empty_without_parameters_and_named_with_them(standin_mano_root):
    layer = right_hand_mano_layer(standin_mano_root)
    assert gt_mesh_outputs(layer, {"img": torch.zeros(1, 3, 8, 8)}) == {}
    out = gt_mesh_outputs(layer, {"mano_param": torch.zeros(3, 58)})
    assert {k: tuple(v.shape) for k, v in out.items()} == {"gt_verts3d_cam": (3, 778, 3),
                                                           "gt_joints3d_cam": (3, 21, 3)}
