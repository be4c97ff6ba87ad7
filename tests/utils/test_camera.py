"""Root-translation solves and default intrinsics (utils/camera.py) on hand-made cases."""
import numpy as np
import pytest

from utils.camera import box_fit_translation, default_focal, pinhole_intrinsics, solve_root_translation


def project(points, k):
    uvw = points @ k.T
    return uvw[:, :2] / uvw[:, 2:]


@pytest.fixture
def hand():
    rng = np.random.default_rng(0)
    joints_rel = rng.normal(scale=0.04, size=(21, 3))
    joints_rel[0] = 0.0
    k = np.array([[612.0, 0.0, 318.0], [0.0, 610.0, 242.0], [0.0, 0.0, 1.0]])
    return joints_rel, k


def test_default_focal_is_hamers_rule():
    assert default_focal(640, 480) == pytest.approx(5000 / 256 * 640)
    k = pinhole_intrinsics(300, 600)
    assert k[0, 0] == k[1, 1] == pytest.approx(5000 / 256 * 600)
    assert k[:2, 2].tolist() == [150.0, 300.0]
    assert pinhole_intrinsics(300, 600, focal=500.0)[0, 0] == 500.0


def test_exact_projections_give_back_the_translation(hand):
    joints_rel, k = hand
    truth = np.array([0.07, -0.05, 0.62])
    solved = solve_root_translation(project(joints_rel + truth, k), joints_rel, k)
    assert np.allclose(solved, truth, atol=1e-9)


def test_noisy_projections_reproject_within_the_noise(hand):
    joints_rel, k = hand
    truth = np.array([-0.1, 0.02, 0.8])
    uv = project(joints_rel + truth, k) + np.random.default_rng(1).normal(scale=1.0, size=(21, 2))
    solved = solve_root_translation(uv, joints_rel, k)
    residual = np.linalg.norm(project(joints_rel + solved, k) - uv, axis=1)
    assert residual.mean() < 2.0
    assert np.abs(solved - truth).max() < 0.02


def test_zero_weights_ignore_outliers(hand):
    joints_rel, k = hand
    truth = np.array([0.0, 0.0, 0.5])
    uv = project(joints_rel + truth, k)
    uv[3] += 150.0
    weights = np.ones(21)
    weights[3] = 0.0
    assert np.allclose(solve_root_translation(uv, joints_rel, k, weights), truth, atol=1e-9)
    assert not np.allclose(solve_root_translation(uv, joints_rel, k), truth, atol=1e-3)


def test_mismatched_shapes_are_refused(hand):
    joints_rel, k = hand
    with pytest.raises(ValueError, match="N >= 2"):
        solve_root_translation(np.zeros((20, 2)), joints_rel, k)


def test_box_fit_centres_the_hand_and_matches_the_box_size(hand):
    joints_rel, k = hand
    box = np.array([200.0, 150.0, 300.0, 230.0])
    placed = joints_rel + box_fit_translation(joints_rel, box, k)
    centre = (placed.min(0) + placed.max(0)) / 2
    assert np.allclose(project(centre[None], k)[0], [250.0, 190.0], atol=1e-6)
    extent_m = max(np.ptp(joints_rel[:, 0]), np.ptp(joints_rel[:, 1]))
    assert k[0, 0] * extent_m / centre[2] == pytest.approx(100.0)
