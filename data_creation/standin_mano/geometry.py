"""Geometry of the STAND-IN hand (not MANO): a 778-vertex, 1538-face open surface shaped like a right hand.

Used only by :mod:`data_creation.standin_mano.make_standin_mano`. The real MANO model cannot be redistributed, so the
project builds its own hand in MANO's topology budget: one surface with a single 16-vertex boundary loop at
the wrist (disc topology, so F = 2V - 2 - 16 = 1538 for V = 778), the 16 joints on MANO's kinematic tree
and the fingertips at manopth's vertex ids.

Frame (like MANO's right-hand template): metres, fingers point to -x, thumb on the +z side, back of the
hand +y, palm -y, wrist near x = +0.095.

Construction: the palm is a tube of rings from the wrist loop to the knuckle row. The knuckle row splits
into four finger loops (web quads close the gaps between fingers); each finger is a tube of rings around
its bone line ending in a cap whose apex is the fingertip. The thumb tube grows out of a hole cut into
the radial side of the palm. Every vertex records the bone chain it belongs to and its position along
it, from which the skinning weights and blend shapes are derived.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from utils.hand_conventions import NUM_MANO_VERTS

WRIST_RING = 16
RING = 10  # vertices per finger / thumb ring
COLS_PER_FINGER = RING // 2
PALM_ROWS_X = (0.068, 0.053, 0.038, 0.022)  # full palm rings between the transition ring and the knuckles
PALM_HALF_WIDTH = (0.034, 0.037, 0.039, 0.040)
PALM_HALF_HEIGHT = (0.0135, 0.0135, 0.013, 0.0125)
KNUCKLE_HALF_HEIGHT = 0.0105
THUMB_HOLE_ROWS = (0, 1, 2)  # palm rows (of PALM_ROWS_X) bounding the thumb hole
THUMB_HOLE_COLS = (18, 19, 20)  # quad positions around the palm loop (around the radial edge)
CAP_ANGLE = np.deg2rad(55.0)  # latitude of the ring between the last tube ring and the tip apex
TIP_TAPER = 0.15  # fingers get this much thinner from base to tip

CHAIN_PALM = -1
CHAINS = ("index", "middle", "little", "ring", "thumb")  # chain c drives MANO joints 1+3c .. 3+3c


@dataclass(frozen=True)
class Digit:
    """One finger: MANO joint positions (base, middle, distal joint, tip) and its cross-section size."""
    name: str
    joints: np.ndarray  # (4, 3): base joint, 2nd joint, 3rd joint, tip point
    half_width: float
    half_height: float
    rings_per_bone: tuple  # regular rings on bone 1, 2, 3 (the last ring of bone 3 sits below the cap)


def _straight(base, direction, lengths):
    direction = np.asarray(direction, float) / np.linalg.norm(direction)
    return np.array([np.asarray(base, float) + direction * s for s in np.cumsum([0.0, *lengths])])


DIGITS = {
    "index": Digit("index", _straight((0.003, 0.0, 0.026), (-1, 0, 0.05), (0.040, 0.024, 0.021)),
                   0.0092, 0.0085, (5, 3, 2)),
    "middle": Digit("middle", _straight((0.0, 0.0, 0.006), (-1, 0, 0.0), (0.045, 0.028, 0.022)),
                    0.0094, 0.0087, (5, 3, 2)),
    "ring": Digit("ring", _straight((0.004, 0.0, -0.013), (-1, 0, -0.07), (0.042, 0.027, 0.021)),
                  0.0088, 0.0082, (5, 3, 2)),
    "little": Digit("little", _straight((0.012, 0.0, -0.031), (-1, 0, -0.16), (0.033, 0.020, 0.019)),
                    0.0078, 0.0072, (5, 3, 2)),
    "thumb": Digit("thumb", np.array([[0.066, -0.006, 0.020], [0.044, -0.014, 0.050],
                                      [0.018, -0.019, 0.066], [-0.006, -0.022, 0.076]]),
                   0.0105, 0.0095, (2, 3, 3)),
}
FINGERS_BY_Z = ("little", "ring", "middle", "index")  # order of the finger columns across the palm loop


@dataclass(frozen=True)
class HandMesh:
    """Stand-in surface and per-vertex construction data.

    verts (V, 3) m; faces (F, 3); chain (V,) index into CHAINS or CHAIN_PALM; axial (V,) distance along
    the chain from its base joint (m, negative inside the palm); radial (V, 3) unit outward direction
    from the chain's bone line; thumb_blend (V,) 0..1 share of palm vertices that follows the thumb;
    joint_rings: joint id -> vertex ids whose centroid region holds the joint; tips: chain name ->
    apex vertex id; cap_rings: chain name -> the 10 vertex ids next to the apex.
    """
    verts: np.ndarray
    faces: np.ndarray
    chain: np.ndarray
    axial: np.ndarray
    radial: np.ndarray
    thumb_blend: np.ndarray
    joint_rings: dict
    tips: dict
    cap_rings: dict


def _frame(axis, up_hint):
    """Unit axis a, up u (orthogonalised hint) and side s with s x u = a."""
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    u = np.asarray(up_hint, float) - a * np.dot(up_hint, a)
    u /= np.linalg.norm(u)
    return a, u, np.cross(u, a)


def _ellipse(centre, side, up, half_w, half_h, angles):
    """Points ``centre + half_w cos(t) side + half_h sin(t) up`` for each angle t (palmar side fuller)."""
    sin = np.sin(angles)
    return (centre + np.outer(half_w * np.cos(angles), side)
            + np.outer(np.where(sin < 0, 1.1, 1.0) * half_h * sin, up))


def _ring_angles(n, start=np.pi):
    """n clockwise angles (decreasing), evenly spaced, the first half a step below ``start``."""
    return start - (np.arange(n) + 0.5) * 2 * np.pi / n


def _zip(ring_a, prog_a, ring_b, prog_b):
    """Triangles joining loop a (proximal) to loop b (distal), outward-facing.

    Both loops run clockwise seen from the distal side; ``prog_*`` is each vertex's clockwise angle
    from ``ring_a[0]`` in [0, 2 pi). Returns a list of vertex-id triples.
    """
    prog_a, prog_b = prog_a - prog_a[0], np.mod(prog_b - prog_a[0], 2 * np.pi)
    start = int(np.argmin(prog_b))
    ring_b, prog_b = np.roll(ring_b, -start), np.roll(prog_b, -start)
    n, m = len(ring_a), len(ring_b)
    next_a = np.append(prog_a[1:], 2 * np.pi)
    next_b = np.append(prog_b[1:], prog_b[0] + 2 * np.pi)
    faces, i, j = [], 0, 0
    while i < n or j < m:
        if j == m or (i < n and next_a[i] <= next_b[j]):
            faces.append((ring_a[i], ring_b[j % m], ring_a[(i + 1) % n]))
            i += 1
        else:
            faces.append((ring_a[i % n], ring_b[j], ring_b[(j + 1) % m]))
            j += 1
    return faces


def _zip_by_index(ring_a, ring_b, skip=()):
    """Quads between equal-size loops a (proximal) and b (distal), vertex k to vertex k; ``skip`` positions."""
    n = len(ring_a)
    faces = []
    for k in range(n):
        if k in skip:
            continue
        a0, a1, b0, b1 = ring_a[k], ring_a[(k + 1) % n], ring_b[k], ring_b[(k + 1) % n]
        faces += [(a0, b0, a1), (a1, b0, b1)]
    return faces


def _clockwise_progress(points, centre, side, up, reference):
    angles = np.arctan2((points - centre) @ up, (points - centre) @ side)
    return np.mod(reference - angles, 2 * np.pi)


class _Builder:
    def __init__(self):
        self.points, self.faces, self.chain, self.axial, self.radial = [], [], [], [], []

    def add(self, points, chain, axial, radial):
        start = sum(len(p) for p in self.points)
        self.points.append(np.asarray(points, float))
        self.chain.append(np.full(len(points), chain))
        self.axial.append(np.broadcast_to(np.asarray(axial, float), (len(points),)))
        radial = np.asarray(radial, float)
        self.radial.append(radial / np.linalg.norm(radial, axis=1, keepdims=True))
        return np.arange(start, start + len(points))

    def vertex(self, ids):
        return np.concatenate(self.points)[ids]


def _knuckle_and_palm_rows(builder, transition_size):
    """Wrist ring, transition ring, palm rows and knuckle row; returns (wrist ids, palm rows, knuckle ids)."""
    wrist_c, trans_c = np.array([0.095, 0.0, 0.0]), np.array([0.082, 0.0, 0.001])
    side, up = np.array([0.0, 0.0, 1.0]), np.array([0.0, 1.0, 0.0])
    wrist_pts = _ellipse(wrist_c, side, up, 0.027, 0.0135, _ring_angles(WRIST_RING))
    wrist = builder.add(wrist_pts, CHAIN_PALM, 0.0, wrist_pts - wrist_c)
    trans_pts = _ellipse(trans_c, side, up, 0.031, 0.0145, _ring_angles(transition_size))
    transition = builder.add(trans_pts, CHAIN_PALM, 0.0, trans_pts - trans_c)

    # knuckle row: the four finger base loops side by side, dorsal row then palmar row around the palm
    base_angles = _ring_angles(RING)[:COLS_PER_FINGER]
    dorsal, palmar, column_finger = [], [], []
    for name in FINGERS_BY_Z:
        digit = DIGITS[name]
        _, u, s = _frame(digit.joints[1] - digit.joints[0], (0, 1, 0))
        top = _ellipse(digit.joints[0], s, u, digit.half_width * 1.04, KNUCKLE_HALF_HEIGHT, base_angles)
        bottom = _ellipse(digit.joints[0], s, u, digit.half_width * 1.04, KNUCKLE_HALF_HEIGHT, -base_angles)
        dorsal.append(top)
        palmar.append(bottom)
        column_finger += [CHAINS.index(name)] * COLS_PER_FINGER
    dorsal, palmar = np.concatenate(dorsal), np.concatenate(palmar)
    column_finger = np.array(column_finger)
    loop_finger = np.concatenate([column_finger, column_finger[::-1]])
    knuckle_pts = np.concatenate([dorsal, palmar[::-1]])

    centre_z = 0.5 * (dorsal[0, 2] + dorsal[-1, 2])
    knuckle_half_width = 0.5 * (dorsal[-1, 2] - dorsal[0, 2])
    rows = []
    for x, half_w, half_h in zip(PALM_ROWS_X, PALM_HALF_WIDTH, PALM_HALF_HEIGHT):
        z = centre_z + (knuckle_pts[:, 2] - centre_z) * half_w / knuckle_half_width
        edge = np.clip(np.abs(z - centre_z) / (half_w * 1.03), 0, 1)
        sign = np.where(np.arange(len(z)) < len(dorsal), 1.0, -1.1)
        y = sign * half_h * (1 - edge ** 6) ** 0.5
        pts = np.stack([np.full_like(z, x), y, z], axis=1)
        rows.append(_add_chain_points(builder, pts, loop_finger, np.array([x, 0.0, centre_z])))
    knuckle = _add_chain_points(builder, knuckle_pts, loop_finger, None)

    reference = np.pi
    prog = {}
    for name, ids, centre in (("wrist", wrist, wrist_c), ("trans", transition, trans_c),
                              ("row0", rows[0], np.array([PALM_ROWS_X[0], 0.0, centre_z]))):
        prog[name] = _clockwise_progress(builder.vertex(ids), centre, side, up, reference)
    builder.faces += _zip(wrist, prog["wrist"], transition, prog["trans"])
    builder.faces += _zip(transition, prog["trans"], rows[0], prog["row0"])
    for r in range(len(rows) - 1):
        skip = THUMB_HOLE_COLS if (r in THUMB_HOLE_ROWS and r + 1 in THUMB_HOLE_ROWS) else ()
        builder.faces += _zip_by_index(rows[r], rows[r + 1], skip)
    builder.faces += _zip_by_index(rows[-1], knuckle)
    # web quads between neighbouring fingers close the knuckle row into one loop per finger
    n_cols = len(dorsal)
    for f in range(len(FINGERS_BY_Z) - 1):
        a, b = (f + 1) * COLS_PER_FINGER - 1, (f + 1) * COLS_PER_FINGER
        d_a, d_b, p_a, p_b = knuckle[a], knuckle[b], knuckle[2 * n_cols - 1 - a], knuckle[2 * n_cols - 1 - b]
        builder.faces += [(d_b, d_a, p_a), (d_b, p_a, p_b)]
    return wrist, rows, knuckle


def _add_chain_points(builder, pts, loop_finger, palm_centre):
    """Palm/knuckle points assigned to the finger of their column (axial < 0 inside the palm)."""
    ids = []
    for k, point in enumerate(pts):
        digit = DIGITS[CHAINS[loop_finger[k]]]
        axis = (digit.joints[1] - digit.joints[0]) / np.linalg.norm(digit.joints[1] - digit.joints[0])
        axial = float(np.dot(point - digit.joints[0], axis))
        if palm_centre is None:
            radial = point - digit.joints[0] - axial * axis
        else:
            radial = (point - palm_centre) * np.array([0.0, 1.0, 0.3])
        ids.append(builder.add(point[None], loop_finger[k], axial, radial[None])[0])
    return np.array(ids)


def _digit_tube(builder, digit, base_loop, base_prog=None):
    """Rings along a digit's bone line from ``base_loop`` to a capped tip; returns (joint rings, cap, apex)."""
    chain = CHAINS.index(digit.name)
    lengths = np.linalg.norm(np.diff(digit.joints, axis=0), axis=1)
    bone_start = np.concatenate([[0.0], np.cumsum(lengths)])
    tip_radius = 0.85 * digit.half_width
    cap_start = bone_start[3] - tip_radius
    up_hint = (0, 1, 0) if digit.name != "thumb" else (0.0, 1.0, 0.8)

    def point_at(s):
        bone = min(int(np.searchsorted(bone_start, s, side="right")) - 1, 2)
        t = (s - bone_start[bone]) / lengths[bone]
        return digit.joints[bone] + t * (digit.joints[bone + 1] - digit.joints[bone]), bone

    stations = []  # axial positions of the regular rings
    first = 0.7 * lengths[0] if digit.name == "thumb" else 0.0
    ends = (bone_start[1], bone_start[2], cap_start)
    starts = (first, bone_start[1], bone_start[2])
    for bone, count in enumerate(digit.rings_per_bone):
        stations += list(np.linspace(starts[bone], ends[bone], count + 1)[1:])
    angles = _ring_angles(RING)
    joint_rings, previous, prev_prog = {}, base_loop, base_prog
    for s in stations:
        centre, bone = point_at(s)
        _, u, side = _frame(digit.joints[bone + 1] - digit.joints[bone], up_hint)
        knuckle_bulge = 1.0 + 0.05 * np.exp(-((s - bone_start[1:3, None]) / 0.004) ** 2).sum()
        scale = (1.0 - TIP_TAPER * s / bone_start[3]) * knuckle_bulge
        pts = _ellipse(centre, side, u, digit.half_width * scale, digit.half_height * scale, angles)
        ring = builder.add(pts, chain, s, pts - centre)
        if prev_prog is None:
            builder.faces += _zip_by_index(previous, ring)
        else:
            prog = _clockwise_progress(pts, centre, side, u, np.arctan2(
                (builder.vertex(previous[:1]) - centre) @ u, (builder.vertex(previous[:1]) - centre) @ side)[0])
            builder.faces += _zip(previous, prev_prog, ring, prog)
        for joint_bone in (1, 2):
            if np.isclose(s, bone_start[joint_bone]):
                joint_rings[joint_bone] = ring
        previous, prev_prog = ring, None
    a, u, side = _frame(digit.joints[3] - digit.joints[2], up_hint)
    centre = digit.joints[3] - a * tip_radius
    scale = (1.0 - TIP_TAPER) * np.cos(CAP_ANGLE)
    cap_pts = _ellipse(centre + a * tip_radius * np.sin(CAP_ANGLE), side, u, digit.half_width * scale,
                       digit.half_height * scale, angles)
    cap = builder.add(cap_pts, chain, cap_start + tip_radius * np.sin(CAP_ANGLE), cap_pts - centre)
    builder.faces += _zip_by_index(previous, cap)
    apex = builder.add(digit.joints[3][None], chain, bone_start[3], a[None])[0]
    builder.faces += [(cap[k], apex, cap[(k + 1) % RING]) for k in range(RING)]
    return joint_rings, cap, apex


