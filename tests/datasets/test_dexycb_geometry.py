"""Pure crop geometry and image transforms against hand-computed values."""
from __future__ import annotations

import numpy as np
import pytest

from datasets import geometry as geo
from datasets.transforms import (CENTER_JITTER, SCALE_JITTER, paste_generated_crop, sample_augmentation,
                                 sample_rotation_dexycb, warp_image)


def test_bbox_from_points_truncates_the_centre():
    box = geo.bbox_from_points(np.array([[1.0, 2.0], [4.5, 7.0]]), 1.5)
    # centre (trunc 2.75, trunc 4.5) = (2, 4); half size (3.5, 5) * 1.5 / 2 = (2.625, 3.75)
    np.testing.assert_allclose(box, [-0.625, 0.25, 4.625, 7.75])
    assert box.dtype == np.float32


def test_crop_affine_maps_the_region_onto_the_crop():
    affine = geo.crop_affine(np.array([100.0, 50.0]), 200.0, 128)
    np.testing.assert_allclose(affine, [[0.64, 0, 0], [0, 0.64, 32], [0, 0, 1]])
    np.testing.assert_allclose(geo.apply_affine(affine, np.array([[0.0, -50.0], [200.0, 150.0]])),
                               [[0, 0], [128, 128]], atol=1e-5)
    assert geo.square_region(np.array([10.0, 20.0, 50.0, 30.0])) == (pytest.approx([30.0, 25.0]), 40.0)


def test_rotated_crop_intrinsics_agree_with_the_image_warp():
    rng = np.random.default_rng(0)
    k = np.array([[600.0, 0, 310.0], [0, 600.0, 245.0], [0, 0, 1]])
    points = rng.uniform([-0.1, -0.1, 0.4], [0.1, 0.1, 0.7], size=(30, 3))
    centre, scale, theta, res = np.array([330.0, 200.0]), 180.0, 0.7, 256
    warped = geo.apply_affine(geo.crop_transform(centre, scale, theta, res), geo.project_points(points, k))
    rotated = points @ geo.rotation_z(theta).T
    projected = geo.project_points(rotated, geo.crop_intrinsics(k, centre, scale, theta, res))
    np.testing.assert_allclose(projected, warped, atol=1e-3)
    np.testing.assert_allclose(geo.crop_transform(centre, scale, 0.0, res), geo.crop_affine(centre, scale, res))


def test_mirrored_intrinsics_project_mirrored_points_onto_mirrored_pixels():
    k = np.array([[600.0, 0, 300.0], [0, 590.0, 245.0], [0, 0, 1]])
    points = np.array([[0.05, -0.02, 0.5], [-0.1, 0.03, 0.6]])
    expected = geo.mirror_points_2d(geo.project_points(points, k), 640)
    got = geo.project_points(geo.mirror_points_3d(points), geo.mirror_intrinsics(k, 640))
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert geo.mirror_points_2d(np.array([[0.0, 5.0]]), 640)[0, 0] == 639


def test_rotation_angle_deg():
    assert geo.rotation_angle_deg(geo.rotation_z(np.radians(33.0))[:3, :3]) == pytest.approx(33.0)


def test_warp_uses_nearest_neighbour_and_black_outside():
    image = np.zeros((40, 60, 3), np.uint8)
    image[10:20, 20:30] = [255, 0, 0]
    crop = warp_image(image, geo.crop_affine(np.array([25.0, 15.0]), 20.0, 40), 40)
    assert set(np.unique(crop)) <= {0, 255}  # no interpolated values
    assert crop[20, 20].tolist() == [255, 0, 0] and crop[0, 0].tolist() == [0, 0, 0]
    outside = warp_image(image, geo.crop_affine(np.array([-100.0, -100.0]), 20.0, 16), 16)
    assert not outside.any()


def test_generated_crop_is_pasted_into_its_region_only():
    image = np.full((100, 120, 3), 7, np.uint8)
    generated = np.zeros((32, 32, 3), np.uint8)
    generated[..., 1] = 200
    out = paste_generated_crop(image, generated, np.array([50.0, 40.0]), 40.0, 64)
    assert np.all(out[21:59, 31:69, 1] == 200)  # inner integer rectangle of [30, 70] x [20, 60]
    assert np.all(out[:20] == 7) and np.all(out[:, :30] == 7) and np.all(out[:, 70:] == 7)
    assert np.all(image == 7)  # the input is not modified


def test_augmentation_draws_stay_in_the_official_ranges():
    rng = np.random.default_rng(0)
    draws = [sample_augmentation(rng, 100.0, "dexycb") for _ in range(400)]
    offsets = np.array([d.crop.centre_offset for d in draws])
    scales = np.array([d.crop.scale_factor for d in draws])
    angles = np.array([d.crop.rotation for d in draws])
    assert np.abs(offsets).max() <= CENTER_JITTER * 100 and scales.min() >= 1 - SCALE_JITTER
    assert scales.max() <= 1 + SCALE_JITTER and np.abs(angles).max() <= np.pi / 3 + 1e-9
    assert 0.3 < np.mean(angles == 0) < 0.5  # rotation applied with probability 0.6
    hues = np.array([d.photometric.hue for d in draws])
    assert np.abs(hues).max() <= 0.15 and sorted(draws[0].photometric.order) == [0, 1, 2, 3]
    assert sample_rotation_dexycb(np.random.default_rng(1)) == sample_rotation_dexycb(np.random.default_rng(1))
