"""Restricted unpickling: admits the classes of downloaded files, refuses code execution."""
import pickle

import numpy as np
import pytest
import scipy.sparse

from utils.safe_pickle import UnsafePickleError, chumpy_to_array, load_npy, load_pickle, loads_pickle


class _SystemCall:
    def __reduce__(self):
        import os
        return (os.system, ("touch SHOULD_NOT_EXIST",))


def test_os_system_reduce_is_refused_without_running(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"a": _SystemCall()}, protocol=2))
    with pytest.raises(UnsafePickleError) as err:
        load_pickle(path)
    assert "evil.pkl" in str(err.value) and "posix.system" in str(err.value)
    assert not (tmp_path / "SHOULD_NOT_EXIST").exists()


def test_numpy_and_sparse_content_loads(tmp_path):
    data = {"a": np.arange(6.0).reshape(2, 3), "b": scipy.sparse.csc_matrix(np.eye(3)), "c": "text",
            "d": np.float64(2.5), "e": {1, 2}}
    path = tmp_path / "meta.pkl"
    path.write_bytes(pickle.dumps(data, protocol=2))
    loaded = load_pickle(path)
    assert np.array_equal(loaded["a"], data["a"])
    assert np.array_equal(loaded["b"].toarray(), np.eye(3))
    assert loaded["c"] == "text" and loaded["d"] == 2.5 and loaded["e"] == {1, 2}


def test_chumpy_classes_need_the_chumpy_group(monkeypatch):
    import sys
    import types
    module = types.ModuleType("chumpy.ch")

    class Ch:  # pickled under chumpy.ch.Ch, like the MANO files
        def __init__(self, x):
            self.x = x

        def __getstate__(self):
            return {"x": self.x, "_dirty_vars": set()}
    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    module.Ch = Ch
    monkeypatch.setitem(sys.modules, "chumpy", types.ModuleType("chumpy"))
    monkeypatch.setitem(sys.modules, "chumpy.ch", module)
    payload = pickle.dumps({"shapedirs": Ch(np.ones((2, 3)))}, protocol=2)
    monkeypatch.delitem(sys.modules, "chumpy.ch")
    with pytest.raises(UnsafePickleError, match="chumpy.ch.Ch"):
        loads_pickle(payload)
    loaded = loads_pickle(payload, groups=("numpy", "builtins", "chumpy"))
    assert np.array_equal(chumpy_to_array(loaded["shapedirs"]), np.ones((2, 3)))


def test_object_npy_label_file(tmp_path):
    labels = {"id_3": True, "id_10": False}
    np.save(tmp_path / "grasp_s0_test.npy", labels)
    assert load_npy(tmp_path / "grasp_s0_test.npy") == labels
    np.save(tmp_path / "plain.npy", np.arange(4))
    assert np.array_equal(load_npy(tmp_path / "plain.npy"), np.arange(4))


def test_object_npy_with_code_is_refused(tmp_path):
    np.save(tmp_path / "hand_occ_s0_test.npy", np.array([_SystemCall()], dtype=object))
    with pytest.raises(UnsafePickleError, match="hand_occ_s0_test.npy"):
        load_npy(tmp_path / "hand_occ_s0_test.npy")


def _memo_bomb(width: int = 40, depth: int = 7) -> list:
    """Nested lists that reference one list ``width`` times per level: ~1 KB pickled, width**depth elements
    (40**7 = 1.6e11 floats, 1.3 TB) once numpy copies it into an array."""
    bomb = [0.0] * width
    for _ in range(depth - 1):
        bomb = [bomb] * width
    return bomb


def test_memo_bomb_mano_file_is_refused_in_small_memory(tmp_path):
    import tracemalloc

    from utils.errors import DataError
    from utils.mano_io import load_mano_assets

    (tmp_path / "MANO_RIGHT.pkl").write_bytes(pickle.dumps({"shapedirs": _memo_bomb()}, protocol=2))
    assert (tmp_path / "MANO_RIGHT.pkl").stat().st_size < 2000
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"MANO_RIGHT\.pkl: refusing a pickle that expands"):
            load_mano_assets(tmp_path, "right")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 100 * 2**20


def test_deep_nesting_and_self_reference_are_refused_with_the_file_named(tmp_path):
    from utils.errors import DataError

    levels = 100_000  # EMPTY_LIST x N, then APPEND x (N - 1): lists nested N deep (pickle.dumps would recurse)
    (tmp_path / "deep.pkl").write_bytes(b"\x80\x02" + b"]" * levels + b"a" * (levels - 1) + b".")
    with pytest.raises(DataError, match=r"deep\.pkl: refusing a pickle nested deeper than"):
        load_pickle(tmp_path / "deep.pkl")
    loop = [1.0]
    loop.append(loop)
    (tmp_path / "loop.pkl").write_bytes(pickle.dumps(loop, protocol=2))
    with pytest.raises(DataError, match=r"loop\.pkl: .*contains itself"):
        load_pickle(tmp_path / "loop.pkl")


def test_shared_references_within_the_budget_still_load():
    row = [1.0, 2.0]
    assert loads_pickle(pickle.dumps({"a": [row] * 100}, protocol=2))["a"][99] == row


def test_truncated_pickle_and_npy_files_name_the_file(tmp_path):
    from utils.errors import DataError

    data = pickle.dumps({"a": np.arange(100.0)}, protocol=2)
    (tmp_path / "meta.pkl").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"meta\.pkl: not a readable pickle"):
        load_pickle(tmp_path / "meta.pkl")
    np.save(tmp_path / "grasp.npy", np.array({"id_1": True, "id_2": False}, dtype=object), allow_pickle=True)
    whole = (tmp_path / "grasp.npy").read_bytes()
    (tmp_path / "grasp.npy").write_bytes(whole[:-5])
    with pytest.raises(DataError, match=r"grasp\.npy: not a readable pickle"):
        load_npy(tmp_path / "grasp.npy")
    np.save(tmp_path / "plain.npy", np.arange(1000.0))
    (tmp_path / "plain.npy").write_bytes((tmp_path / "plain.npy").read_bytes()[:500])
    with pytest.raises(DataError, match=r"plain\.npy: not a readable \.npy file"):
        load_npy(tmp_path / "plain.npy")
    (tmp_path / "text.npy").write_text("not numpy")
    with pytest.raises(DataError, match=r"text\.npy: not a readable \.npy file"):
        load_npy(tmp_path / "text.npy")
