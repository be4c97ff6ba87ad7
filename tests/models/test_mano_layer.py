"""ManoLayer: manopth maths (vs a loop-based reference), buffers for strict checkpoint loading, mirror, grads."""
import numpy as np
import pytest
import torch

from fixtures_mano import manopth_reference
from models.mano import ManoLayer
from models.mano.lbs import kinematic_levels, lbs, pack_skinning_arrays
from utils.hand_conventions import MANO_TO_MANOPTH_ORDER
from utils.rotations import axis_angle_to_matrix

OFFICIAL_BUFFERS = [("th_betas", (1, 10)), ("th_shapedirs", (778, 3, 10)), ("th_posedirs", (778, 3, 135)),
                    ("th_v_template", (1, 778, 3)), ("th_J_regressor", (16, 778)), ("th_weights", (778, 16)),
                    ("th_faces", (1538, 3)), ("th_hands_mean", (1, 45)), ("th_selected_comps", (6, 45))]
MIRROR = np.array([-1.0, 1.0, 1.0])


def _random_inputs(batch, width, seed, scale=0.6):
    rng = np.random.default_rng(seed)
    return rng.normal(scale=scale, size=(batch, width)), rng.normal(size=(batch, 10))


def test_state_dict_has_exactly_the_official_buffers_in_order(mano_assets):
    layer = ManoLayer.from_assets(mano_assets["right"], flat_hand_mean=True, use_pca=False)
    state = layer.state_dict()
    assert [(k, tuple(v.shape)) for k, v in state.items()] == OFFICIAL_BUFFERS
    assert state["th_faces"].dtype == torch.int64 and state["th_v_template"].dtype == torch.float32
    assert torch.count_nonzero(state["th_hands_mean"]) == 0 and torch.count_nonzero(state["th_betas"]) == 0
    assert tuple(layer.th_comps.shape) == (45, 45)  # kept, but not persistent
    fresh = ManoLayer.from_assets(mano_assets["right"], use_pca=False)
    fresh.load_state_dict({f"{k}": v.clone() for k, v in state.items()}, strict=True)
    with pytest.raises(RuntimeError, match="th_comps"):
        fresh.load_state_dict({**state, "th_comps": layer.th_comps}, strict=True)


def test_zero_pose_and_betas_give_the_template_in_mm(mano_assets):
    for side in ("right", "left"):
        layer = ManoLayer.from_assets(mano_assets[side], use_pca=False)
        verts, joints = layer(torch.zeros(2, 48))
        expected = torch.tensor(mano_assets[side].v_template * 1000, dtype=torch.float32)
        assert torch.allclose(verts, expected.expand(2, -1, -1), atol=1e-3)
        assert verts.dtype == torch.float32 and joints.shape == (2, 21, 3)


def test_rest_joints_are_the_regressor_applied_to_the_vertices_plus_tips(mano_assets):
    assets = mano_assets["right"]
    verts, joints = ManoLayer.from_assets(assets)(torch.zeros(1, 9))
    regressed = assets.J_regressor @ (verts[0].double().numpy())
    mano_order = np.concatenate([regressed, verts[0].double().numpy()[[745, 317, 444, 556, 673]]])
    assert np.allclose(joints[0].numpy(), mano_order[list(MANO_TO_MANOPTH_ORDER)], atol=1e-3)


def test_kinematic_levels_match_manopth():
    parents = [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14]
    assert kinematic_levels(parents) == [[1, 4, 7, 10, 13], [2, 5, 8, 11, 14], [3, 6, 9, 12, 15]]



