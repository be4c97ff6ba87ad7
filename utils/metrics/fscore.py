"""The mesh F-score (FreiHAND / HO3D definition), counted with a compiled uniform-grid search.

For one sample with threshold t: ``P = frac(gt points whose nearest pred point is at distance < t)``,
``R = frac(pred points whose nearest gt point is at distance < t)`` (strict ``<`` as the official code),
``F = 2PR / (P + R)`` and ``F = 0`` when ``P + R = 0``. (The official code swaps the names precision and
recall; F is symmetric, so the value is the same.)

Exactness: a distance is ``sqrt((dx*dx + dy*dy) + dz*dz)`` in float64, as a KD-tree computes it (scipy
``cKDTree``, the reference in the tests; the official code uses Open3D's). ``sqrt`` is correctly rounded, so
``sqrt(s) < t`` holds exactly when ``s`` is below the smallest float whose root is ``>= t``; the search
compares the squared sums with that limit and every count equals the KD-tree's (numba keeps IEEE order and
rounding without ``fastmath``: docs/libraries.md A.11).

Only "is the nearest distance below each threshold" is needed. For a pair of thresholds, each point gets a
*level*: 0 if some point of the other set is closer than the small threshold, 1 if only closer than the large
one, else 2. Per sample (numba; samples in parallel over the cores):
1. pred point i and GT point i correspond (same mesh vertex): their distance gives both a first level;
   pred points already at level 0 are *skipped* in step 3;
2. a uniform grid over both sets' bounding box, cells just over twice the large threshold wide in x and y
   and half of it in z: every point closer than the large threshold to a query lies in one block of 2 x 2
   columns around it, within a few z cells (the rounding of the coordinates included: see ``_WINDOW_MARGIN``).
   The GT points are counting-sorted into every block holding their column (four copies), by z cell, so
   that each query's candidates are one contiguous run;
3. every pred point not skipped scans its run, which gives its level and lowers the levels of the GT points
   in the run (each pair is seen once, for both directions);
4. the pairs of the skipped pred points, from the cheaper side: those pred points scan their runs too, or the
   GT points still above level 0 scan runs of a grid of the skipped pred points.
The grid has at most a few cells per point (larger cells for widely spread sets): a prediction spread over
metres gets coarse cells, down to one cell (a brute-force scan) for extreme coordinates.
"""
import numpy as np
from numba import njit, prange

from utils.metrics.arrays import as_points

__all__ = ["F_SCORE_THRESHOLDS_M", "f_scores"]

F_SCORE_THRESHOLDS_M = (0.005, 0.015)  # metres: F@5mm, F@15mm

_CELL_SIZE = np.array([2.00001, 2.00001, 0.5])  # grid cell (x, y, z), in units of the large threshold
# Search box: threshold * _WINDOW_GROW + _WINDOW_MARGIN cells either side of the query. A computed distance
# below the threshold means coordinate differences below threshold * (1 + 4 eps); the cell coordinates
# (v - low) * inv of points at most 2**20 cells from the origin are off by at most ~2**20 * 2 eps cells: both
# far inside the margins. Cells wider than 2 * _WINDOW_GROW / (1 - 2 * _WINDOW_MARGIN) thresholds keep the box
# within 2 columns in x and y (one block).
_WINDOW_GROW, _WINDOW_MARGIN = 1.0 + 1e-6, 1e-6
_CELLS_PER_POINT = 8  # grid cap: at most this many cells per point of the sample (plus _MIN_CELLS)
_MIN_CELLS = 64


@njit(cache=True)
def _grid_shape(pred, gt, cell, max_cells):
    """Origin (3,), cells per axis (3,) and 1 / cell size per axis (3,) of the grid over both sets' bounding box.

    ``cell`` (3,) is the wanted cell size; cells grow (by a common factor) until there are at most ``max_cells``.
    """
    low = np.full(3, np.inf)
    high = np.full(3, -np.inf)
    for points in (pred, gt):
        for i in range(points.shape[0]):
            for c in range(3):
                low[c] = min(low[c], points[i, c])
                high[c] = max(high[c], points[i, c])
    dims = np.ones(3, dtype=np.int64)
    inv = 1.0 / cell
    while True:
        total = 1.0
        for c in range(3):
            span = (high[c] - low[c]) * inv[c]
            if not span < 2.0 ** 20:  # huge or overflowed extent: one cell (brute force)
                return low, np.ones(3, dtype=np.int64), np.zeros(3)
            dims[c] = np.int64(np.floor(span)) + 1
            total *= dims[c]
        if total <= max_cells:
            return low, dims, inv
        inv *= 0.99 * (max_cells / total) ** (1.0 / 3.0)


