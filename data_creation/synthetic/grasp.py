"""Power grasps of the stand-in (or real) MANO hand around a synthetic object, in the hand's own frame.

Hand-local frame: the MANO output with zero global rotation and translation (metres, template axes).
A grasp is found in three steps (all plain geometry, no optimiser):

1. **Orientation** — the object's wrap axis is aligned with the palm's index-to-little direction ``w`` (sign
   chosen by the caller) and its approach direction with the palm normal ``n`` (palm -> object), then tilted
   about ``n`` (oblique grasps).
2. **Placement** — the object rests on the palm: its centre lies :data:`KNUCKLE_OVERLAP` x its half-length
   (along the fingers) before the knuckles, shifted along ``w``, and is pushed along ``n`` until palm and
   fingers of the open hand clear it by :data:`PALM_CLEARANCE` (signed distances of the hand vertices); the
   thumb's opposition opens while the thumb would press into it.
3. **Closing** — each digit curls (flexion axes of the model, :func:`data_creation.standin_mano.render_standin_hand.flexion_pose`;
   the thumb also rolls further in front of the palm) until its vertices first press into the object by
   :data:`CONTACT_DEPTH`; digits that touch nothing close fully. Coarse steps, then bisection.

Left hands use the mirrored flexion basis and the left model's own vertices, so contacts are exact per side.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from data_creation.standin_mano.render_standin_hand import flexion_pose
from data_creation.synthetic.objects import SyntheticObject
from models.mano import ManoLayer
from utils.hand_conventions import MM_PER_M
from utils.mano_io import ManoAssets
from utils.mano_pose import mirror_pose
from utils.rotations import axis_angle_to_matrix

NUM_DIGITS = 5  # MANO chains: index, middle, little, ring, thumb (joints 1+3c .. 3+3c)
MAX_CURL = np.array([1.0, 1.0, 1.0, 1.0, 1.35])  # fraction of the fist angles
PALM_CLEARANCE = 0.003  # m between the open hand and the object
CONTACT_DEPTH = 0.0015  # m a closing digit may press into the object
KNUCKLE_OVERLAP = 0.4  # the object's centre lies this fraction of its half-length (along the fingers) before the knuckles
OPPOSITION_GAIN = 0.6  # extra thumb opposition (rad) per unit of thumb curl
OPPOSITION_STEP = 0.1  # rad the pre-shape opposition opens by while the thumb is in the object's way
MIN_OPPOSITION = -0.4
COARSE_STEPS = 20
BISECTION_STEPS = 5


@dataclass(frozen=True)
class PalmFrame:
    """Hand-local palm axes (unit (3,)): fingers ``f``, palm normal ``n`` (palm side), index->little ``w``;
    ``wrist`` and ``knuckles`` (mean of the four finger MCP joints) in metres."""

    f: np.ndarray
    n: np.ndarray
    w: np.ndarray
    wrist: np.ndarray
    knuckles: np.ndarray


@dataclass(frozen=True)
class Preshape:
    """The hand's shape before closing: finger spread (5,) rad about the palm normal at each digit's first
    joint, thumb opposition (rad, rolled in front of the palm about the finger direction)."""

    spread: np.ndarray
    opposition: float


@dataclass(frozen=True)
class Grasp:
    """A grasp in the hand-local frame: digit curls (5,), the pre-shape, object pose (4, 4) object ->
    hand-local, and the minimum signed distance (m) of the closed hand to the object."""

    curls: np.ndarray
    preshape: Preshape
    object_pose: np.ndarray
    min_distance: float


class HandKit:
    """One side's MANO with a fixed shape: finger poses, vertices, digit vertex groups and the palm frame.

    Args:
        assets: the side's MANO arrays.
        betas: (10,) shape parameters.
    """

    def __init__(self, assets: ManoAssets, betas: np.ndarray):
        self.assets = assets
        self.side = assets.side
        self.layer = ManoLayer.from_assets(assets, use_pca=False, flat_hand_mean=True)
        self.betas = np.asarray(betas, np.float64)
        template = assets.J_regressor @ assets.v_template
        mirror = np.array([-1.0, 1.0, 1.0]) if self.side == "left" else np.ones(3)
        fist = flexion_pose(template * mirror, 1.0, 1.0)
        self.fist = mirror_pose(fist) if self.side == "left" else fist  # (48,) flat-mean axis-angle
        chain = np.argmax(assets.weights, axis=1)
        # contact groups: digit of each vertex, -1 for the palm and the thumb's metacarpal (the thenar pad
        # may rest against the object; the thumb's two outer bones do the gripping)
        self.digit_of_vertex = np.where((chain == 0) | (chain == 13), -1, (chain - 1) // 3)
        self.thumb_vertices = chain >= 13
        verts, joints = self.forward(np.zeros((1, 48)))
        self.rest_verts, self.rest_joints = verts[0], joints[0]
        self.palm = self._palm_frame(assets.J_regressor @ self.rest_verts)
        # rolling the thumb in front of the palm: about -f for a right hand, +f for a (mirrored) left hand
        self.opposition_axis = self.palm.f if self.side == "left" else -self.palm.f

    @property
    def faces(self) -> np.ndarray:
        return self.assets.faces

    def _palm_frame(self, joints: np.ndarray) -> PalmFrame:
        """Palm axes from the 16 MANO joints (metres, MANO order)."""
        wrist, index, middle, little, ring = joints[0], joints[1], joints[4], joints[7], joints[10]
        knuckles = (index + middle + little + ring) / 4.0
        f = _unit(knuckles - wrist)
        back = np.cross(little - wrist, index - wrist)
        n = _unit(_orthogonal(back if self.side == "left" else -back, f))
        w = _unit(_orthogonal(_orthogonal(little - index, f), n))
        return PalmFrame(f, n, w, wrist, knuckles)

    def finger_pose(self, curls: np.ndarray, preshape: "Preshape") -> np.ndarray:
        """(B, 5) digit curls in a pre-shape -> (B, 48) flat-hand-mean axis-angle poses, zero global rotation.

        Curl c bends every joint of a digit by c x its fist angle; the thumb also rolls in front of the palm
        (about the finger direction) by ``preshape.opposition + OPPOSITION_GAIN * c``."""
        curls = np.atleast_2d(curls)
        per_joint = np.repeat(curls, 3, axis=1)  # (B, 15): joints 1..15 in chain order
        pose = np.zeros((len(curls), 48))
        pose[:, 3:] = (self.fist[3:].reshape(1, 15, 3) * per_joint[..., None]).reshape(-1, 45)
        for digit in range(NUM_DIGITS):
            pose[:, 3 + 9 * digit: 6 + 9 * digit] += preshape.spread[digit] * self.palm.n
        opposition = preshape.opposition + OPPOSITION_GAIN * curls[:, 4:5]
        pose[:, 39:42] += opposition * self.opposition_axis
        return pose

    def forward(self, pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, 48) flat-mean axis-angle -> verts (B, 778, 3), joints (B, 21, 3) metres, hand-local frame."""
        pose = torch.as_tensor(np.atleast_2d(pose), dtype=torch.float32)
        betas = torch.as_tensor(np.tile(self.betas, (len(pose), 1)), dtype=torch.float32)
        with torch.no_grad():
            verts, joints = self.layer(pose, betas)
        return verts.double().numpy() / MM_PER_M, joints.double().numpy() / MM_PER_M


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _orthogonal(v: np.ndarray, axis: np.ndarray) -> np.ndarray:
    return v - axis * v.dot(axis)


