"""What ``predict.py`` writes per image: the overlay picture, the JSON record, one ``.obj`` per hand.

Overlay: the photo with every placed hand mesh blended in (as the prediction sheet does), and beside it a side view
(the meshes turned 90 degrees about the vertical axis through their centre, on white). Record (JSON, metres for
3D, pixels for 2D): the image, its intrinsics, and per hand its box, side, object box, 2D joints, 3D joints and
vertices in the camera frame, how it was placed, and the grasp / occlusion probabilities when the model has them.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from engine.predict.placement import PlacedHand
from engine.prediction_sheet import MESH_COLOR, hand_window, overlay_mesh
from utils.atomic import atomic_write_json, atomic_write_text
from utils.render import MeshRenderer, MeshSpec, look_at_intrinsics

SIDE_VIEW_FILL = 0.8  # fraction of the side view the meshes span
SIDE_VIEW_FOCAL_PER_PX = 2.0  # focal length of the side-view camera, in units of its image side
MONTAGE_TILE_PX = 240


def hand_faces(faces: np.ndarray, is_left: bool) -> np.ndarray:
    """MANO (right-hand) faces for a placed hand: a mirrored (left) hand has its winding reversed so its normals
    point outwards again."""
    faces = np.asarray(faces, dtype=np.int64)
    return faces[:, ::-1].copy() if is_left else faces


def fit_clip_range(renderer: MeshRenderer, meshes: list[np.ndarray]) -> MeshRenderer:
    """Set the renderer's near / far planes around the meshes' depths (V, 3) metres (a long default focal puts
    hands tens of metres away); returns the renderer."""
    depths = np.concatenate([np.asarray(verts)[:, 2] for verts in meshes])
    renderer.znear = max(float(depths.min()) * 0.5, 1e-3)
    renderer.zfar = max(float(depths.max()) * 2.0, renderer.znear * 10.0)
    return renderer


def side_view_meshes(hands: list[PlacedHand], side: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Vertices (V, 3) of each hand turned 90 degrees about the camera's y axis through the meshes' common centre
    and moved in front of a ``side x side`` camera so they span ``SIDE_VIEW_FILL`` of it; with its intrinsics."""
    points = np.concatenate([hand.verts_cam for hand in hands])
    centre = (points.min(0) + points.max(0)) / 2.0
    turn = np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])  # +90 deg about y: x -> -z
    turned = [(hand.verts_cam - centre) @ turn.T for hand in hands]
    extent = float(max(np.ptp(np.concatenate(turned)[:, :2], axis=0).max(), 1e-3))
    focal = SIDE_VIEW_FOCAL_PER_PX * side
    distance = focal * extent / (SIDE_VIEW_FILL * side) + extent
    return [verts + [0.0, 0.0, distance] for verts in turned], look_at_intrinsics(side, side, focal)


def overlay_picture(image: np.ndarray, hands: list[PlacedHand], faces: np.ndarray, intrinsics: np.ndarray,
                    renderers) -> np.ndarray:
    """(H, W + H, 3) uint8: the photo with the meshes over it, and the side view (H x H) beside it.

    ``renderers(width, height, background)`` returns a cached :class:`utils.render.MeshRenderer`.
    """
    height, width = image.shape[:2]
    drawn = np.array(image, copy=True)
    side_view = np.full((height, height, 3), 255, np.uint8)
    if not hands:
        return np.concatenate([drawn, side_view], axis=1)
    photo_renderer = fit_clip_range(renderers(width, height, (0.0, 0.0, 0.0)), [hand.verts_cam for hand in hands])
    for hand in hands:
        drawn = overlay_mesh(drawn, hand.verts_cam, hand_faces(faces, hand.hand.is_left), intrinsics, photo_renderer)
    turned, side_k = side_view_meshes(hands, height)
    specs = [MeshSpec(verts, hand_faces(faces, hand.hand.is_left), color=MESH_COLOR)
             for verts, hand in zip(turned, hands)]
    side_view, _ = fit_clip_range(renderers(height, height, (1.0, 1.0, 1.0)), turned).render(specs, side_k)
    return np.concatenate([drawn, side_view], axis=1)


