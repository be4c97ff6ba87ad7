"""Mesh-decoder assets of MobRecon / H2ONet: decimation, up-sampling, spirals, cache (docs/official-baselines.md §7).

The construction rules are checked on small meshes with hand-computed answers; the official checksums of the
MANO hierarchy are checked when a real MANO folder is given in ``MANO_ROOT_REAL`` (skipped otherwise).
"""
import hashlib
import os

import numpy as np
import pytest

from models.mesh_assets import hierarchy as hierarchy_module
from models.mesh_assets import load_or_build_mesh_hierarchy
from models.mesh_assets.decimation import qslim_decimate, target_vertex_count, vertex_quadrics
from models.mesh_assets.hierarchy import build_mesh_hierarchy
from models.mesh_assets.spirals import one_rings, spiral_indices
from models.mesh_assets.upsampling import closest_points_on_triangles, nearest_surface_points, upsampling_matrix


def icosphere(subdivisions):
    """Unit icosphere (closed, consistently outward-wound): 12, 42, 162, ... vertices."""
    t = (1 + 5 ** 0.5) / 2
    verts = [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t), (0, -1, -t), (0, 1, -t),
             (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)]
    faces = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4), (11, 10, 2),
             (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9), (4, 9, 5), (2, 4, 11),
             (6, 2, 10), (8, 6, 7), (9, 8, 1)]
    verts = [np.array(v, dtype=float) / np.linalg.norm(v) for v in verts]
    for _ in range(subdivisions):
        midpoints, new_faces = {}, []

        def midpoint(a, b):
            key = (min(a, b), max(a, b))
            if key not in midpoints:
                m = verts[a] + verts[b]
                verts.append(m / np.linalg.norm(m))
                midpoints[key] = len(verts) - 1
            return midpoints[key]
        for a, b, c in faces:
            ab, bc, ca = midpoint(a, b), midpoint(b, c), midpoint(c, a)
            new_faces += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = new_faces
    return np.array(verts), np.array(faces, dtype=np.int64)


def grid(n):
    """Flat n x n vertex grid in z = 1, each cell split into 2 counter-clockwise triangles."""
    ys, xs = np.meshgrid(np.arange(n, dtype=float), np.arange(n, dtype=float), indexing="ij")
    verts = np.stack([xs.ravel(), ys.ravel(), np.ones(n * n)], axis=1)
    faces = []
    for r in range(n - 1):
        for c in range(n - 1):
            v = r * n + c
            faces += [(v, v + 1, v + n + 1), (v, v + n + 1, v + n)]
    return verts, np.array(faces, dtype=np.int64)


def euler_characteristic(num_vertices, faces):
    edges = {tuple(sorted(e)) for f in faces.tolist() for e in ((f[0], f[1]), (f[1], f[2]), (f[2], f[0]))}
    return num_vertices - len(edges) + len(faces)


# ------------------------------------------------------------------------------------------ decimation


def test_quadric_of_a_face_plane():
    verts = np.array([[0.0, 0, 2], [1, 0, 2], [0, 1, 2]])  # plane z = 2 -> (0, 0, +-1, -+2)
    quadrics = vertex_quadrics(verts, np.array([[0, 1, 2]]))
    expected = np.outer([0, 0, 1, -2], [0, 0, 1, -2])
    for q in quadrics:
        np.testing.assert_allclose(q, expected, atol=1e-12)
    point = np.array([5.0, -3, 3.5, 1])
    assert point @ quadrics[0] @ point == pytest.approx(1.5 ** 2)  # squared distance to the plane


def test_first_collapse_is_the_cheapest_edge_and_removes_its_cheaper_end():
    verts, faces = icosphere(1)
    verts = verts * np.random.default_rng(0).uniform(0.8, 1.2, size=(len(verts), 1))  # irregular: distinct costs
    quadrics = vertex_quadrics(verts, faces)
    best = None
    for r, c in {tuple(sorted(e)) for f in faces.tolist() for e in ((f[0], f[1]), (f[1], f[2]), (f[2], f[0]))}:
        q = quadrics[r] + quadrics[c]
        p_r, p_c = np.append(verts[r], 1), np.append(verts[c], 1)
        remove_c, remove_r = p_r @ q @ p_r, p_c @ q @ p_c
        cost = min(remove_c, remove_r)
        if best is None or cost < best[0]:
            best = (cost, c if remove_c < remove_r else r)
    kept, coarse_faces = qslim_decimate(verts, faces, len(verts) - 1)
    assert sorted(set(range(len(verts))) - set(kept.tolist())) == [best[1]]
    assert len(coarse_faces) == len(faces) - 2  # an interior edge collapse removes its two faces