def _hole_loop(faces, hole_vertices):
    """Order the boundary of the thumb hole following the palm faces' edge direction."""
    directed = {(int(f[i]), int(f[(i + 1) % 3])) for f in faces for i in range(3)}
    boundary = {a: b for a, b in directed if (b, a) not in directed and a in hole_vertices and b in hole_vertices}
    loop = [min(boundary)]
    while len(loop) < len(boundary):
        loop.append(boundary[loop[-1]])
    return np.array(loop)


def build_hand_mesh() -> HandMesh:
    """Build the stand-in right hand (778 vertices, 1538 faces, one 16-vertex boundary at the wrist)."""
    fixed = sum((sum(d.rings_per_bone) + 1) * RING + 1 for d in DIGITS.values())  # tubes + caps + apexes
    hole_interior = (len(THUMB_HOLE_ROWS) - 2) * (len(THUMB_HOLE_COLS) - 1)
    n_loop = 2 * COLS_PER_FINGER * len(FINGERS_BY_Z)
    fixed += WRIST_RING + (len(PALM_ROWS_X) + 1) * n_loop - hole_interior
    transition_size = NUM_MANO_VERTS - fixed
    if not WRIST_RING <= transition_size <= n_loop:
        raise AssertionError(f"vertex budget: transition ring would need {transition_size} vertices")

    builder = _Builder()
    wrist, rows, knuckle = _knuckle_and_palm_rows(builder, transition_size)
    joint_rings = {0: wrist}
    tips, cap_rings = {}, {}
    for f, name in enumerate(FINGERS_BY_Z):
        cols = np.arange(f * COLS_PER_FINGER, (f + 1) * COLS_PER_FINGER)
        base = np.concatenate([knuckle[cols], knuckle[len(knuckle) - 1 - cols[::-1]]])
        rings, cap_rings[name], tips[name] = _digit_tube(builder, DIGITS[name], base)
        first = 1 + 3 * CHAINS.index(name)
        joint_rings.update({first: base, first + 1: rings[1], first + 2: rings[2]})

    hole_rows = [rows[r] for r in THUMB_HOLE_ROWS]
    hole_vertices = {int(v) for row in hole_rows for v in row[THUMB_HOLE_COLS[0]:THUMB_HOLE_COLS[-1] + 2]}
    hole = _hole_loop(builder.faces, hole_vertices)
    thumb = DIGITS["thumb"]
    a, u, side = _frame(thumb.joints[1] - thumb.joints[0], (0.0, 1.0, 0.8))
    hole_pts = builder.vertex(hole)
    hole_centre = hole_pts.mean(0)
    hole_prog = _clockwise_progress(hole_pts, hole_centre, side, u, np.arctan2(
        (hole_pts[0] - hole_centre) @ u, (hole_pts[0] - hole_centre) @ side))
    if np.any(np.diff(hole_prog) <= 0):
        raise AssertionError("thumb hole loop does not run clockwise around the thumb axis")
    rings, cap_rings["thumb"], tips["thumb"] = _digit_tube(builder, thumb, hole, hole_prog)
    # the thumb's base joint lies inside the palm: regress it from the hole and the palm rows around it
    joint_rings.update({13: np.concatenate([hole, *hole_rows]), 14: rings[1], 15: rings[2]})

    verts = np.concatenate(builder.points)
    faces = np.array(builder.faces, dtype=np.int64)
    used = np.zeros(len(verts), bool)
    used[faces] = True
    remap = np.cumsum(used) - 1
    chain = np.concatenate(builder.chain)
    dist = np.linalg.norm(verts - hole_centre, axis=1)
    thumb_blend = np.where(chain == CHAINS.index("thumb"), 0.0, np.clip((0.030 - dist) / 0.018, 0.0, 1.0))
    keep = lambda ids: remap[np.asarray(ids)]  # noqa: E731
    return HandMesh(
        verts=verts[used], faces=remap[faces], chain=chain[used],
        axial=np.concatenate(builder.axial)[used], radial=np.concatenate(builder.radial)[used],
        thumb_blend=thumb_blend[used],
        joint_rings={j: keep(ids) for j, ids in joint_rings.items()},
        tips={k: int(keep(v)) for k, v in tips.items()}, cap_rings={k: keep(v) for k, v in cap_rings.items()})