def montage_tile(overlay: np.ndarray, width: int, hands: list[PlacedHand], side: int = MONTAGE_TILE_PX) -> np.ndarray:
    """(side, 2 side, 3) uint8: the overlay's photo part cut to a square window around the hands' boxes (the whole
    photo without hands) and its side view, both resized to ``side`` px."""
    photo, side_view = overlay[:, :width], overlay[:, width:]
    if hands:
        corners = np.concatenate([np.asarray(hand.hand.box, np.float64).reshape(2, 2) for hand in hands])
        x0, y0, x1, y1 = hand_window(corners, width, photo.shape[0])
        photo = photo[y0:y1, x0:x1]
    return np.concatenate([cv2.resize(np.ascontiguousarray(part), (side, side), interpolation=cv2.INTER_AREA)
                           for part in (photo, side_view)], axis=1)


def montage(tiles: list[np.ndarray], columns: int = 3) -> np.ndarray:
    """Tiles of one size in a grid, row by row, white where a row is short."""
    rows = -(-len(tiles) // columns)
    height, width = tiles[0].shape[:2]
    sheet = np.full((rows * height, min(columns, len(tiles)) * width, 3), 255, np.uint8)
    for index, tile in enumerate(tiles):
        row, column = divmod(index, columns)
        sheet[row * height:(row + 1) * height, column * width:(column + 1) * width] = tile
    return sheet


def _box_list(box) -> list | None:
    return None if box is None else [round(float(v), 2) for v in box]


def hand_record(hand: PlacedHand) -> dict:
    """JSON-ready dict of one placed hand (lists of floats; 2D px, 3D metres in the camera frame)."""
    return {"box": _box_list(hand.hand.box), "side": hand.hand.side, "object_box": _box_list(hand.hand.object_box),
            "detector_score": hand.hand.score, "placement": hand.placement,
            "joints_2d_px": np.round(hand.joints_2d, 3).tolist(),
            "joints_3d_cam_m": np.round(hand.joints_cam, 6).tolist(),
            "verts_3d_cam_m": np.round(hand.verts_cam, 6).tolist(),
            "grasp_probability": hand.grasp_probability, "occlusion_probability": hand.occlusion_probability,
            "grasping": hand.grasping}


def image_record(source: str, width: int, height: int, intrinsics: np.ndarray, hands: list[PlacedHand],
                 **extra) -> dict:
    """The record of one image or video frame (``extra``: e.g. ``frame``, ``time_s``, ``smoothed``)."""
    return {"image": source, "width": int(width), "height": int(height),
            "intrinsics": np.asarray(intrinsics, np.float64).round(6).tolist(), **extra,
            "hands": [hand_record(hand) for hand in hands]}


def write_record(path: Path, record: dict) -> Path:
    """Write one record as compact JSON (atomically)."""
    atomic_write_json(path, record, indent=None)
    return Path(path)


def write_obj(path: Path, verts: np.ndarray, faces: np.ndarray) -> Path:
    """Wavefront ``.obj`` of one mesh: verts (V, 3) metres, faces (F, 3) 0-based ids (written 1-based)."""
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in np.asarray(verts, np.float64)]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in np.asarray(faces, np.int64)]
    atomic_write_text(path, "\n".join(lines) + "\n")
    return Path(path)


class RendererCache:
    """``cache(width, height, background)`` -> a :class:`utils.render.MeshRenderer`, one per size and
    background, all released by ``close()``."""

    def __init__(self):
        self._renderers: dict = {}

    def __call__(self, width: int, height: int, background: tuple) -> MeshRenderer:
        key = (int(width), int(height), tuple(background))
        if key not in self._renderers:
            self._renderers[key] = MeshRenderer(width, height, background=background)
        return self._renderers[key]

    def close(self) -> None:
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()