def test_lbs_on_a_tree_whose_levels_are_not_aligned_chains():
    """Joint 3 hangs under joint 2, the second joint of level 1: the chain must pick that parent, and the
    vertices must be the weighted 4x4 transforms ``T_j [I | -J_j]`` applied one joint at a time."""
    gen = torch.Generator().manual_seed(0)
    parents, num_verts = [-1, 0, 0, 2], 6
    template = torch.randn(num_verts, 3, generator=gen, dtype=torch.float64)
    shapedirs = torch.randn(num_verts, 3, 2, generator=gen, dtype=torch.float64) * 0.1
    posedirs = torch.randn(num_verts, 3, 27, generator=gen, dtype=torch.float64) * 0.1
    regressor = torch.softmax(torch.randn(4, num_verts, generator=gen, dtype=torch.float64), dim=1)
    weights = torch.softmax(torch.randn(num_verts, 4, generator=gen, dtype=torch.float64), dim=1)
    betas = torch.randn(2, 2, generator=gen, dtype=torch.float64)
    rotmats = axis_angle_to_matrix(torch.randn(2, 4, 3, generator=gen, dtype=torch.float64))
    verts, joints = lbs(betas, rotmats, pack_skinning_arrays(template, shapedirs, posedirs, regressor, weights,
                                                             parents))
    for b in range(2):
        shaped = template + shapedirs @ betas[b]
        rest = regressor @ shaped
        posed = shaped + posedirs @ (rotmats[b, 1:] - torch.eye(3, dtype=torch.float64)).reshape(-1)
        world = []
        for j, parent in enumerate(parents):
            local = torch.eye(4, dtype=torch.float64)
            local[:3, :3], local[:3, 3] = rotmats[b, j], rest[j] - (rest[parent] if parent >= 0 else 0)
            world.append(local if parent < 0 else world[parent] @ local)
        assert torch.allclose(joints[b], torch.stack([w[:3, 3] for w in world]))
        skin = [w @ torch.cat([torch.cat([torch.eye(3, dtype=torch.float64), -rest[j, :, None]], 1),
                                torch.tensor([[0.0, 0, 0, 1]], dtype=torch.float64)]) for j, w in enumerate(world)]
        blended = torch.einsum("vj,jab->vab", weights, torch.stack(skin))
        expected = (blended[:, :3, :3] @ posed.unsqueeze(-1)).squeeze(-1) + blended[:, :3, 3]
        assert torch.allclose(verts[b], expected)


def test_loaded_model_buffers_are_used_and_the_layer_follows_dtype(mano_assets):
    layer = ManoLayer.from_assets(mano_assets["right"], use_pca=False)
    state = layer.state_dict()
    shifted = {**state, "th_v_template": state["th_v_template"] + 0.01, "th_shapedirs": state["th_shapedirs"] * 2}
    torch.nn.ModuleDict({"mano": layer}).load_state_dict({f"mano.{k}": v for k, v in shifted.items()})  # via a parent
    pose, betas = torch.zeros(1, 48), torch.ones(1, 10) * 0.3
    fresh = ManoLayer.from_assets(mano_assets["right"], use_pca=False)
    moved = fresh(pose, betas)[0] + 10.0 + 1000 * (torch.tensor(mano_assets["right"].shapedirs, dtype=torch.float32)
                                                  @ betas[0])
    assert torch.allclose(layer(pose, betas)[0][0], moved[0], atol=1e-3)
    assert layer.double()(pose.double(), betas.double())[0].dtype == torch.float64

@pytest.mark.parametrize("mode", [
    dict(use_pca=True, ncomps=6, flat_hand_mean=True, center_idx=None),
    dict(use_pca=True, ncomps=45, flat_hand_mean=False, center_idx=9),
    dict(use_pca=False, flat_hand_mean=True, center_idx=0),
    dict(use_pca=False, flat_hand_mean=False, center_idx=None, side="left"),
    dict(use_pca=False, flat_hand_mean=True, side="left", fix_left_shapedirs=True),
    dict(use_pca=True, ncomps=10, root_rot_mode="rot6d"),
    dict(use_pca=False, root_rot_mode="rot6d", robust_rot=True),
])
@pytest.mark.parametrize("with_trans", [False, True])
def test_layer_equals_loop_reference(mano_assets, mode, with_trans):
    mode = dict(mode)
    side = mode.pop("side", "right")
    rot = 6 if mode.get("root_rot_mode") == "rot6d" else 3
    width = rot + (mode["ncomps"] if mode["use_pca"] else 45)
    pose, betas = _random_inputs(5, width, seed=width)
    trans = np.random.default_rng(1).normal(scale=0.1, size=(5, 3)) if with_trans else None
    ref_verts, ref_joints = manopth_reference(mano_assets[side], pose, betas, trans, **mode)
    layer = ManoLayer.from_assets(mano_assets[side], **mode)
    t = (lambda a, dtype: None if a is None else torch.tensor(a, dtype=dtype))  # noqa: E731
    verts, joints = layer.double()(t(pose, torch.float64), t(betas, torch.float64), t(trans, torch.float64))
    assert np.abs(verts.numpy() - ref_verts).max() < 1e-4  # mm
    assert np.abs(joints.numpy() - ref_joints).max() < 1e-4
    verts32, joints32 = layer.float()(t(pose, torch.float32), t(betas, torch.float32), t(trans, torch.float32))
    assert verts32.dtype == torch.float32
    assert np.abs(verts32.numpy() - ref_verts).max() < 5e-3  # float32 rounding on ~100 mm values
    assert np.abs(joints32.numpy() - ref_joints).max() < 5e-3


