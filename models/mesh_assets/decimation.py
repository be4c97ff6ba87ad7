"""Quadric-error edge-collapse decimation, the rule of psbody-mesh's ``qslim_decimator_transformer``
(COMA ``mesh_sampling.py``) as MobRecon / H2ONet used it to build their mesh hierarchy.

Reference: docs/official-baselines.md §7.3 item 1. Collapses never move a vertex: the surviving vertices are a
subset of the input ones, so the down-sampling is a 0/1 selection. Pure numpy/scipy.
"""
from __future__ import annotations

import heapq
import math

import numpy as np
import scipy.sparse as sp

__all__ = ["vertex_quadrics", "vertex_adjacency", "qslim_decimate", "target_vertex_count"]


def target_vertex_count(num_vertices: int, factor: float) -> int:
    """Vertices kept when decimating by ``factor`` (e.g. 2 -> half): ``ceil(num_vertices / factor)``."""
    return math.ceil(num_vertices * (1.0 / factor))


def vertex_quadrics(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(N, 4, 4) sum over the faces of each vertex of ``p p^T``, p = the face plane (a, b, c, d) scaled so
    that |(a, b, c)| = 1 (plane = null vector of the 3 homogeneous face corners, from an SVD)."""
    quadrics = np.zeros((len(vertices), 4, 4))
    corners = np.concatenate([vertices[faces], np.ones((len(faces), 3, 1))], axis=2)  # (F, 3, 4)
    planes = np.linalg.svd(corners)[2][:, -1, :]  # (F, 4) right singular vector of the smallest value
    planes = planes / np.linalg.norm(planes[:, :3], axis=1, keepdims=True)
    for face, plane in zip(faces, planes):  # face by face, as psbody: same floating-point summation order
        outer = np.outer(plane, plane)
        for vertex in face:
            quadrics[vertex] += outer
    return quadrics


def vertex_adjacency(num_vertices: int, faces: np.ndarray) -> sp.csc_matrix:
    """Symmetric (N, N) csc matrix, nonzero where two vertices share a face edge (values = edge counts)."""
    adjacency = sp.csc_matrix((num_vertices, num_vertices))
    for k in range(3):
        directed = sp.csc_matrix((np.ones(len(faces)), (faces[:, k], faces[:, (k + 1) % 3])),
                                 shape=adjacency.shape)
        adjacency = adjacency + directed + directed.T
    return adjacency


def _collapse_costs(quadrics, vertices, r, c):
    """(cost of removing c, cost of removing r, summed quadric) for the edge (r, c)."""
    q_sum = quadrics[r] + quadrics[c]
    p_r = np.append(vertices[r], 1.0).reshape(4, 1)  # column vectors and .dot, as psbody (same rounding)
    p_c = np.append(vertices[c], 1.0).reshape(4, 1)
    return float(p_r.T.dot(q_sum).dot(p_r)[0, 0]), float(p_c.T.dot(q_sum).dot(p_c)[0, 0]), q_sum


def _initial_queue(quadrics, vertices, faces):
    """Heap of (cost, (r, c)) for every edge r < c, pushed in csc (column-major) order as psbody does."""
    edges = vertex_adjacency(len(vertices), faces).tocoo()
    keep = edges.row < edges.col
    unique = sp.csc_matrix((np.ones(int(keep.sum())), (edges.row[keep], edges.col[keep])),
                           shape=edges.shape)
    pairs = (unique + unique.T).tocoo()
    queue = []
    for r, c in zip(pairs.row.tolist(), pairs.col.tolist()):
        if r > c:
            continue
        destroy_c, destroy_r, _ = _collapse_costs(quadrics, vertices, r, c)
        heapq.heappush(queue, (min(destroy_c, destroy_r), (r, c)))
    return queue


def qslim_decimate(vertices: np.ndarray, faces: np.ndarray, num_target: int) -> tuple[np.ndarray, np.ndarray]:
    """Collapse edges by increasing quadric cost until at most ``num_target`` vertices are used by faces.

    Args:
        vertices: (N, 3) float positions; faces: (F, 3) int vertex ids (every vertex used by a face).
        num_target: vertex count to reach (see :func:`target_vertex_count`).
    Returns:
        kept: (M,) int64 increasing ids of the surviving vertices (the rows of the down-sampling selection);
        coarse_faces: (F', 3) int64 faces re-indexed into ``kept``.
    Rule (psbody): the cheapest edge is popped; if its cost went up since it was queued it is re-queued,
    otherwise the end point whose removal is cheaper is removed (ties remove r), faces and queued pairs are
    re-pointed to the kept end, both quadrics become their sum, degenerate faces are dropped.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64).copy()
    if num_target < 3:
        raise ValueError(f"cannot decimate to {num_target} vertices (a mesh needs at least 3)")
    quadrics = vertex_quadrics(vertices, faces)
    queue = _initial_queue(quadrics, vertices, faces)
    num_used = len(np.unique(faces))
    while num_used > num_target:
        if not queue:
            raise ValueError(f"decimation ran out of edges at {num_used} vertices (target {num_target})")
        cost, (r, c) = heapq.heappop(queue)
        if r == c:
            continue
        destroy_c, destroy_r, q_sum = _collapse_costs(quadrics, vertices, r, c)
        if min(destroy_c, destroy_r) > cost:
            heapq.heappush(queue, (min(destroy_c, destroy_r), (r, c)))
            continue
        keep, destroy = (r, c) if destroy_c < destroy_r else (c, r)
        faces[faces == destroy] = keep
        for k, (queued_cost, (qr, qc)) in enumerate(queue):  # re-point in place, as psbody (heap left as is)
            if qr == destroy or qc == destroy:
                queue[k] = (queued_cost, (keep if qr == destroy else qr, keep if qc == destroy else qc))
        quadrics[r] = q_sum
        quadrics[c] = q_sum
        degenerate = (faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2]) | (faces[:, 2] == faces[:, 0])
        faces = faces[~degenerate]
        num_used = len(np.unique(faces))
    kept = np.unique(faces)
    new_index = np.zeros(len(vertices), dtype=np.int64)
    new_index[kept] = np.arange(len(kept))
    return kept.astype(np.int64), new_index[faces]
