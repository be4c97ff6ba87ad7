"""MANO test fixtures and an independent, loop-based reference of manopth's ManoLayer maths.

manopth itself cannot be installed here (it needs chumpy), so :func:`manopth_reference` re-states its
algorithm (docs/libraries.md B.2) per sample and per joint in float64 numpy, with the textbook
Rodrigues formula and manopth's cross-product 6D construction. Used by tests/models/test_mano_layer.py.
"""
from __future__ import annotations

import numpy as np
import pytest

TIPS = {"right": [745, 317, 444, 556, 673], "left": [745, 317, 445, 556, 673]}
REORDER = [0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20]


def rodrigues(axis_angle: np.ndarray) -> np.ndarray:
    """(3,) -> (3, 3): R = I + sin(t) K + (1 - cos(t)) K^2 with t = |aa + 1e-8| (manopth's angle)."""
    theta = np.linalg.norm(axis_angle + 1e-8)
    kx, ky, kz = axis_angle / theta
    k = np.array([[0.0, -kz, ky], [kz, 0.0, -kx], [-ky, kx, 0.0]])
    return np.eye(3) + np.sin(theta) * k + (1 - np.cos(theta)) * k @ k


def _normalize(v):
    return v / max(np.linalg.norm(v), 1e-8)


def ortho6d(x: np.ndarray, robust: bool) -> np.ndarray:
    """manopth rot6d.py: (6,) -> (3, 3) with columns x, y, z."""
    if robust:
        a, b = _normalize(x[:3]), _normalize(x[3:])
        mid, orth = _normalize(a + b), _normalize(a - b)
        a, b = _normalize(mid + orth), _normalize(mid - orth)
        c = _normalize(np.cross(a, b))
    else:
        a = _normalize(x[:3])
        c = _normalize(np.cross(a, x[3:]))
        b = np.cross(c, a)
    return np.stack([a, b, c], axis=1)


def manopth_reference(assets, pose_coeffs, betas=None, trans=None, *, use_pca=True, ncomps=6,
                      flat_hand_mean=True, center_idx=None, root_rot_mode="axisang", robust_rot=False,
                      fix_left_shapedirs=False):
    """Per-sample manopth forward. Returns verts (B, 778, 3) and joints (B, 21, 3) in mm (float64)."""
    pose_coeffs = np.asarray(pose_coeffs, dtype=np.float64)
    batch = pose_coeffs.shape[0]
    rot = 3 if root_rot_mode == "axisang" else 6
    n_hand = ncomps if use_pca else 45
    shapedirs = assets.shapedirs.copy()
    if fix_left_shapedirs and assets.side == "left":
        shapedirs[:, 0] *= -1
    mean = np.zeros(45) if flat_hand_mean else assets.hands_mean
    parents = assets.kintree_parents
    use_trans = trans is not None and np.linalg.norm(trans) != 0
    all_verts, all_joints = [], []
    for b in range(batch):
        hand = pose_coeffs[b, rot:rot + n_hand]
        if use_pca:
            hand = hand @ assets.hands_components[:ncomps]
        full = mean + hand
        rots = [rodrigues(pose_coeffs[b, :3]) if rot == 3 else ortho6d(pose_coeffs[b, :6], robust_rot)]
        rots += [rodrigues(full[3 * i: 3 * i + 3]) for i in range(15)]
        beta = np.zeros(10) if betas is None else np.asarray(betas[b], dtype=np.float64)
        v_shaped = assets.v_template + shapedirs @ beta
        joints = assets.J_regressor @ v_shaped
        pose_map = np.concatenate([(r - np.eye(3)).ravel() for r in rots[1:]])
        v_posed = v_shaped + assets.posedirs @ pose_map
        world = [None] * 16
        for j in range(16):
            local = np.eye(4)
            local[:3, :3] = rots[j]
            local[:3, 3] = joints[j] - (joints[parents[j]] if parents[j] >= 0 else 0.0)
            world[j] = local if parents[j] < 0 else world[parents[j]] @ local
        skin = np.zeros((16, 4, 4))
        for j in range(16):
            skin[j] = world[j].copy()
            skin[j, :3, 3] -= world[j][:3, :3] @ joints[j]
        per_vertex = np.einsum("vj,jab->vab", assets.weights, skin)
        homog = np.concatenate([v_posed, np.ones((len(v_posed), 1))], axis=1)
        verts = np.einsum("vab,vb->va", per_vertex, homog)[:, :3]
        posed_joints = np.stack([w[:3, 3] for w in world])
        out_joints = np.concatenate([posed_joints, verts[TIPS[assets.side]]])[REORDER]
        if use_trans:
            out_joints, verts = out_joints + trans[b], verts + trans[b]
        elif center_idx is not None:
            centre = out_joints[center_idx].copy()
            out_joints, verts = out_joints - centre, verts - centre
        all_verts.append(verts * 1000)
        all_joints.append(out_joints * 1000)
    return np.stack(all_verts), np.stack(all_joints)


@pytest.fixture(scope="session")
def mano_assets(standin_mano_root):
    """{'right': ManoAssets, 'left': ManoAssets} of the stand-in model."""
    from utils.mano_io import load_mano_assets

    return {side: load_mano_assets(standin_mano_root, side) for side in ("right", "left")}
