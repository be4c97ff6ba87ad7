"""Up-sampling matrices between mesh levels: psbody-mesh's ``setup_deformation_transfer`` rule.

Reference: docs/official-baselines.md §7.3 item 2. Each fine vertex is expressed through the coarse face whose
surface point is closest to it: inside the face -> barycentric weights of that closest point; on an edge ->
least-squares weights of the two edge vertices fitted to the fine vertex itself; at a corner -> weight 1.
Every row stores exactly 3 entries (the face's vertices; unused ones are explicit zeros). Pure numpy.
"""
from __future__ import annotations

import numpy as np

__all__ = ["closest_points_on_triangles", "nearest_surface_points", "upsampling_matrix",
           "PART_INTERIOR", "PART_EDGES", "PART_CORNERS"]

PART_INTERIOR = 0
PART_EDGES = (1, 2, 3)    # edges (v0, v1), (v1, v2), (v2, v0) - psbody's part codes
PART_CORNERS = (4, 5, 6)  # corners v0, v1, v2


def _dot(x, y):
    return np.einsum("...k,...k->...", x, y)


def closest_points_on_triangles(points: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Closest point of each triangle to each point (Ericson, Real-Time Collision Detection §5.1.5, with the
    closed triangle counted as interior first).

    Args: points (P, 3); triangles (T, 3, 3) corner positions.
    Returns: closest (P, T, 3) positions and part (P, T) int codes: 0 interior, 1-3 edges (v0v1, v1v2,
    v2v0), 4-6 corners (v0, v1, v2).
    """
    p = points[:, None, :]
    a, b, c = (triangles[None, :, k, :] for k in range(3))
    ab, ac = b - a, c - a
    ap, bp, cp = p - a, p - b, p - c
    d1, d2 = _dot(ab, ap), _dot(ac, ap)
    d3, d4 = _dot(ab, bp), _dot(ac, bp)
    d5, d6 = _dot(ab, cp), _dot(ac, cp)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    with np.errstate(divide="ignore", invalid="ignore"):
        t_ab = d1 / (d1 - d3)
        t_ac = d2 / (d2 - d6)
        t_bc = (d4 - d3) / ((d4 - d3) + (d5 - d6))
        denom = 1.0 / (va + vb + vc)
    # A point whose projection falls inside the closed triangle is "interior", also on its border (psbody
    # reports a fine vertex lying on a coarse vertex as interior, with barycentric weights (1, 0, 0)).
    inside = (va >= 0) & (vb >= 0) & (vc >= 0) & (va + vb + vc > 0)
    conditions = [
        inside,
        (d1 <= 0) & (d2 <= 0),
        (d3 >= 0) & (d4 <= d3),
        (vc <= 0) & (d1 >= 0) & (d3 <= 0),
        (d6 >= 0) & (d5 <= d6),
        (vb <= 0) & (d2 >= 0) & (d6 <= 0),
        (va <= 0) & ((d4 - d3) >= 0) & ((d5 - d6) >= 0),
    ]
    codes = [PART_INTERIOR, 4, 5, 1, 6, 3, 2]
    part = np.select(conditions, codes, default=PART_INTERIOR)
    interior_point = a + ab * (vb * denom)[..., None] + ac * (vc * denom)[..., None]
    closest = np.select(
        [cond[..., None] for cond in conditions],
        [interior_point,
         np.broadcast_to(a, ap.shape), np.broadcast_to(b, ap.shape), a + t_ab[..., None] * ab,
         np.broadcast_to(c, ap.shape), a + t_ac[..., None] * ac, b + t_bc[..., None] * (c - b)],
        default=interior_point)
    return closest, part


def nearest_surface_points(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray):
    """For each point the nearest face of the mesh (lowest face id among equally near ones).

    Returns: face ids (P,), part codes (P,), closest surface points (P, 3).
    """
    closest, part = closest_points_on_triangles(points, vertices[faces])
    distance = np.einsum("ptk,ptk->pt", closest - points[:, None], closest - points[:, None])
    face = distance.argmin(axis=1)
    rows = np.arange(len(points))
    return face, part[rows, face], closest[rows, face]


def upsampling_matrix(coarse_vertices: np.ndarray, coarse_faces: np.ndarray,
                      fine_vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sparse up-sampling U (N_fine, N_coarse) with fine ~= U @ coarse, as COO triplets with 3 per row.

    Returns: rows (3 N_fine,), cols (3 N_fine,) int64 and values (3 N_fine,) float64; row i holds the 3
    vertices of the nearest coarse face in face order.
    """
    coarse_vertices = np.asarray(coarse_vertices, dtype=np.float64)
    fine_vertices = np.asarray(fine_vertices, dtype=np.float64)
    faces = np.asarray(coarse_faces, dtype=np.int64)
    face_ids, parts, closest = nearest_surface_points(fine_vertices, coarse_vertices, faces)
    num_fine = len(fine_vertices)
    rows = np.repeat(np.arange(num_fine, dtype=np.int64), 3)
    cols = faces[face_ids].reshape(-1)
    values = np.zeros(3 * num_fine)
    for i, (face, part) in enumerate(zip(faces[face_ids], parts)):
        if part == PART_INTERIOR:
            values[3 * i:3 * i + 3] = np.linalg.lstsq(coarse_vertices[face].T, closest[i], rcond=None)[0]
        elif part in PART_EDGES:
            first, second = part - 1, part % 3
            edge = np.stack([coarse_vertices[face[first]], coarse_vertices[face[second]]], axis=1)  # (3, 2)
            weights = np.linalg.lstsq(edge, fine_vertices[i], rcond=None)[0]
            values[3 * i + first], values[3 * i + second] = weights
        else:
            values[3 * i + part - PART_CORNERS[0]] = 1.0
    return rows, cols, values
