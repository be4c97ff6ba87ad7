"""MANO file reading without chumpy, folder resolution, errors, and the stand-in asset's properties."""
import pickle

import numpy as np
import pytest
import scipy.sparse
import trimesh

from data_creation.standin_mano.make_standin_mano import STANDIN_LABEL, main as make_standin_main, write_standin_mano
from utils.hand_conventions import FINGERTIP_VERTS_HO3D, FINGERTIP_VERTS_MANOPTH_RIGHT, MANO_PARENTS
from utils.mano_io import MANO_PICKLE_GROUPS, ManoFileError, load_mano_assets, resolve_mano_root
from utils.safe_pickle import ChumpyCh, ChumpySelect, UnsafePickleError, load_pickle

OFFICIAL_KEYS = {"v_template", "f", "J_regressor", "weights", "kintree_table", "shapedirs", "posedirs",
                 "hands_components", "hands_mean", "hands_coeffs", "J", "bs_style", "bs_type"}


def test_standin_file_has_the_official_format(standin_mano_root):
    path = standin_mano_root / "MANO_RIGHT.pkl"
    raw_bytes = path.read_bytes()
    assert raw_bytes[:2] == b"\x80\x02"  # protocol 2
    for name in (b"chumpy.ch\nCh\n", b"chumpy.reordering\nSelect\n", b"numpy.core.multiarray\n_reconstruct\n",
                 b"scipy.sparse.csc\ncsc_matrix\n"):
        assert name in raw_bytes
    assert b"_codecs" not in raw_bytes  # array data is stored as Python-2 str, not Python-3 bytes
    raw = load_pickle(path, groups=MANO_PICKLE_GROUPS)
    assert set(raw) == OFFICIAL_KEYS
    assert raw["f"].dtype == np.uint32 and raw["f"].shape == (1538, 3)
    assert isinstance(raw["J_regressor"], scipy.sparse.csc_matrix) and raw["J_regressor"].shape == (16, 778)
    assert raw["kintree_table"][0, 0] == 4294967295 and list(raw["kintree_table"][1]) == list(range(16))
    assert raw["bs_style"] == "lbs" and raw["bs_type"] == "lrotmin"
    assert raw["hands_coeffs"].shape == (1554, 45) and raw["J"].shape == (16, 3)
    select = raw["shapedirs"]
    assert isinstance(select, ChumpySelect) and isinstance(select.state["a"], ChumpyCh)
    full = select.state["a"].state["x"]
    assert full.shape == (778, 3, 20) and select.state["idxs"].shape == (23340,)
    assert tuple(select.state["preferred_shape"]) == (778, 3, 10)
    assets = load_mano_assets(standin_mano_root, "right")
    assert np.array_equal(assets.shapedirs, full[:, :, :10])
    assert np.allclose(raw["J"], assets.J_regressor @ assets.v_template)


def test_assets_have_the_documented_shapes_and_dtypes(standin_mano_root):
    a = load_mano_assets(standin_mano_root, "left")
    shapes = {"v_template": (778, 3), "faces": (1538, 3), "J_regressor": (16, 778), "weights": (778, 16),
              "kintree_parents": (16,), "shapedirs": (778, 3, 10), "posedirs": (778, 3, 135),
              "hands_components": (45, 45), "hands_mean": (45,)}
    for key, shape in shapes.items():
        assert getattr(a, key).shape == shape, key
    assert a.faces.dtype == np.int64 and a.v_template.dtype == np.float64 and a.side == "left"
    assert list(a.kintree_parents) == list(MANO_PARENTS)


def test_code_in_a_mano_file_is_refused_without_running(tmp_path, monkeypatch):
    class SystemCall:
        def __reduce__(self):
            import os
            return (os.system, ("touch PWNED",))

    monkeypatch.chdir(tmp_path)
    (tmp_path / "MANO_RIGHT.pkl").write_bytes(pickle.dumps({"v_template": SystemCall()}, protocol=2))
    with pytest.raises(UnsafePickleError, match="MANO_RIGHT.pkl.*system"):
        load_mano_assets(tmp_path, "right")
    assert not (tmp_path / "PWNED").exists()


def test_missing_file_says_where_it_looked_and_where_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_mano_assets(tmp_path, "left")
    message = str(err.value)
    assert str(tmp_path / "MANO_LEFT.pkl") in message and "https://mano.is.tue.mpg.de" in message
    assert "make_standin_mano" in message


def test_missing_key_and_bad_shape_name_the_file_and_key(standin_mano_root, tmp_path):
    raw = load_pickle(standin_mano_root / "MANO_RIGHT.pkl", groups=MANO_PICKLE_GROUPS)
    raw["shapedirs"] = np.zeros((778, 3, 10))
    del raw["weights"]
    (tmp_path / "MANO_RIGHT.pkl").write_bytes(pickle.dumps(raw, protocol=2))
    with pytest.raises(ManoFileError, match=r"MANO_RIGHT.pkl: missing key 'weights'"):
        load_mano_assets(tmp_path, "right")
    raw["weights"] = np.zeros((778, 15))
    (tmp_path / "MANO_RIGHT.pkl").write_bytes(pickle.dumps(raw, protocol=2))
    with pytest.raises(ManoFileError, match=r"'weights' has shape \(778, 15\), expected \(778, 16\)"):
        load_mano_assets(tmp_path, "right")


