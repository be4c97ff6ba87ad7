"""Spiral vertex orderings for spiral convolutions (SpiralNet++ ``preprocess_spiral`` without openmesh).

Reference: docs/official-baselines.md §7.4. A spiral of vertex v is [v], its one-ring in openmesh's
vertex-vertex circulator order, then the following rings built by walking the previous ring, truncated to
``seq_length * dilation`` entries and subsampled by ``dilation``.

Circulator rule (verified equal to openmesh on the MANO hierarchy): an interior vertex starts at the vertex
that follows v in the last (highest-index) face containing v; a boundary vertex starts at the w for which
v -> w is a boundary half-edge (no face has w right after v). Each next neighbour is the vertex following v
in the face where the current neighbour immediately precedes v; stop when back at the start or when no such
face exists.
"""
from __future__ import annotations

import numpy as np

__all__ = ["one_rings", "spiral_indices"]


def one_rings(faces: np.ndarray, num_vertices: int) -> list[list[int]]:
    """Neighbours of every vertex in openmesh circulator order (see the module docstring). faces (F, 3)."""
    faces = np.asarray(faces, dtype=np.int64)
    after = [dict() for _ in range(num_vertices)]  # after[v][u] = w: some face has ... u, v, w ... (cyclic)
    last_face_next = [None] * num_vertices
    for a, b, c in faces.tolist():
        for prev, v, nxt in ((c, a, b), (a, b, c), (b, c, a)):
            after[v][prev] = nxt
            last_face_next[v] = nxt  # faces are visited in increasing order: the last one wins
    rings = []
    for v in range(num_vertices):
        if last_face_next[v] is None:
            rings.append([])
            continue
        successors = set(after[v].values())  # vertices that follow v in some face
        boundary_starts = [u for u in after[v] if u not in successors]  # v -> u is an open half-edge
        start = boundary_starts[0] if boundary_starts else last_face_next[v]
        ring, current = [start], after[v].get(start)
        while current is not None and current != start:
            ring.append(current)
            current = after[v].get(current)
        rings.append(ring)
    return rings


def _next_ring(rings: list[list[int]], last_ring: list[int], used: list[int]) -> list[int]:
    """The ring after ``last_ring``: for each of its vertices, the neighbours after the first previous-ring
    vertex in circulator order, then those before it, skipping vertices already in a spiral ring."""
    last, used = set(last_ring), set(used)
    ring = []

    def take(vertex):
        if vertex not in last and vertex not in used and vertex not in ring:
            ring.append(vertex)

    for vertex in last_ring:
        neighbours = rings[vertex]
        first = next((k for k, u in enumerate(neighbours) if u in last), len(neighbours))
        for u in neighbours[first + 1:]:
            take(u)
        for u in neighbours[:first]:
            take(u)
    return ring


def spiral_indices(vertices: np.ndarray, faces: np.ndarray, seq_length: int, dilation: int = 1) -> np.ndarray:
    """(N, seq_length) int64 spiral of every vertex; column 0 is the vertex itself.

    Rings are appended while the spiral stays shorter than ``seq_length * dilation``; then the next ring is
    appended and the result truncated. A vertex whose rings run out before that gets its
    ``seq_length * dilation`` nearest vertices (Euclidean, itself first) instead. ``dilation`` keeps every
    ``dilation``-th entry.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    rings = one_rings(faces, len(vertices))
    length = seq_length * dilation
    spirals = []
    for v in range(len(vertices)):
        spiral, last_ring = [v], list(rings[v])
        next_ring = _next_ring(rings, last_ring, spiral)
        spiral.extend(last_ring)
        while len(spiral) + len(next_ring) < length and next_ring:
            last_ring = next_ring
            next_ring = _next_ring(rings, last_ring, spiral)
            spiral.extend(last_ring)
        if next_ring:
            spiral.extend(next_ring)
        else:
            distance = np.linalg.norm(vertices - vertices[v], axis=1)
            spiral = np.argsort(distance, kind="stable")[:length].tolist()
        spirals.append(spiral[:length][::dilation])
    return np.asarray(spirals, dtype=np.int64)