@njit(cache=True, inline="always")
def _cell_index(v, low, size, inv):
    """Cell index of coordinate ``v`` on one axis, clamped to ``[0, size)``."""
    g = np.floor((v - low) * inv)
    if not g > 0.0:
        return 0
    if g >= size - 1:
        return size - 1
    return np.int64(g)


@njit(cache=True)
def _block_cells(cell, has_left, has_below, column_step, row_step):
    """The cells (block, z) holding a point of cell ``cell``: its own column's block and, where they exist, the
    blocks one column left, one row below and both (a 2 x 2 block starts at its lower-left column)."""
    return (cell, cell - column_step if has_left else -1, cell - row_step if has_below else -1,
            cell - column_step - row_step if has_left and has_below else -1)


@njit(cache=True)
def _sort_into_blocks(points, use, grid, xyz, index, cells):
    """Counting sort of ``points[use]`` into blocks of 2 x 2 columns, each point into the (up to) four blocks
    that hold its column; within a block by z cell. Block (bx, by) = columns bx, bx + 1 times by, by + 1; its
    z cell k holds ``xyz[:, starts[c]:starts[c + 1]]`` with ``c = (bx * ny + by) * nz + k``, so any z range of a
    block is one contiguous run. ``index`` gets each entry's row in ``points`` (``cells``: scratch, one per
    point); returns the number of entries.
    """
    low, dims, inv, _, starts = grid
    num_cells = dims[0] * dims[1] * dims[2]
    row_step, column_step = dims[2], dims[1] * dims[2]
    starts[:num_cells + 1] = 0
    for i in range(points.shape[0]):
        if use[i]:
            ix = _cell_index(points[i, 0], low[0], dims[0], inv[0])
            iy = _cell_index(points[i, 1], low[1], dims[1], inv[1])
            cell = ix * column_step + iy * row_step + _cell_index(points[i, 2], low[2], dims[2], inv[2])
            cells[i] = 4 * cell + (ix > 0) + 2 * (iy > 0)
            for target in _block_cells(cell, ix > 0, iy > 0, column_step, row_step):
                if target >= 0:
                    starts[target] += 1
    total = 0
    for c in range(num_cells):  # starts[c] = end of cell c; the fill below moves it back to its start
        total += starts[c]
        starts[c] = total
    starts[num_cells] = total
    for i in range(points.shape[0]):
        if use[i]:
            cell, flags = cells[i] >> 2, cells[i] & 3
            for target in _block_cells(cell, flags & 1, flags & 2, column_step, row_step):
                if target >= 0:
                    slot = starts[target] - 1
                    starts[target] = slot
                    xyz[0, slot], xyz[1, slot], xyz[2, slot] = points[i, 0], points[i, 1], points[i, 2]
                    index[slot] = i
    return total


@njit(cache=True, inline="always")
def _window(v, low, size, inv, half_width):
    """First and last cell index, clamped to ``[0, size)``, of ``[v - r, v + r]`` on one axis; ``half_width`` is
    ``r * inv`` plus the rounding margin."""
    g = (v - low) * inv
    first, last = np.floor(g - half_width), np.floor(g + half_width)
    lo = 0 if not first > 0.0 else (size - 1 if first >= size - 1 else np.int64(first))
    hi = 0 if not last > 0.0 else (size - 1 if last >= size - 1 else np.int64(last))
    return lo, hi


@njit(cache=True, inline="always")
def _level(sq, limits):
    """0 if the squared distance ``sq`` is below both squared limits (small, large), 1 if only below the large
    one, else 2."""
    return (sq >= limits[0]) + (sq >= limits[1])


