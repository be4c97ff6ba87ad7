"""YCB-like objects of the synthetic DexYCB set: coloured meshes, signed distances and grasp directions.

Each shape is registered under a real DexYCB id / YCB name so that the whole pipeline (``ycb_ids`` in meta.yml,
``seg`` labels, ``models/<name>/points.xyz``) treats it as that object. Sizes are the real objects' rough
bounding boxes; the shapes are simple (the real meshes are not redistributable):

======  =========================  ==========================================================
 id      YCB name                   synthetic shape (object frame: origin at the centre, z up)
======  =========================  ==========================================================
 1       002_master_chef_can        cylinder r 5.1 cm, h 14 cm, blue body with a label band
 2       003_cracker_box            box 16 x 6 x 21 cm, red with a yellow panel on both big faces
 3       004_sugar_box              box 9 x 4.5 x 17.5 cm, yellow with a white panel
 4       005_tomato_soup_can        cylinder r 3.4 cm, h 10 cm, white with a red label band
 9       010_potted_meat_can        box 10 x 5.2 x 8.3 cm, blue with a yellow panel
 14      025_mug                    cylinder r 4 cm, h 9 cm + torus handle on +x, coffee on top
 21      061_foam_brick             sphere r 3.5 cm ("foam ball"), orange-red
======  =========================  ==========================================================

Grasps (used by :mod:`data_creation.synthetic.grasp`): a power grasp wraps the hand around the object's
``wrap_axis`` (aligned with the palm's index-to-little direction) while the palm approaches along one of the
``approach`` directions (object frame, pointing from the palm into the object); ``None`` = any direction
perpendicular to the wrap axis. All objects rest upright on the table (z up).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass(frozen=True)
class ObjectPart:
    """A single-coloured mesh piece: verts (V, 3) metres (object frame), faces (F, 3), RGB colour in [0, 1]."""

    verts: np.ndarray
    faces: np.ndarray
    colour: tuple


@dataclass(frozen=True)
class SyntheticObject:
    """One object: id, primitive parameters (metres), coloured parts, grasp directions.

    ``shape`` is ``box`` (``size`` = full extents x, y, z), ``cylinder`` (radius, height; axis z), ``sphere``
    (radius,) or ``mug`` (radius, height, handle major radius, handle minor radius).
    """

    ycb_id: int
    shape: str
    size: tuple
    parts: tuple
    wrap_axis: tuple = (0.0, 0.0, 1.0)
    approach: Optional[tuple] = None

    @property
    def half_height(self) -> float:
        """Height of the centre above the table when the object rests upright (m)."""
        return {"box": lambda s: s[2] / 2, "cylinder": lambda s: s[1] / 2, "sphere": lambda s: s[0],
                "mug": lambda s: s[1] / 2}[self.shape](self.size)

    def mesh(self) -> tuple[np.ndarray, np.ndarray]:
        """All parts merged: verts (V, 3), faces (F, 3)."""
        verts, faces, offset = [], [], 0
        for part in self.parts:
            verts.append(part.verts)
            faces.append(part.faces + offset)
            offset += len(part.verts)
        return np.concatenate(verts), np.concatenate(faces)

    def surface_points(self, count: int, seed: int = 0) -> np.ndarray:
        """(count + V, 3) points on the merged mesh (area-weighted samples plus every vertex), metres."""
        import trimesh  # heavy: only the object builders need it

        verts, faces = self.mesh()
        samples, _ = trimesh.sample.sample_surface(trimesh.Trimesh(verts, faces, process=False), count, seed=seed)
        return np.concatenate([verts, samples])

    def sdf(self, points: np.ndarray) -> np.ndarray:
        """Signed distance (N,) metres of object-frame points (N, 3): negative inside the primitive."""
        points = np.asarray(points, np.float64)
        if self.shape == "box":
            return box_sdf(points, np.asarray(self.size) / 2.0)
        if self.shape == "cylinder":
            return cylinder_sdf(points, self.size[0], self.size[1] / 2.0)
        if self.shape == "sphere":
            return np.linalg.norm(points, axis=-1) - self.size[0]
        radius, height, major, minor = self.size
        handle = torus_xz_sdf(points - np.array([radius + major * 0.6, 0.0, 0.0]), major, minor)
        return np.minimum(cylinder_sdf(points, radius, height / 2.0), handle)


def box_sdf(points: np.ndarray, half: np.ndarray) -> np.ndarray:
    q = np.abs(points) - half
    return np.linalg.norm(np.maximum(q, 0.0), axis=-1) + np.minimum(q.max(axis=-1), 0.0)


def cylinder_sdf(points: np.ndarray, radius: float, half_height: float) -> np.ndarray:
    """Capped cylinder about the z axis."""
    d = np.stack([np.linalg.norm(points[:, :2], axis=-1) - radius, np.abs(points[:, 2]) - half_height], axis=-1)
    return np.linalg.norm(np.maximum(d, 0.0), axis=-1) + np.minimum(d.max(axis=-1), 0.0)


def torus_xz_sdf(points: np.ndarray, major: float, minor: float) -> np.ndarray:
    """Torus in the x-z plane (axis y) centred at the origin."""
    ring = np.linalg.norm(points[:, [0, 2]], axis=-1) - major
    return np.hypot(ring, points[:, 1]) - minor


def _box(extents, centre=(0.0, 0.0, 0.0)):
    import trimesh  # heavy: only the object builders need it

    mesh = trimesh.creation.box(extents=extents)
    return np.asarray(mesh.vertices) + centre, np.asarray(mesh.faces)


def _cylinder(radius, height, centre=(0.0, 0.0, 0.0)):
    import trimesh  # heavy: only the object builders need it

    mesh = trimesh.creation.cylinder(radius=radius, height=height, sections=48)
    return np.asarray(mesh.vertices) + centre, np.asarray(mesh.faces)


def _sphere(radius):
    import trimesh  # heavy: only the object builders need it

    mesh = trimesh.creation.icosphere(subdivisions=3, radius=radius)
    return np.asarray(mesh.vertices), np.asarray(mesh.faces)


def _handle(radius, major, minor):
    import trimesh  # heavy: only the object builders need it

    mesh = trimesh.creation.torus(major_radius=major, minor_radius=minor, major_sections=32, minor_sections=12)
    verts = np.asarray(mesh.vertices)[:, [0, 2, 1]]  # axis z -> axis y (x-z plane ring)
    faces = np.asarray(mesh.faces)[:, ::-1]  # the axis swap mirrors: keep outward winding
    return verts + np.array([radius + major * 0.6, 0.0, 0.0]), faces


def _part(mesh, colour) -> ObjectPart:
    return ObjectPart(mesh[0], mesh[1], tuple(colour))


def _boxed(ycb_id, extents, colour, panel_colour, panel_height):
    """A box with a slightly proud coloured panel on both faces normal to y (a cheap printed label)."""
    x, y, z = extents
    panel = _box((x * 0.7, y + 0.001, z * panel_height), (0.0, 0.0, z * 0.08))
    return SyntheticObject(ycb_id, "box", tuple(extents), (_part(_box(extents), colour), _part(panel, panel_colour)),
                           approach=((1.0, 0.0, 0.0), (-1.0, 0.0, 0.0)))


def _can(ycb_id, radius, height, colour, band_colour, band_height):
    band = _cylinder(radius + 0.0006, height * band_height)
    return SyntheticObject(ycb_id, "cylinder", (radius, height),
                           (_part(_cylinder(radius, height), colour), _part(band, band_colour)))


def build_objects() -> dict[int, SyntheticObject]:
    """The synthetic object set, keyed by DexYCB id (see the module table)."""
    mug_radius, mug_height, major, minor = 0.04, 0.09, 0.026, 0.006
    coffee = _cylinder(mug_radius - 0.004, 0.001, (0.0, 0.0, mug_height / 2.0))
    objects = [
        _can(1, 0.051, 0.14, (0.75, 0.75, 0.78), (0.12, 0.25, 0.62), 0.7),
        _boxed(2, (0.16, 0.06, 0.21), (0.78, 0.12, 0.08), (0.95, 0.82, 0.15), 0.4),
        _boxed(3, (0.09, 0.045, 0.175), (0.93, 0.82, 0.22), (0.97, 0.97, 0.95), 0.35),
        _can(4, 0.034, 0.10, (0.92, 0.92, 0.9), (0.8, 0.1, 0.08), 0.6),
        _boxed(9, (0.10, 0.052, 0.083), (0.18, 0.3, 0.65), (0.95, 0.8, 0.2), 0.45),
        SyntheticObject(14, "mug", (mug_radius, mug_height, major, minor),
                        (_part(_cylinder(mug_radius, mug_height), (0.2, 0.55, 0.35)),
                         _part(_handle(mug_radius, major, minor), (0.2, 0.55, 0.35)),
                         _part(coffee, (0.25, 0.13, 0.06))),
                        approach=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, -1.0, 0.0))),
        SyntheticObject(21, "sphere", (0.035,), (_part(_sphere(0.035), (0.95, 0.35, 0.15)),)),
    ]
    return {obj.ycb_id: obj for obj in objects}
