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
