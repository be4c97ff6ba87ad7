"""utils.render on the stand-in hand: depth in metres where the hand is, labels, inputs left untouched."""
import numpy as np

from utils.render import MeshRenderer, MeshSpec, look_at_intrinsics


def test_render_standin_hand_depth_and_labels(mano_assets):
    a = mano_assets["right"]
    palm_to_camera = a.v_template[:, [0, 2, 1]]  # template y (palm normal) -> camera z
    verts = palm_to_camera - palm_to_camera.mean(0) + [0.0, 0.0, 0.5]  # 0.5 m in front of the camera
    before = verts.copy()
    K = look_at_intrinsics(64, 48, focal=60.0)
    K_before = K.copy()
    with MeshRenderer(64, 48) as renderer:
        rgb, depth, labels = renderer.render([MeshSpec(verts, a.faces)], K, with_labels=True)
    assert rgb.shape == (48, 64, 3) and rgb.dtype == np.uint8 and depth.shape == (48, 64)
    hit = depth > 0
    assert 150 < hit.sum() < 48 * 64 / 2 and np.array_equal(hit, labels == 1)
    assert verts[:, 2].min() - 1e-3 <= depth[hit].min() and depth[hit].max() <= verts[:, 2].max() + 1e-3
    # the hand's centre projects to the principal point: the middle pixel is covered
    assert hit[24, 32]
    assert np.array_equal(verts, before) and np.array_equal(K, K_before)
    assert (rgb[0, 0] == 255).all() and (rgb[~hit] == 255).all(-1).mean() > 0.9  # white background
    assert rgb[hit].mean() < 240  # skin-coloured, lit hand


def test_closing_one_renderer_leaves_another_working(mano_assets):
    from utils.render import MeshRenderer, MeshSpec, look_at_intrinsics
    from models.mano import ManoLayer
    import torch

    layer = ManoLayer.from_assets(mano_assets["right"], use_pca=False, flat_hand_mean=True)
    verts = layer(torch.zeros(1, 48))[0][0].numpy() / 1000.0 + np.array([0.0, 0.0, 0.5])
    spec = MeshSpec(verts, mano_assets["right"].faces, (0.8, 0.6, 0.5))
    K = look_at_intrinsics(64, 64, 80.0)
    first, second = MeshRenderer(64, 64), MeshRenderer(64, 64)
    _, depth_before = second.render([spec], K)
    first.close()
    _, depth_after = second.render([spec], K)
    second.close()
    assert (depth_after > 0).sum() > 50
    assert np.allclose(depth_before, depth_after)
    third = MeshRenderer(64, 64)  # a new renderer after both were closed
    assert np.allclose(third.render([spec], K)[1], depth_before)
    third.close()


def test_labels_and_depth_see_faces_of_either_winding():
    """pyrender's label pass culls back faces; a mirrored (inward-wound) closed box must still give the near
    face's depth, and a lone triangle the same pixels whatever its winding."""
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float64)
    faces = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                      [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])
    box = corners * 0.05 + [0.0, 0.0, 0.5]  # near face at z = 0.45 m
    K = look_at_intrinsics(64, 64, focal=100.0)
    with MeshRenderer(64, 64) as renderer:
        outputs = [renderer.render([MeshSpec(box, f)], K, with_labels=True) for f in (faces, faces[:, ::-1])]
        triangle = np.array([[-0.05, -0.05, 0.5], [0.05, -0.05, 0.5], [0.0, 0.05, 0.5]])
        lone = [renderer.render([MeshSpec(triangle, f)], K, with_labels=True)[2] for f in ([[0, 1, 2]], [[0, 2, 1]])]
    side = 2 * 100.0 * 0.05 / 0.45  # the near face's projected width, px
    for _, depth, labels in outputs:
        assert abs((labels == 1).sum() - side ** 2) < 4 * side
        np.testing.assert_allclose(depth[32, 32], 0.45, atol=1e-3)
    assert (lone[0] == 1).sum() > 100 and np.array_equal(lone[0], lone[1])
