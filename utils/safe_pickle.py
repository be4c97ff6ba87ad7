"""Restricted unpickling for the pickled files users download.

Pickles can run arbitrary code when loaded. Every pickle this project reads (MANO ``.pkl`` files, HO3D
``meta/*.pkl``, the object-array ``.npy`` label files ``grasp_*.npy`` / ``hand_occ_*.npy``) goes through
:class:`RestrictedUnpickler`, which only admits the classes such files are made of and refuses anything
else with an error naming the file and the class, before the class is ever called.

MANO pickles reference chumpy (``shapedirs`` is a ``chumpy.reordering.Select`` over a ``chumpy.ch.Ch``).
chumpy does not install on current Python, so those two classes are replaced by inert stubs that only keep
their pickled state; :func:`chumpy_to_array` evaluates them the way chumpy would.
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any, Iterable

import numpy as np


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for a class outside the allow-list."""


class ChumpyStub:
    """Inert stand-in for a pickled chumpy object: it only stores the pickled state dict."""

    chumpy_class = "?"

    def __init__(self, *args, **kwargs):
        self.state: dict = {}

    def __setstate__(self, state):
        self.state = dict(state)


class ChumpyCh(ChumpyStub):
    chumpy_class = "chumpy.ch.Ch"


class ChumpySelect(ChumpyStub):
    chumpy_class = "chumpy.reordering.Select"


def _numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


def _numpy_scalar():
    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar
    return scalar


def _sparse(name: str):
    import scipy.sparse  # only when a pickle holds a sparse matrix (MANO files do)

    return getattr(scipy.sparse, name)


# (module, name) -> zero-argument factory returning the object to admit.
_NUMPY = {
    **{(m, "_reconstruct"): _numpy_reconstruct for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(m, "scalar"): _numpy_scalar for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
}
_SCIPY_SPARSE = {
    (module, cls): (lambda cls=cls: _sparse(cls))
    for cls, modules in {
        "csc_matrix": ("scipy.sparse.csc", "scipy.sparse._csc", "scipy.sparse"),
        "csr_matrix": ("scipy.sparse.csr", "scipy.sparse._csr", "scipy.sparse"),
    }.items()
    for module in modules
}
_CHUMPY = {
    ("chumpy.ch", "Ch"): lambda: ChumpyCh,
    ("chumpy.reordering", "Select"): lambda: ChumpySelect,
}
_BUILTINS = {
    ("builtins", "set"): lambda: set,
    ("builtins", "frozenset"): lambda: frozenset,
    ("__builtin__", "set"): lambda: set,
    ("collections", "OrderedDict"): lambda: __import__("collections").OrderedDict,
    ("_codecs", "encode"): lambda: __import__("codecs").encode,  # how protocol-2 pickles store bytes
}

ALLOW_GROUPS = {"numpy": _NUMPY, "scipy_sparse": _SCIPY_SPARSE, "chumpy": _CHUMPY, "builtins": _BUILTINS}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that admits only the classes of the named allow-groups.

    Args:
        file: binary file object positioned at the pickle.
        groups: names from :data:`ALLOW_GROUPS` (``numpy``, ``scipy_sparse``, ``chumpy``, ``builtins``).
        source: file name used in error messages.
    """

    def __init__(self, file, groups: Iterable[str], source: str = "<pickle>", **kwargs):
        kwargs.setdefault("encoding", "latin1")  # MANO and HO3D pickles were written by Python 2
        super().__init__(file, **kwargs)
        self.source = source
        self.allowed: dict = {}
        for group in groups:
            if group not in ALLOW_GROUPS:
                raise KeyError(f"unknown allow-group {group!r}; known: {sorted(ALLOW_GROUPS)}")
            self.allowed.update(ALLOW_GROUPS[group])

    def find_class(self, module: str, name: str):
        factory = self.allowed.get((module, name))
        if factory is None:
            raise UnsafePickleError(
                f"{self.source}: refusing to load class '{module}.{name}': it is not among the classes "
                f"this kind of file may contain ({', '.join(sorted(f'{m}.{n}' for m, n in self.allowed))})")
        return factory()


DEFAULT_GROUPS = ("numpy", "scipy_sparse", "builtins")


def load_pickle(path: str | Path, groups: Iterable[str] = DEFAULT_GROUPS) -> Any:
    """Load a pickle file through :class:`RestrictedUnpickler`.

    Raises:
        FileNotFoundError: naming the path.
        UnsafePickleError: naming the file and the refused class.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pickle file not found: {path}")
    with path.open("rb") as f:
        return RestrictedUnpickler(f, groups, source=str(path)).load()


def loads_pickle(data: bytes, groups: Iterable[str] = DEFAULT_GROUPS, source: str = "<bytes>") -> Any:
    """Like :func:`load_pickle` for an in-memory pickle."""
    return RestrictedUnpickler(io.BytesIO(data), groups, source=source).load()


def load_npy(path: str | Path, groups: Iterable[str] = DEFAULT_GROUPS) -> Any:
    """Load a ``.npy`` file; object arrays (pickled) go through the restricted unpickler.

    A 0-d object array (the way ``np.save(path, some_dict)`` stores a dict) is returned as its item, like
    ``np.load(path, allow_pickle=True).item()``; any other array is returned as an ndarray.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"npy file not found: {path}")
    with path.open("rb") as f:
        major, _ = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        _, _, dtype = read_header(f)
        if not dtype.hasobject:
            f.seek(0)
            return np.load(f, allow_pickle=False)
        array = RestrictedUnpickler(f, groups, source=str(path)).load()
    if not isinstance(array, np.ndarray):
        raise ValueError(f"{path}: expected a pickled numpy array after the npy header, got {type(array).__name__}")
    return array.item() if array.shape == () else array


def chumpy_to_array(obj: Any) -> np.ndarray:
    """Evaluate a stubbed chumpy object (``Ch`` or ``Select``) or pass an array-like through.

    ``Ch`` holds its value in ``state['x']``; ``Select`` evaluates to
    ``a.ravel()[idxs].reshape(preferred_shape)`` (chumpy's own ``compute_r``).
    """
    if isinstance(obj, ChumpyCh):
        return np.asarray(obj.state["x"])
    if isinstance(obj, ChumpySelect):
        state = obj.state
        source = chumpy_to_array(state["a"]).ravel()
        out = source[np.asarray(state["idxs"]).ravel()]
        shape = state.get("preferred_shape")
        return out.reshape(shape) if shape is not None else out
    if hasattr(obj, "toarray"):  # scipy sparse
        return np.asarray(obj.toarray())
    return np.asarray(obj)
