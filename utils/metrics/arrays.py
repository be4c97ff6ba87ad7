"""Input checking shared by the metric functions: array-likes -> float64 numpy arrays of checked shape."""
import numpy as np

__all__ = ["to_numpy", "as_float_array", "as_points"]


def to_numpy(x):
    """numpy view of ``x``; torch tensors (any device, maybe requiring grad) are detached and moved to CPU."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def as_float_array(x, name, shape, copy=True):
    """Return ``x`` as a C-contiguous float64 array with a checked shape.

    Args:
        x: array-like (numpy, torch tensor, nested lists).
        name: argument name used in error messages.
        shape: expected shape; ``None`` entries accept any size.
        copy: True -> always a new array (never a view of the caller's data), for callers that write to it;
            False -> ``x`` itself when it already is a C-contiguous float64 array, for read-only use.
    """
    arr = np.array(to_numpy(x), dtype=np.float64, copy=True, order="C") if copy else \
        np.ascontiguousarray(to_numpy(x), dtype=np.float64)
    if arr.ndim != len(shape) or any(want is not None and got != want for got, want in zip(arr.shape, shape)):
        wanted = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name}: expected shape {wanted}, got {arr.shape}")
    return arr


def as_points(x, name, num_points=None, batch=None, copy=True):
    """``x`` as a float64 (B, P, 3) array (see ``as_float_array`` for ``copy``); ``num_points`` / ``batch`` fix
    P / B when given."""
    return as_float_array(x, name, (batch, num_points, 3), copy)
