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

from utils.errors import DataError, InputError


class UnsafePickleError(InputError, pickle.UnpicklingError):
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

# Bounds on what a pickle may expand to. Without shared references every element of a container or array costs at
# least one byte of the stream, so a legitimate file never expands to many more elements than it has bytes; a
# "memo bomb" (nested lists that reference the same list again and again) expands exponentially when numpy copies
# it into an array. Depth: the files read here nest a handful of levels.
MAX_DEPTH = 32
ELEMENTS_PER_BYTE = 4
MIN_ELEMENT_BUDGET = 1 << 16


def element_budget(num_bytes: int) -> int:
    """Most elements (container entries + array items) a pickle of ``num_bytes`` bytes may expand to."""
    return MIN_ELEMENT_BUDGET + ELEMENTS_PER_BYTE * int(num_bytes)


def _children(node: Any) -> list | None:
    """The contained objects of a container (None for a leaf)."""
    if isinstance(node, dict):
        return [*node.keys(), *node.values()]
    if isinstance(node, (list, tuple, set, frozenset)):
        return list(node)
    if isinstance(node, np.ndarray) and node.dtype.hasobject:
        return list(node.ravel())
    if isinstance(node, ChumpyStub):
        return list(node.state.values())
    return None


def _leaf_size(node: Any) -> int:
    if isinstance(node, np.ndarray):
        return int(node.size)
    return int(getattr(node, "nnz", 1))  # scipy sparse: stored values


def check_expansion(obj: Any, budget: int, source: str, max_depth: int = MAX_DEPTH) -> int:
    """Count the elements ``obj`` expands to when shared references are copied out (as ``np.asarray`` does).

    Shared sub-objects are counted once per reference but visited once (sizes are memoised), so the count costs
    time linear in the number of distinct objects, whatever the expansion.

    Returns:
        the element count.
    Raises:
        DataError: naming ``source``: nesting deeper than ``max_depth``, a container that contains itself, or
            more than ``budget`` elements.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def walk(node: Any, depth: int) -> int:
        if depth > max_depth:
            raise DataError(f"{source}: refusing a pickle nested deeper than {max_depth} levels")
        key = id(node)
        if key in sizes:
            return sizes[key]
        children = _children(node)
        if children is None:
            return _leaf_size(node)
        if key in open_nodes:
            raise DataError(f"{source}: refusing a pickle with a container that contains itself")
        open_nodes.add(key)
        total = 1
        for child in children:
            total += walk(child, depth + 1)
            if total > budget:
                raise DataError(f"{source}: refusing a pickle that expands to more than {budget} elements "
                                f"(shared references repeated: a decompression bomb, or not a file of this kind)")
        open_nodes.discard(key)
        sizes[key] = total
        return total

    return walk(obj, 0)


def loads_pickle(data: bytes, groups: Iterable[str] = DEFAULT_GROUPS, source: str = "<bytes>") -> Any:
    """Unpickle ``data`` through :class:`RestrictedUnpickler`, bounded by :func:`check_expansion`.

    Raises:
        UnsafePickleError: naming ``source`` and the refused class.
        DataError: naming ``source``: truncated or corrupt data, or a pickle that expands too far.
    """
    try:
        obj = RestrictedUnpickler(io.BytesIO(data), groups, source=source).load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError,
            MemoryError) as err:
        raise DataError(f"{source}: not a readable pickle (truncated or corrupt: {type(err).__name__}: {err})") \
            from None
    check_expansion(obj, element_budget(len(data)), source)
    return obj


def load_pickle(path: str | Path, groups: Iterable[str] = DEFAULT_GROUPS) -> Any:
    """Load a pickle file through :class:`RestrictedUnpickler` (the whole file is read first, so a forged length
    field cannot make the reader allocate more than the file's size).

    Raises:
        FileNotFoundError: naming the path.
        UnsafePickleError, DataError: as :func:`loads_pickle`, naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pickle file not found: {path}")
    return loads_pickle(path.read_bytes(), groups, source=str(path))


def load_npy(path: str | Path, groups: Iterable[str] = DEFAULT_GROUPS) -> Any:
    """Load a ``.npy`` file; object arrays (pickled) go through the restricted unpickler.

    A 0-d object array (the way ``np.save(path, some_dict)`` stores a dict) is returned as its item, like
    ``np.load(path, allow_pickle=True).item()``; any other array is returned as an ndarray.

    Raises:
        FileNotFoundError: naming the path.
        UnsafePickleError, DataError: naming the file (not a .npy file, truncated, corrupt or hostile content).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"npy file not found: {path}")
    data = path.read_bytes()
    stream = io.BytesIO(data)
    try:
        major, _ = np.lib.format.read_magic(stream)
        read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(stream)
        if not dtype.hasobject:
            expected = int(np.prod(shape)) * dtype.itemsize
            if len(data) - stream.tell() < expected:
                raise ValueError(f"{len(data) - stream.tell()} data bytes, the header announces {expected}")
            stream.seek(0)
            return np.load(stream, allow_pickle=False)
    except ValueError as err:
        raise DataError(f"{path}: not a readable .npy file (truncated or corrupt: {err})") from None
    array = loads_pickle(data[stream.tell():], groups, source=str(path))
    if not isinstance(array, np.ndarray):
        raise DataError(f"{path}: expected a pickled numpy array after the npy header, got {type(array).__name__}")
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