def test_mano_root_comes_from_argument_or_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("MANO_ROOT", raising=False)
    with pytest.raises(FileNotFoundError, match="MANO_ROOT.*https://mano.is.tue.mpg.de"):
        resolve_mano_root(None)
    monkeypatch.setenv("MANO_ROOT", str(tmp_path))
    assert resolve_mano_root(None) == tmp_path
    explicit = tmp_path / "other"
    explicit.mkdir()
    assert resolve_mano_root(str(explicit)) == explicit
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'missing'}.*does not exist"):
        resolve_mano_root(tmp_path / "missing")


def test_standin_surface_counts_and_topology(mano_assets):
    a = mano_assets["right"]
    assert a.v_template.shape == (778, 3) and a.faces.shape == (1538, 3)
    assert set(np.unique(a.faces)) == set(range(778))
    mesh = trimesh.Trimesh(a.v_template, a.faces, process=False)
    assert mesh.is_winding_consistent
    edges = np.sort(mesh.edges, axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert counts.max() == 2 and (counts == 1).sum() == 16  # one 16-edge boundary loop (the wrist)
    capped = trimesh.Trimesh(a.v_template, np.concatenate([a.faces, _wrist_cap(a.faces)]), process=False)
    assert capped.is_watertight and capped.volume > 0  # faces point outwards
    assert 150e-3 < np.ptp(a.v_template[:, 0]) < 250e-3  # hand length in metres


def _wrist_cap(faces):
    """Fan faces closing the boundary loop (orientation from the boundary's directed edges)."""
    directed = {(int(f[i]), int(f[(i + 1) % 3])) for f in faces for i in range(3)}
    nxt = {b: a for a, b in directed if (b, a) not in directed}  # reversed boundary edges
    loop = [min(nxt)]
    while len(loop) < len(nxt):
        loop.append(nxt[loop[-1]])
    return np.array([(loop[0], loop[i], loop[i + 1]) for i in range(1, len(loop) - 1)])


def test_standin_regressor_weights_and_pca_basis(mano_assets):
    a = mano_assets["right"]
    assert a.J_regressor.min() >= 0 and np.allclose(a.J_regressor.sum(1), 1.0)
    assert a.weights.min() >= 0 and np.allclose(a.weights.sum(1), 1.0)
    assert np.allclose(a.hands_components @ a.hands_components.T, np.eye(45), atol=1e-10)
    joints = a.J_regressor @ a.v_template
    for child in range(1, 16):  # every bone has a length and points away from the wrist
        assert np.linalg.norm(joints[child] - joints[MANO_PARENTS[child]]) > 0.015
    assert np.abs(a.posedirs).max() < 0.005 and np.abs(a.shapedirs).max() < 0.01  # metres per unit


def test_standin_fingertips_are_at_the_finger_ends(mano_assets):
    a = mano_assets["right"]
    joints = a.J_regressor @ a.v_template
    dominant = a.weights.argmax(1)
    for tip, distal_joint in zip(FINGERTIP_VERTS_MANOPTH_RIGHT, (15, 3, 6, 12, 9)):
        finger = np.where(dominant == distal_joint)[0]
        reach = np.linalg.norm(a.v_template[finger] - joints[0], axis=1)
        assert finger[np.argmax(reach)] == tip
    for ho3d_tip, tip in zip(FINGERTIP_VERTS_HO3D, FINGERTIP_VERTS_MANOPTH_RIGHT):
        assert np.linalg.norm(a.v_template[ho3d_tip] - a.v_template[tip]) < 0.01
    assert np.linalg.norm(a.v_template[445] - a.v_template[444]) < 0.01  # manopth's left middle tip


def test_left_file_is_the_mirrored_right_with_unfixed_shapedirs(mano_assets):
    right, left = mano_assets["right"], mano_assets["left"]
    assert np.array_equal(left.v_template, right.v_template * [-1, 1, 1])
    assert np.array_equal(left.faces, right.faces[:, ::-1])
    assert np.array_equal(left.shapedirs, right.shapedirs)  # like the released MANO_LEFT.pkl (B.4)
    assert np.array_equal(left.hands_components, right.hands_components * np.tile([1, -1, -1], 15))


def test_writer_is_deterministic_and_labelled(tmp_path, capsys):
    first, _ = write_standin_mano(tmp_path / "a", seed=0)
    second, _ = write_standin_mano(tmp_path / "b", seed=0)
    third, _ = write_standin_mano(tmp_path / "c", seed=1)
    assert first.read_bytes() == second.read_bytes() != third.read_bytes()
    assert "NOT the MANO model" in (tmp_path / "a" / "README.txt").read_text()
    make_standin_main(["--out", str(tmp_path / "cli")])
    assert STANDIN_LABEL in capsys.readouterr().out
    assert (tmp_path / "cli" / "MANO_LEFT.pkl").is_file()
