"""Rotation conversions, DexYCB pose_m -> flat right-hand pose, joint order maps, mirroring."""
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from models.mano import ManoLayer
from utils.hand_conventions import (HAND_JOINT_NAMES, HO3D_JOINT_NAMES, HO3D_TO_MANOPTH_ORDER, MANO_JOINT_NAMES,
                                    MANO_TO_MANOPTH_ORDER, MANOPTH_TO_HO3D_ORDER, OPENGL_TO_OPENCV, reorder_joints)
from utils.mano_pose import dexycb_pose_to_right_flat, mirror_pose, rotate_global_orient
from utils.rotations import (axis_angle_to_matrix, matrix_to_axis_angle, matrix_to_quaternion, matrix_to_rot6d,
                             project_to_rotation, robust_rot6d_to_matrix, rot6d_to_axis_angle, rot6d_to_matrix)


def _random_rotvecs(n, seed=0):
    rng = np.random.default_rng(seed)
    axes = rng.normal(size=(n, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    return axes * rng.uniform(0.0, np.pi - 1e-3, size=(n, 1))


def test_axis_angle_to_matrix_matches_scipy():
    rotvecs = _random_rotvecs(200)
    assert np.allclose(axis_angle_to_matrix(rotvecs), Rotation.from_rotvec(rotvecs).as_matrix(), atol=1e-7)
    assert np.allclose(axis_angle_to_matrix(np.zeros(3)), np.eye(3))
    quarter = axis_angle_to_matrix(np.array([0.0, 0.0, np.pi / 2]))  # x -> y
    assert np.allclose(quarter @ [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], atol=1e-7)


def test_matrix_to_axis_angle_round_trips_in_all_four_quaternion_branches():
    special = np.array([[np.pi, 0, 0], [0, np.pi, 0], [0, 0, np.pi], [0, 0, 0], [1e-9, 0, 0],
                        [0, 0.3, 0], [0, 3.0, 0.1], [3.0, 0.1, 0.0], [0.1, 0.2, 3.1]])
    rotvecs = np.concatenate([_random_rotvecs(500, seed=1), special])
    mats = Rotation.from_rotvec(rotvecs).as_matrix()
    back = matrix_to_axis_angle(mats)
    assert np.allclose(Rotation.from_rotvec(back).as_matrix(), mats, atol=1e-6)
    m = np.swapaxes(mats, -1, -2)  # which formula the kornia algorithm picks (masks on the transposed matrix)
    branch = np.where(m[:, 2, 2] < 1e-6, np.where(m[:, 0, 0] > m[:, 1, 1], 0, 1),
                      np.where(m[:, 0, 0] < -m[:, 1, 1], 2, 3))
    assert set(branch) == {0, 1, 2, 3}
    assert np.array_equal(matrix_to_axis_angle(np.eye(3)), np.zeros(3))  # no NaN at the identity


def test_kornia_quaternion_matches_scipy():
    mats = torch.tensor(Rotation.from_rotvec(_random_rotvecs(50, seed=2)).as_matrix())
    quat = matrix_to_quaternion(mats)
    assert torch.allclose(quat.norm(dim=-1), torch.ones(50, dtype=torch.float64))
    w_positive = torch.where(quat[:, :1] < 0, -quat, quat)
    expected = Rotation.from_matrix(mats.numpy()).as_quat()[:, [3, 0, 1, 2]]  # scipy is (x, y, z, w)
    expected = np.where(expected[:, :1] < 0, -expected, expected)
    assert np.allclose(w_positive.numpy(), expected, atol=1e-9)


def test_non_finite_matrix_stays_non_finite_instead_of_becoming_the_identity():
    bad = torch.eye(3).repeat(3, 1, 1)
    bad[1, 0, 0], bad[2, 1, 2] = float("nan"), float("inf")
    out = matrix_to_axis_angle(bad)
    assert torch.equal(out[0], torch.zeros(3))  # the identity is a zero rotation
    assert torch.isnan(out[1:]).all()  # bad input is not turned into a zero rotation


def test_rot6d_gram_schmidt_columns_and_round_trip():
    assert np.allclose(rot6d_to_matrix(np.array([2.0, 0, 0, 1.0, 1.0, 0])), np.eye(3))
    mats = Rotation.from_rotvec(_random_rotvecs(100, seed=3)).as_matrix()
    assert np.allclose(rot6d_to_matrix(matrix_to_rot6d(mats)), mats, atol=1e-12)
    raw = np.random.default_rng(4).normal(size=(100, 6))
    r = rot6d_to_matrix(raw)
    assert np.allclose(r @ np.swapaxes(r, 1, 2), np.eye(3), atol=1e-12) and np.allclose(np.linalg.det(r), 1.0)
    assert np.allclose(r[:, :, 0], raw[:, :3] / np.linalg.norm(raw[:, :3], axis=1, keepdims=True))
    robust = robust_rot6d_to_matrix(raw)
    assert np.allclose(np.linalg.det(robust), 1.0)
    assert np.allclose(robust_rot6d_to_matrix(matrix_to_rot6d(mats)), mats, atol=1e-12)
    aa = rot6d_to_axis_angle(raw)
    assert np.allclose(axis_angle_to_matrix(aa), r, atol=1e-7)


def test_conversions_keep_torch_dtype_and_return_numpy_for_numpy():
    x = torch.zeros(2, 5, 3, dtype=torch.float32)
    assert axis_angle_to_matrix(x).shape == (2, 5, 3, 3) and axis_angle_to_matrix(x).dtype == torch.float32
    assert isinstance(axis_angle_to_matrix(np.zeros(3)), np.ndarray)
    with pytest.raises(ValueError, match=r"expected shape \(\.\.\., 6\)"):
        rot6d_to_matrix(torch.zeros(4, 5))


def test_project_to_rotation_removes_scale_and_reflection():
    rot = Rotation.from_rotvec([0.3, -0.2, 0.5]).as_matrix()
    assert np.allclose(project_to_rotation(rot * 1.7), rot, atol=1e-12)
    reflected = project_to_rotation(np.diag([1.0, 1.0, -1.0]))
    assert np.allclose(reflected, np.eye(3)) and np.isclose(np.linalg.det(reflected), 1.0)


def test_dexycb_conversion_by_hand_with_a_toy_basis():
    rng = np.random.default_rng(5)
    pose_m = rng.normal(size=51)
    comps = np.eye(45)[::-1]  # reversal basis: fingers = coeffs reversed
    mean = np.arange(45) / 100
    right = dexycb_pose_to_right_flat(pose_m, "right", comps, mean)
    assert np.allclose(right, np.concatenate([pose_m[:3], pose_m[3:48][::-1] + mean]))
    left = dexycb_pose_to_right_flat(pose_m, "left", comps, mean)
    flip = np.tile([1.0, -1.0, -1.0], 16)
    assert np.allclose(left, np.concatenate([pose_m[:3], pose_m[3:48][::-1]]) * flip + np.r_[0, 0, 0, mean])
    batch = dexycb_pose_to_right_flat(np.stack([pose_m, pose_m]), "left", comps, mean)
    assert np.allclose(batch, [left, left])
    with pytest.raises(ValueError, match="51 values"):
        dexycb_pose_to_right_flat(pose_m[:48], "right", comps, mean)


@pytest.mark.parametrize("side", ["right", "left"])
def test_dexycb_conversion_gives_the_mirrored_hand_of_the_sides_pca_model(mano_assets, side):
    """Independent check: the side's own PCA layer (with its hands_mean) = right flat layer on the converted
    pose, mirrored back for a left hand (zero betas: DexYCB's unfixed left shapedirs do not mirror)."""
    pose_m = np.random.default_rng(6).normal(scale=0.8, size=(3, 51))
    side_layer = ManoLayer.from_assets(mano_assets[side], use_pca=True, ncomps=45, flat_hand_mean=False).double()
    verts_side, _ = side_layer(torch.tensor(pose_m[:, :48]))
    converted = dexycb_pose_to_right_flat(pose_m, side, mano_assets[side].hands_components,
                                          mano_assets["right"].hands_mean)
    right_flat = ManoLayer.from_assets(mano_assets["right"], use_pca=False, flat_hand_mean=True).double()
    verts_right, _ = right_flat(torch.tensor(converted))
    mirror = torch.tensor([-1.0, 1.0, 1.0] if side == "left" else [1.0, 1.0, 1.0], dtype=torch.float64)
    assert torch.allclose(verts_side, verts_right * mirror, atol=1e-4)  # mm


def test_mirror_pose_and_rotate_global_orient():
    pose = np.random.default_rng(7).normal(size=48)
    assert np.allclose(mirror_pose(mirror_pose(pose)), pose)
    assert np.allclose(mirror_pose(pose)[:6], pose[:6] * [1, -1, -1, 1, -1, -1])
    rot = Rotation.from_rotvec([0, 0, 0.4]).as_matrix()
    rotated = rotate_global_orient(pose, rot)
    assert np.allclose(rotated[3:], pose[3:])
    assert np.allclose(Rotation.from_rotvec(rotated[:3]).as_matrix(),
                       rot @ Rotation.from_rotvec(pose[:3]).as_matrix(), atol=1e-7)


def test_joint_order_maps_follow_the_joint_names():
    assert [HAND_JOINT_NAMES[i] for i in MANOPTH_TO_HO3D_ORDER] == list(HO3D_JOINT_NAMES)
    assert [HO3D_JOINT_NAMES[i] for i in HO3D_TO_MANOPTH_ORDER] == list(HAND_JOINT_NAMES)
    mano_plus_tips = list(MANO_JOINT_NAMES) + ["thumb4", "index4", "middle4", "ring4", "little4"]
    assert [mano_plus_tips[i] for i in MANO_TO_MANOPTH_ORDER] == list(HAND_JOINT_NAMES)
    joints = torch.arange(63.0).view(1, 21, 3)
    there_and_back = reorder_joints(reorder_joints(joints, MANOPTH_TO_HO3D_ORDER), HO3D_TO_MANOPTH_ORDER)
    assert torch.equal(there_and_back, joints)
    assert reorder_joints(joints.numpy()[0], MANOPTH_TO_HO3D_ORDER)[1, 0] == 15.0  # HO3D joint 1 = index1
    assert np.array_equal(OPENGL_TO_OPENCV @ OPENGL_TO_OPENCV, np.eye(3))