def test_icosphere_decimation_keeps_the_requested_count_and_the_topology():
    verts, faces = icosphere(2)  # 162 vertices
    target = target_vertex_count(len(verts), 2)
    assert target == 81
    kept, coarse_faces = qslim_decimate(verts, faces, target)
    assert len(kept) == 81 and np.all(np.diff(kept) > 0)
    assert coarse_faces.min() == 0 and coarse_faces.max() == 80
    assert not np.any((coarse_faces[:, 0] == coarse_faces[:, 1]) | (coarse_faces[:, 1] == coarse_faces[:, 2])
                      | (coarse_faces[:, 2] == coarse_faces[:, 0]))
    assert euler_characteristic(81, coarse_faces) == 2  # still a closed sphere
    normals = np.cross(*(verts[kept][coarse_faces[:, k]] - verts[kept][coarse_faces[:, 0]] for k in (1, 2)))
    assert np.all((normals * verts[kept][coarse_faces].mean(1)).sum(1) > 0)  # winding still outwards


def test_decimation_refuses_an_impossible_target():
    verts, faces = grid(3)
    with pytest.raises(ValueError, match="cannot decimate to 2 vertices"):
        qslim_decimate(verts, faces, 2)


# ------------------------------------------------------------------------------------------ up-sampling

TRIANGLE = np.array([[0.0, 0, 1], [1, 0, 1], [0, 1, 1]])


@pytest.mark.parametrize("point, part, closest", [
    ((0.25, 0.25, 1.5), 0, (0.25, 0.25, 1)),    # above the interior
    ((1.0, 0, 1), 0, (1, 0, 1)),                # on a corner: counted as interior (psbody)
    ((0.5, -1, 2), 1, (0.5, 0, 1)),             # beyond edge v0-v1
    ((1, 1, 1), 2, (0.5, 0.5, 1)),              # beyond edge v1-v2
    ((-1, 0.5, 1), 3, (0, 0.5, 1)),             # beyond edge v2-v0
    ((-1, -1, 0), 4, (0, 0, 1)), ((3, -1, 1), 5, (1, 0, 1)), ((-1, 3, 1), 6, (0, 1, 1)),  # corners
])
def test_closest_point_part_codes(point, part, closest):
    got, parts = closest_points_on_triangles(np.array([point], dtype=float), TRIANGLE[None])
    assert parts[0, 0] == part
    np.testing.assert_allclose(got[0, 0], closest, atol=1e-12)


def test_upsampling_rows_follow_the_deformation_transfer_rule():
    fine = np.array([[0.25, 0.25, 1.5], [0.5, -1, 2], [-1, -1, 1], [0.0, 1, 1]])
    rows, cols, values = upsampling_matrix(TRIANGLE, np.array([[0, 1, 2]]), fine)
    assert rows.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3] and cols.tolist() == [0, 1, 2] * 4
    u = values.reshape(4, 3)
    np.testing.assert_allclose(u[0], [0.5, 0.25, 0.25], atol=1e-12)  # barycentric of the projection
    np.testing.assert_allclose(u[1], [1.5, 0.5, 0], atol=1e-12)      # edge: fitted to the vertex itself
    np.testing.assert_allclose(u[2], [1, 0, 0])                      # corner
    np.testing.assert_allclose(u[3], [0, 0, 1], atol=1e-12)          # coincides with v2: interior weights


def test_icosphere_hierarchy_matrices():
    verts, faces = icosphere(2)
    h = build_mesh_hierarchy(verts, faces, factors=(2, 2), seq_lengths=(9, 9), dilations=(1, 1))
    assert h.num_vertices == (162, 81, 41)
    for step in range(2):
        down = h.down_matrix(step)
        np.testing.assert_array_equal(down.sum(axis=1).A.ravel(), 1.0)   # a selection: row-stochastic 0/1
        np.testing.assert_array_equal(down @ h.vertices[step], h.vertices[step + 1])
        up = h.up_matrix(step)
        assert np.all(np.diff(up.tocsr().indptr) <= 3) and len(h.up_values[step]) == 3 * h.num_vertices[step]
        _, parts, _ = nearest_surface_points(h.vertices[step], h.vertices[step + 1], h.faces[step + 1])
        interior = parts == 0
        np.testing.assert_allclose(up.sum(axis=1).A.ravel()[interior], 1.0, atol=1e-9)  # barycentric rows
        # surviving vertices are reproduced exactly (weight 1 on themselves)
        survivors = (up @ h.vertices[step + 1])[h.kept[step]]
        np.testing.assert_allclose(survivors, h.vertices[step + 1], atol=1e-12)
        assert np.abs(up @ h.vertices[step + 1] - h.vertices[step]).max() < 0.3  # close to the unit sphere
    dense = h.dense_up_matrices()
    assert [d.shape for d in dense] == [(162, 81), (81, 41)] and dense[0].dtype == np.float32


# ------------------------------------------------------------------------------------------ spirals

FAN = np.array([[0, 1, 2], [0, 2, 3], [0, 3, 4], [0, 4, 1]])  # vertex 0 surrounded by 1..4, counter-clockwise