@njit(cache=True, inline="always")
def _scan(points, i, grid, xyz, level, limits, other_levels):
    """``points[i]``'s level (starting from ``level``) against the grid entries of its search box, lowering
    their ``other_levels`` (entry order) on the way.

    The box is at most 2 x 2 columns (cells are more than twice the reach wide in x and y), i.e. one block:
    one contiguous run. Integer levels instead of float minima let LLVM vectorise the loop (it does not
    vectorise a float min reduction); the unsigned index needs no negative-index wraparound.
    """
    low, dims, inv, half_width, starts = grid
    x, y, z = points[i, 0], points[i, 1], points[i, 2]
    block = _window(x, low[0], dims[0], inv[0], half_width[0])[0] * dims[1] \
        + _window(y, low[1], dims[1], inv[1], half_width[1])[0]
    z_lo, z_hi = _window(z, low[2], dims[2], inv[2], half_width[2])
    for k in range(np.uint64(starts[block * dims[2] + z_lo]), np.uint64(starts[block * dims[2] + z_hi + 1])):
        dx, dy, dz = x - xyz[0, k], y - xyz[1, k], z - xyz[2, k]
        pair = _level(dx * dx + dy * dy + dz * dz, limits)  # summed left to right, as the KD-tree does
        level = min(level, pair)
        other_levels[k] = min(other_levels[k], pair)
    return level


@njit(cache=True)
def _lower(levels, index, entry_levels, count):
    """levels[index[k]] = min(levels[index[k]], entry_levels[k]) for the first ``count`` entries."""
    for k in range(count):
        levels[index[k]] = min(levels[index[k]], entry_levels[k])


@njit(cache=True)
def _sample_levels(pred, gt, limits, reach, max_cells, buffers, pred_levels, gt_levels):
    """Fill the levels of one sample's pred and GT points (steps in the module docstring); ``reach`` is the
    large threshold, ``buffers`` = (starts (max_cells + 1,), xyz (3, 4P), index (4P,), entry levels (4P,),
    cells (P,)) with P >= both set sizes."""
    starts, xyz, index, entry_levels, cells = buffers
    num_pred, num_gt = pred.shape[0], gt.shape[0]
    pred_levels[:] = 2
    gt_levels[:] = 2
    for i in range(min(num_pred, num_gt)):  # 1. corresponding vertices
        dx, dy, dz = pred[i, 0] - gt[i, 0], pred[i, 1] - gt[i, 1], pred[i, 2] - gt[i, 2]
        pred_levels[i] = gt_levels[i] = _level(dx * dx + dy * dy + dz * dz, limits)
    skipped = pred_levels == 0  # their pairs are left to step 4
    low, dims, inv = _grid_shape(pred, gt, reach * _CELL_SIZE, max_cells)  # 2.
    grid = (low, dims, inv, reach * inv * _WINDOW_GROW + _WINDOW_MARGIN, starts)
    count = _sort_into_blocks(gt, np.ones(num_gt, dtype=np.bool_), grid, xyz, index, cells)
    entry_levels[:count] = 2
    for i in range(num_pred):  # 3.
        if not skipped[i]:
            pred_levels[i] = _scan(pred, i, grid, xyz, pred_levels[i], limits, entry_levels)
    _lower(gt_levels, index, entry_levels, count)
    num_open = 0  # 4.
    for j in range(num_gt):
        num_open += gt_levels[j] > 0
    if skipped.sum() < num_open:  # from the pred side (lowering the GT levels)
        for i in range(num_pred):
            if skipped[i]:
                _scan(pred, i, grid, xyz, 0, limits, entry_levels)
        _lower(gt_levels, index, entry_levels, count)
    elif num_open > 0:  # from the GT side, against a grid of the skipped pred points
        _sort_into_blocks(pred, skipped, grid, xyz, index, cells)
        for j in range(num_gt):
            if gt_levels[j] > 0:
                gt_levels[j] = _scan(gt, j, grid, xyz, gt_levels[j], limits, entry_levels)


@njit(cache=True)
def _all_finite(points):
    for i in range(points.shape[0]):
        for c in range(3):
            if not np.isfinite(points[i, c]):
                return False
    return True