def object_orientation(obj_wrap: np.ndarray, obj_approach: np.ndarray, palm: PalmFrame, wrap_sign: float,
                       tilt: float) -> np.ndarray:
    """(3, 3) object -> hand-local rotation mapping the wrap axis onto ``wrap_sign * w`` and the approach
    direction onto ``n``, then rotated by ``tilt`` rad about ``n``."""
    a, b = _unit(np.asarray(obj_wrap, float)), _unit(np.asarray(obj_approach, float))
    source = np.stack([a, b, np.cross(a, b)], axis=1)
    w = wrap_sign * palm.w
    target = np.stack([w, palm.n, np.cross(w, palm.n)], axis=1)
    return axis_angle_to_matrix(palm.n * tilt) @ target @ source.T


def signed_distances(obj: SyntheticObject, pose: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Signed distance of hand-local points (..., 3) to the object at ``pose`` (4, 4) object -> hand-local."""
    local = (np.asarray(points) - pose[:3, 3]) @ pose[:3, :3]
    return obj.sdf(local.reshape(-1, 3)).reshape(local.shape[:-1])


def place_object(kit: HandKit, obj: SyntheticObject, rotation: np.ndarray, shift: float,
                 preshape: Preshape) -> tuple[np.ndarray, Preshape]:
    """Object pose (4, 4) resting on the palm of the open hand, and the pre-shape adjusted to clear it.

    The object's centre lies :data:`KNUCKLE_OVERLAP` x its half-length along the fingers before the knuckles
    (it rests on the palm and the proximal finger bones), it is moved ``shift`` m along ``w`` and pushed along ``n`` until palm and fingers
    clear it by :data:`PALM_CLEARANCE`; the thumb's opposition is reduced while the thumb presses into it.
    """
    palm = kit.palm
    pose = np.eye(4)
    pose[:3, :3] = rotation
    verts, _ = obj.mesh()
    along_f = verts @ rotation.T @ palm.f
    base = palm.knuckles - KNUCKLE_OVERLAP * along_f.max() * palm.f + shift * palm.w
    open_verts = kit.forward(kit.finger_pose(np.zeros((1, NUM_DIGITS)), preshape))[0][0]
    depth = 0.0
    for _ in range(8):
        pose[:3, 3] = base + depth * palm.n
        gap = signed_distances(obj, pose, open_verts[~kit.thumb_vertices]).min()
        if abs(gap - PALM_CLEARANCE) < 2e-4:
            break
        depth += PALM_CLEARANCE - gap
    while preshape.opposition > MIN_OPPOSITION:
        open_verts = kit.forward(kit.finger_pose(np.zeros((1, NUM_DIGITS)), preshape))[0][0]
        if signed_distances(obj, pose, open_verts[kit.thumb_vertices]).min() > PALM_CLEARANCE:
            break
        preshape = Preshape(preshape.spread, preshape.opposition - OPPOSITION_STEP)
    return pose, preshape


def _first_contact(distances: np.ndarray, digit_of_vertex: np.ndarray) -> np.ndarray:
    """(L, 778) distances over L curl levels -> (5,) index of the first level where each digit presses in
    deeper than :data:`CONTACT_DEPTH` (L when never)."""
    first = np.full(NUM_DIGITS, distances.shape[0])
    for digit in range(NUM_DIGITS):
        pressed = np.flatnonzero(distances[:, digit_of_vertex == digit].min(axis=1) < -CONTACT_DEPTH)
        if len(pressed):
            first[digit] = pressed[0]
    return first


def close_digits(kit: HandKit, obj: SyntheticObject, pose: np.ndarray, preshape: Preshape) -> np.ndarray:
    """Curl every digit until it touches the object at ``pose``; returns curls (5,) in [0, MAX_CURL]."""
    levels = np.linspace(0.0, 1.0, COARSE_STEPS + 1)
    verts, _ = kit.forward(kit.finger_pose(levels[:, None] * MAX_CURL, preshape))
    first = _first_contact(signed_distances(obj, pose, verts), kit.digit_of_vertex)
    touching = first < len(levels)
    low = np.where(touching, levels[np.maximum(first - 1, 0)], 1.0)
    high = np.where(touching, levels[np.minimum(first, COARSE_STEPS)], 1.0)
    for _ in range(BISECTION_STEPS):
        middle = (low + high) / 2.0
        verts, _ = kit.forward(kit.finger_pose(middle * MAX_CURL, preshape))
        distances = signed_distances(obj, pose, verts)[0]
        for digit in np.flatnonzero(touching):
            if distances[kit.digit_of_vertex == digit].min() < -CONTACT_DEPTH:
                high[digit] = middle[digit]
            else:
                low[digit] = middle[digit]
    return low * MAX_CURL


def fit_grasp(kit: HandKit, obj: SyntheticObject, rotation: np.ndarray, shift: float, preshape: Preshape) -> Grasp:
    """Place the object on the palm of the open hand and close the digits on it (see the module docstring)."""
    pose, preshape = place_object(kit, obj, rotation, shift, preshape)
    curls = close_digits(kit, obj, pose, preshape)
    verts, _ = kit.forward(kit.finger_pose(curls, preshape))
    return Grasp(curls, preshape, pose, float(signed_distances(obj, pose, verts[0]).min()))