def test_centring_uses_the_requested_joint_and_trans_overrides_it(mano_assets):
    layer = ManoLayer.from_assets(mano_assets["right"], center_idx=9, use_pca=False)
    pose, betas = _random_inputs(3, 48, seed=3)
    pose, betas = torch.tensor(pose, dtype=torch.float32), torch.tensor(betas, dtype=torch.float32)
    verts, joints = layer(pose, betas)
    assert torch.allclose(joints[:, 9], torch.zeros(3, 3), atol=1e-4)
    trans = torch.tensor([[0.1, 0.0, 0.0]] * 3)
    verts_t, _ = layer(pose, betas, trans)
    uncentred, _ = ManoLayer.from_assets(mano_assets["right"], use_pca=False)(pose, betas)
    assert torch.allclose(verts_t, uncentred + torch.tensor([100.0, 0.0, 0.0]), atol=1e-3)


def test_pca_with_all_components_equals_axis_angle_after_projection(mano_assets):
    assets = mano_assets["right"]
    coeffs, betas = _random_inputs(4, 48, seed=7)
    betas = torch.tensor(betas, dtype=torch.float64)
    pca = ManoLayer.from_assets(assets, use_pca=True, ncomps=45, flat_hand_mean=False).double()
    aa = ManoLayer.from_assets(assets, use_pca=False, flat_hand_mean=True).double()
    fingers = coeffs[:, 3:] @ assets.hands_components + assets.hands_mean
    out_pca = pca(torch.tensor(coeffs), betas)
    out_aa = aa(torch.tensor(np.concatenate([coeffs[:, :3], fingers], axis=1)), betas)
    for a, b in zip(out_pca, out_aa):
        assert torch.allclose(a, b, atol=1e-5)  # mm; buffers are float32-rounded


def test_left_hand_is_the_mirrored_right_hand(mano_assets):
    pose, betas = _random_inputs(3, 48, seed=11)
    mirrored_pose = (pose.reshape(3, 16, 3) * [1.0, -1.0, -1.0]).reshape(3, 48)
    right = ManoLayer.from_assets(mano_assets["right"], use_pca=False).double()
    for fix, use_betas in ((False, False), (True, True)):
        left = ManoLayer.from_assets(mano_assets["left"], use_pca=False, fix_left_shapedirs=fix).double()
        b = torch.tensor(betas) if use_betas else None
        verts_r, joints_r = right(torch.tensor(pose), b)
        verts_l, joints_l = left(torch.tensor(mirrored_pose), b)
        # 1e-5 mm: manopth's angle |aa + 1e-8| is not exactly mirror-symmetric
        assert torch.allclose(verts_l, verts_r * torch.tensor(MIRROR), atol=1e-5)
        # left middle tip is vertex 445 (manopth), right 444: compare the other joints exactly
        keep = [i for i in range(21) if i != 12]
        assert torch.allclose(joints_l[:, keep], (joints_r * torch.tensor(MIRROR))[:, keep], atol=1e-5)
    # without the fix, equal betas do NOT give mirrored hands (the known MANO_LEFT.pkl issue, reproduced)
    left = ManoLayer.from_assets(mano_assets["left"], use_pca=False).double()
    verts_l, _ = left(torch.tensor(mirrored_pose), torch.tensor(betas))
    verts_r, _ = right(torch.tensor(pose), torch.tensor(betas))
    assert (verts_l - verts_r * torch.tensor(MIRROR)).abs().max() > 1.0