@njit(cache=True, parallel=True)
def _covered_counts(pred, gt, limits, reach):
    """Per sample, how many GT points are covered by pred and how many pred points by GT, at two thresholds.

    Args:
        pred: (B, Pp, 3). gt: (B, Pg, 3).
        limits: squared limits (small, large) of the two thresholds (see ``_squared_limit``).
        reach: the large threshold.

    Returns:
        gt_counts (B, 2), pred_counts (B, 2) int64 (small, large threshold); finite (B, 2) bool: whether the
        sample's pred / GT points are all finite (its counts are left 0 where not).
    """
    batch = pred.shape[0]
    gt_counts = np.zeros((batch, 2), dtype=np.int64)
    pred_counts = np.zeros((batch, 2), dtype=np.int64)
    finite = np.zeros((batch, 2), dtype=np.bool_)
    num_points = max(pred.shape[1], gt.shape[1])
    max_cells = _CELLS_PER_POINT * (pred.shape[1] + gt.shape[1]) + _MIN_CELLS
    for b in prange(batch):
        finite[b, 0], finite[b, 1] = _all_finite(pred[b]), _all_finite(gt[b])
        if finite[b, 0] and finite[b, 1]:
            buffers = (np.empty(max_cells + 1, dtype=np.int64), np.empty((3, 4 * num_points)),
                       np.empty(4 * num_points, dtype=np.int64), np.empty(4 * num_points, dtype=np.int64),
                       np.empty(num_points, dtype=np.int64))
            pred_levels = np.empty(pred.shape[1], dtype=np.int64)
            gt_levels = np.empty(gt.shape[1], dtype=np.int64)
            _sample_levels(pred[b], gt[b], limits, reach, max_cells, buffers, pred_levels, gt_levels)
            for column in range(2):
                gt_counts[b, column] = (gt_levels <= column).sum()
                pred_counts[b, column] = (pred_levels <= column).sum()
    return gt_counts, pred_counts, finite


def _squared_limit(threshold):
    """The smallest float ``s`` with ``sqrt(s) >= threshold``: ``sq < s`` exactly when ``sqrt(sq) < threshold``."""
    limit = np.float64(threshold) * threshold
    while np.sqrt(limit) >= threshold:
        limit = np.nextafter(limit, 0.0)
    while np.sqrt(limit) < threshold:
        limit = np.nextafter(limit, np.inf)
    return limit


def f_scores(pred, gt, thresholds=F_SCORE_THRESHOLDS_M):
    """Per-sample F-scores of predicted vs GT point sets (e.g. the 778 MANO vertices).

    Args:
        pred: (B, Pp, 3) metres. gt: (B, Pg, 3) metres. Pp, Pg >= 1 and every coordinate finite, else
            ValueError naming the array.
        thresholds: distances in metres, finite and > 0 (default 5 mm and 15 mm).

    Returns:
        (B, T) float64 in [0, 1], one column per threshold in the order given.
    """
    pred = as_points(pred, "pred", copy=False)
    gt = as_points(gt, "gt", batch=pred.shape[0], copy=False)
    limits = np.asarray(thresholds, dtype=np.float64)
    if limits.ndim != 1 or len(limits) == 0 or not np.all(np.isfinite(limits) & (limits > 0)):
        raise ValueError(f"thresholds must be a 1-D sequence of finite distances > 0, got {thresholds!r}")
    for points, name in ((pred, "pred"), (gt, "gt")):
        if points.shape[1] == 0:
            raise ValueError(f"{name}: no points (shape {points.shape})")
    order = np.argsort(limits, kind="stable")
    gt_covered = np.empty((len(gt), len(limits)))
    pred_covered = np.empty_like(gt_covered)
    for start in range(0, len(order), 2):  # two thresholds per pass
        columns = order[start:start + 2] if start + 1 < len(order) else order[[start, start]]
        squared = (_squared_limit(limits[columns[0]]), _squared_limit(limits[columns[1]]))
        gt_counts, pred_counts, finite = _covered_counts(pred, gt, squared, limits[columns[1]])
        for flag, name in zip(finite.T, ("pred", "gt")):
            if not flag.all():
                raise ValueError(f"{name}: non-finite coordinates (NaN or inf) in sample(s) "
                                 f"{np.flatnonzero(~flag)[:10].tolist()}")
        gt_covered[:, columns] = gt_counts / gt.shape[1]  # (B, 2)
        pred_covered[:, columns] = pred_counts / pred.shape[1]
    total = gt_covered + pred_covered
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = np.where(total > 0, 2 * gt_covered * pred_covered / total, 0.0)
    return scores
