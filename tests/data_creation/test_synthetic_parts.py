"""Pieces of the synthetic generator: DexYCB-layout writers, pose_m rigid motion, object SDFs, grasps, the
subject's reach and the camera rig, sheet."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from data_creation import dexycb_layout as layout
from data_creation.synthetic.grasp import CONTACT_DEPTH, HandKit, Preshape, fit_grasp, object_orientation, \
    signed_distances
from data_creation.synthetic.scene import REACH_SPREAD_DEG, TABLE_CLEARANCE, plan_sequence
from data_creation.synthetic.sequence_writer import finger_pca
from data_creation.synthetic.views import project, sample_camera, serial_viewpoints
from data_creation.synthetic.objects import box_sdf, build_objects
from models.mano import ManoLayer
from utils.mano_io import load_mano_assets
from utils.rotations import axis_angle_to_matrix


def test_transform_pose_m_moves_the_mano_mesh_rigidly(standin_mano_root):
    assets = load_mano_assets(standin_mano_root, "left")
    layer = ManoLayer.from_assets(assets, use_pca=True, ncomps=45, flat_hand_mean=False)
    rng = np.random.default_rng(0)
    pose_m, betas = np.concatenate([rng.normal(0, 0.4, 48), [0.05, -0.02, 0.6]]), rng.normal(0, 0.5, 10)
    transform = np.eye(4)
    transform[:3, :3], transform[:3, 3] = axis_angle_to_matrix(np.array([0.3, -1.1, 0.4])), [0.1, 0.2, -0.3]

    def mesh(p):
        with torch.no_grad():
            verts, joints = layer(torch.tensor(p[None, :48], dtype=torch.float32),
                                  torch.tensor(betas[None], dtype=torch.float32),
                                  torch.tensor(p[None, 48:], dtype=torch.float32))
        return verts[0].double().numpy() / 1000.0, joints[0].double().numpy() / 1000.0

    with torch.no_grad():
        rest_root = layer(torch.zeros(1, 48), torch.tensor(betas[None], dtype=torch.float32))[1][0, 0].double().numpy()
    verts, _ = mesh(pose_m)
    moved, _ = mesh(layout.transform_pose_m(pose_m, rest_root / 1000.0, transform))
    np.testing.assert_allclose(moved, verts @ transform[:3, :3].T + transform[:3, 3], atol=2e-5)


def test_layout_writers_produce_toolkit_files(tmp_path):
    path = layout.write_intrinsics(tmp_path, "836212060125", 610.0, 611.0, 320.5, 241.0)
    assert yaml.safe_load(path.read_text()) == {"color": {"fx": 610.0, "fy": 611.0, "ppx": 320.5, "ppy": 241.0}}
    assert path.relative_to(tmp_path).as_posix() == "calibration/intrinsics/836212060125_640x480.yml"
    assert layout.sequence_name(2, 10 * 3600 + 61) == "20200820_100101"
    assert layout.mano_calib_name(9, "left") == "20201022_090000_subject-10_left"
    with pytest.raises(ValueError, match="expected 10 betas"):
        layout.write_mano_calibration(tmp_path, "x", np.zeros(9))
    with pytest.raises(ValueError, match="ycb_grasp_ind 2 outside"):
        layout.write_meta(tmp_path, ["s"], 3, [1, 2], 2, "right", "c", "e")
    with pytest.raises(ValueError, match="pose_y"):
        layout.write_labels(tmp_path / "labels_000000.npz", np.zeros((4, 4)), np.zeros((2, 4, 4)), np.zeros(51),
                            np.zeros((21, 3)), np.zeros((21, 2)))
    turn = np.eye(4)
    turn[:3, :3] = axis_angle_to_matrix(np.array([0.0, 0.0, np.pi / 2]))
    layout.write_sequence_poses(tmp_path, turn[None, None], np.zeros((1, 51)))
    with np.load(tmp_path / "pose.npz") as poses:
        np.testing.assert_allclose(poses["pose_y"][0, 0], [0, 0, np.sqrt(0.5), np.sqrt(0.5), 0, 0, 0], atol=1e-6)
        assert poses["pose_m"].shape == (1, 1, 51)


def test_object_sdfs_are_exact_for_simple_points():
    half = np.array([0.05, 0.02, 0.1])
    np.testing.assert_allclose(box_sdf(np.array([[0.0, 0.0, 0.0], [0.08, 0.0, 0.0], [0.08, 0.06, 0.0]]), half),
                               [-0.02, 0.03, 0.05])
    objects = build_objects()
    can = objects[4]  # 005_tomato_soup_can: r 3.4 cm, h 10 cm
    np.testing.assert_allclose(can.sdf(np.array([[0.05, 0.0, 0.0], [0.0, 0.0, 0.07], [0.0, 0.0, 0.0]])),
                               [0.016, 0.02, -0.034], atol=1e-12)
    for obj in objects.values():  # the SDF primitive is the mesh: body on the surface, decals < 2 mm proud
        verts, _ = obj.mesh()
        assert obj.sdf(verts).max() < 2e-3, obj.ycb_id
        assert np.median(np.abs(obj.sdf(obj.parts[0].verts))) < 1e-9, obj.ycb_id


@pytest.mark.parametrize("side", ["right", "left"])
def test_grasp_touches_the_object_without_sinking_in(standin_mano_root, side):
    kit = HandKit(load_mano_assets(standin_mano_root, side), np.zeros(10))
    can = build_objects()[4]
    rotation = object_orientation(can.wrap_axis, (1.0, 0.0, 0.0), kit.palm, -1.0, 0.4)
    grasp = fit_grasp(kit, can, rotation, 0.0, Preshape(np.zeros(5), 0.6))
    verts, _ = kit.forward(kit.finger_pose(grasp.curls, grasp.preshape))
    distances = signed_distances(can, grasp.object_pose, verts[0])
    assert -3 * CONTACT_DEPTH < distances.min() < 0  # in contact, at most a few mm of skin pressed in
    fingers_touching = [d for d in range(4) if distances[kit.digit_of_vertex == d].min() < 0.002]
    assert len(fingers_touching) >= 3
    np.testing.assert_allclose(grasp.object_pose[:3, :3] @ can.wrap_axis @ kit.palm.w, -np.cos(0.4), atol=1e-9)


@pytest.mark.parametrize("side", ["right", "left"])
def test_the_subject_reaches_along_plus_x_and_keeps_above_the_table(standin_mano_root, side):
    kit = HandKit(load_mano_assets(standin_mano_root, side), np.zeros(10))
    objects = build_objects()
    headings = []
    for seed, ycb_id in enumerate(sorted(objects)[:6]):
        plan = plan_sequence(np.random.default_rng(seed), kit, objects[ycb_id], None, 6)
        grasp_frame = plan.phases.index("close")
        forward = plan.hand_transforms[grasp_frame, :3, :3] @ kit.palm.f
        headings.append(np.degrees(np.arctan2(forward[1], forward[0])))
        verts, _ = kit.forward(kit.finger_pose(plan.curls[grasp_frame][None], plan.preshape))
        world = verts[0] @ plan.hand_transforms[grasp_frame, :3, :3].T + plan.hand_transforms[grasp_frame, :3, 3]
        assert world[:, 2].min() > TABLE_CLEARANCE - 0.003  # the turn towards the reach is about the vertical
    assert np.abs(headings).max() <= REACH_SPREAD_DEG + 1e-6
    assert np.ptp(headings) > REACH_SPREAD_DEG / 2  # spread, not one fixed heading


def test_cameras_keep_their_serials_place_in_the_rig():
    viewpoints = serial_viewpoints(0)
    azimuths = np.degrees([v[2] for v in viewpoints.values()])
    assert np.all(np.diff(azimuths) > 20)  # the 8 serials ring the table
    assert serial_viewpoints(0) == viewpoints and serial_viewpoints(1) != viewpoints
    k = np.array([[600.0, 0, 320], [0, 600.0, 240], [0, 0, 1]])
    target = np.array([0.02, -0.01, 0.05])
    keep = target + np.array([[0.1, 0.05, 0.1], [-0.05, 0.0, 0.0]])
    rng = np.random.default_rng(0)
    for distance, elevation, azimuth in viewpoints.values():
        pose = sample_camera(rng, (distance, elevation, azimuth), target, k, keep)
        centre = -pose[:3, :3].T @ pose[:3, 3] - target
        assert abs(np.linalg.norm(centre) - distance) < 0.15
        assert abs(np.arcsin(centre[2] / np.linalg.norm(centre)) - elevation) < np.radians(16)
        assert abs(np.angle(np.exp(1j * (np.arctan2(centre[1], centre[0]) - azimuth)))) < np.radians(20)
        uv, depth = project(pose, k, keep)
        assert (uv > 20).all() and (uv < [620, 460]).all() and (depth > 0).all()


def test_finger_pca_inverts_the_side_layers_mean_and_components(standin_mano_root):
    kit = HandKit(load_mano_assets(standin_mano_root, "left"), np.zeros(10))
    flat = kit.finger_pose(np.array([[0.3, 0.5, 0.2, 0.6, 0.4]]), Preshape(np.full(5, 0.05), 0.5))
    coeffs = finger_pca(kit, flat[:, 3:])
    np.testing.assert_allclose(kit.assets.hands_mean + coeffs @ kit.assets.hands_components, flat[:, 3:], atol=1e-10)


def test_sheet_draws_joints_on_the_frames(tmp_path, standin_mano_root):
    from data_creation.synthetic.make_synthetic import write_synthetic
    from data_creation.synthetic.sheet import write_sheet
    from datasets.label_files import read_rgb

    write_synthetic(tmp_path, standin_mano_root, seed=1, sequences=1, frames=4, cameras=1, progress=False)
    sheet = read_rgb(write_sheet(tmp_path, tmp_path / "sheet.png", sequences=1, columns=2)).astype(int)
    assert sheet.shape == (480, 640, 3)  # 4 half-size tiles: approach and last frame drawn; last frame / de-occluded
    drawn, plain, deoccluded = sheet[:240, 320:], sheet[240:, :320], sheet[240:, 320:]
    difference = np.abs(drawn - plain).max(axis=2)
    assert difference.max() > 100 and np.median(difference) == 0  # only the drawn joints / box changed
    assert np.abs(deoccluded - plain).max() > 50