def test_one_ring_circulator_order():
    rings = one_rings(FAN, 5)
    assert rings[0] == [4, 3, 2, 1]  # starts after 0 in the last face (0, 4, 1), then clockwise
    assert rings[1] == [4, 0, 2]     # boundary: starts at the open half-edge 1 -> 4
    assert rings[3] == [2, 0, 4]


def test_spirals_on_a_sphere_follow_the_ring_rule():
    verts, faces = icosphere(2)
    spirals = spiral_indices(verts, faces, seq_length=9)
    rings = one_rings(faces, len(verts))
    assert spirals.shape == (162, 9) and spirals.dtype == np.int64
    for v in range(len(verts)):
        ring = rings[v]
        assert spirals[v, 0] == v and len(set(spirals[v].tolist())) == 9
        assert spirals[v, 1:1 + len(ring)].tolist() == ring
        # the second ring starts at the first new neighbour after ring[0]'s first first-ring neighbour
        walk = rings[ring[0]]
        first = next(k for k, u in enumerate(walk) if u in ring)
        expected = next(u for u in walk[first + 1:] + walk[:first] if u not in ring and u != v)
        assert spirals[v, 1 + len(ring)] == expected


def test_spirals_fall_back_to_nearest_vertices_when_rings_run_out():
    verts = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1.1, 0], [-1.2, 0, 0], [0, -1.3, 0]])
    spirals = spiral_indices(verts, FAN, seq_length=5)
    assert spirals[0].tolist() == [0, 1, 2, 3, 4]  # rings exhausted: Euclidean order
    assert spirals[1].tolist() == [1, 4, 0, 2, 3]  # boundary ring [4, 0, 2], then the next ring [3]
    dilated = spiral_indices(*icosphere(1), seq_length=3, dilation=2)
    full = spiral_indices(*icosphere(1), seq_length=6)
    np.testing.assert_array_equal(dilated, full[:, ::2])


# ------------------------------------------------------------------------------------------ cache


def test_cache_is_reused_and_invalidated_by_a_changed_input(tmp_path, monkeypatch):
    verts, faces = icosphere(1)
    first, path = load_or_build_mesh_hierarchy(verts, faces, tmp_path, factors=(2,), seq_lengths=(9,),
                                               dilations=(1,))
    assert path.parent == tmp_path and path.is_file()

    def refuse(*args, **kwargs):
        raise AssertionError("rebuilt although the cache holds this input")
    monkeypatch.setattr(hierarchy_module, "build_mesh_hierarchy", refuse)
    second, same_path = load_or_build_mesh_hierarchy(verts, faces, tmp_path, factors=(2,), seq_lengths=(9,),
                                                     dilations=(1,))
    assert same_path == path
    for name in ("vertices", "faces", "kept", "up_rows", "up_cols", "up_values", "spirals"):
        for a, b in zip(getattr(first, name), getattr(second, name)):
            np.testing.assert_array_equal(a, b)
    moved = verts.copy()
    moved[0] *= 1.01
    with pytest.raises(AssertionError, match="rebuilt"):
        load_or_build_mesh_hierarchy(moved, faces, tmp_path, factors=(2,), seq_lengths=(9,), dilations=(1,))
    with pytest.raises(AssertionError, match="rebuilt"):  # a changed setting is another input too
        load_or_build_mesh_hierarchy(verts, faces, tmp_path, factors=(2,), seq_lengths=(7,), dilations=(1,))


def test_default_cache_folder_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("UNIHOPE_CACHE_DIR", str(tmp_path / "c"))
    assert hierarchy_module.default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("UNIHOPE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert hierarchy_module.default_cache_dir() == tmp_path / "x" / "unihope"


# ------------------------------------------------------------------------------------------ real MANO


def _digest(array, dtype):
    return hashlib.sha256(np.ascontiguousarray(array, dtype=dtype).tobytes()).hexdigest()[:16]


@pytest.mark.skipif(not os.environ.get("MANO_ROOT_REAL"), reason="set MANO_ROOT_REAL to a folder with the real "
                    "MANO_RIGHT.pkl to check the official checksums")
def test_real_mano_hierarchy_matches_the_official_checksums(tmp_path):
    """Level 0 (faces, spirals) depends only on the MANO faces. The deeper levels of the official assets were
    decimated from a posed template (template.ply), not from the MANO rest pose, so they are not compared."""
    from utils.mano_io import load_mano_assets

    mano = load_mano_assets(os.environ["MANO_ROOT_REAL"], "right")
    hierarchy, _ = load_or_build_mesh_hierarchy(mano.v_template, mano.faces, tmp_path)
    assert _digest(hierarchy.faces[0], np.int64) == "56db13a9e20d2e50"
    assert hierarchy.spirals[0][0].tolist() == [0, 27, 94, 61, 3, 2, 1, 26, 24]
    assert _digest(hierarchy.spirals[0], np.int64) == "1e5a0cadeb154c8e"
    assert hierarchy.num_vertices == (778, 389, 195, 98, 49)