def test_gradients_flow_to_pose_and_betas(mano_assets):
    layer = ManoLayer.from_assets(mano_assets["right"], use_pca=False)
    pose = torch.full((2, 48), 0.1, requires_grad=True)
    betas = torch.full((2, 10), 0.5, requires_grad=True)
    verts, joints = layer(pose, betas)
    (verts.square().mean() + joints.square().mean()).backward()
    assert torch.isfinite(pose.grad).all() and pose.grad.abs().sum(1).min() > 0
    assert torch.isfinite(betas.grad).all() and betas.grad.abs().sum(1).min() > 0
    zero = torch.zeros(1, 48, requires_grad=True)  # axis-angle 0 is differentiable (angle = |aa + 1e-8|)
    layer(zero)[0].sum().backward()
    assert torch.isfinite(zero.grad).all()


def test_batch_is_processed_like_single_samples(mano_assets):
    layer = ManoLayer.from_assets(mano_assets["right"], ncomps=12)
    pose, betas = _random_inputs(4, 15, seed=5)
    pose, betas = torch.tensor(pose, dtype=torch.float32), torch.tensor(betas, dtype=torch.float32)
    verts, joints = layer(pose, betas)
    for i in range(4):
        v, j = layer(pose[i:i + 1], betas[i:i + 1])
        assert torch.allclose(v[0], verts[i], atol=1e-3) and torch.allclose(j[0], joints[i], atol=1e-3)


def test_rotmat_joint_mode_projects_and_matches_axis_angle(mano_assets):
    from utils.rotations import axis_angle_to_matrix
    pose, betas = _random_inputs(2, 48, seed=9)
    mats = axis_angle_to_matrix(torch.tensor(pose).view(2, 16, 3))
    rotmat = ManoLayer.from_assets(mano_assets["right"], use_pca=False, joint_rot_mode="rotmat").double()
    assert "th_hands_mean_rotmat" in rotmat.state_dict() and "th_selected_comps" not in rotmat.state_dict()
    aa = ManoLayer.from_assets(mano_assets["right"], use_pca=False).double()
    noisy = mats * 1.01  # scaled matrices are projected back onto rotations
    assert torch.allclose(rotmat(noisy)[0], aa(torch.tensor(pose))[0], atol=1e-6)


def test_root_palm_and_share_betas(mano_assets):
    layer = ManoLayer.from_assets(mano_assets["right"], use_pca=False)
    pose, betas = _random_inputs(2, 48, seed=4)
    pose, betas = torch.tensor(pose, dtype=torch.float32), torch.tensor(betas, dtype=torch.float32)
    verts, joints = layer(pose, betas, root_palm=True)
    assert torch.allclose(joints[:, 0], (verts[:, 95] + verts[:, 22]) / 2, atol=1e-4)
    shared, _ = layer(pose, betas, share_betas=True)
    assert torch.allclose(shared, layer(pose, betas.mean(0, keepdim=True).expand(2, 10))[0], atol=1e-4)


def test_constructor_reads_the_folder_and_reports_bad_input(standin_mano_root, mano_assets, monkeypatch):
    monkeypatch.setenv("MANO_ROOT", str(standin_mano_root))
    from_env = ManoLayer(side="left")
    from_assets = ManoLayer.from_assets(mano_assets["left"])
    assert all(torch.equal(a, b) for a, b in zip(from_env.state_dict().values(), from_assets.state_dict().values()))
    with pytest.raises(ValueError, match=r"pose_coeffs must be \(B, 9\)"):
        from_env(torch.zeros(2, 8))
    with pytest.raises(ValueError, match="assets are for the left hand"):
        ManoLayer(side="right", assets=mano_assets["left"])
    with pytest.raises(ValueError, match="root_rot_mode"):
        ManoLayer.from_assets(mano_assets["left"], root_rot_mode="quat")
