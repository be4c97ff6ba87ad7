"""Plan of one synthetic sequence: who grasps what, from where, seen by which cameras (world frame).

World frame: metres, table plane ``z = 0``, z up. The subject stands on the table's ``-x`` side, as in DexYCB's
rig: at the grasp the hand's forward direction (wrist -> knuckles) points along ``+x`` within
:data:`REACH_SPREAD_DEG`, so each fixed camera sees a hand orientation concentrated around its own view of the reach.

A sequence has three phases over its frames:

* ``approach`` — the open hand (slightly curled, thumb opposed) moves in from the palm side and above while
  turning into its grasping orientation; the object rests on the table;
* ``close`` — the hand stands still at the grasp and its digits close until they touch the object;
* ``lift`` — hand and object move rigidly together: up, sideways and tilted about the object's centre.

``grasping`` applies DexYCB's rule to the planned object motion (rotation > 5 deg or translation > 5 cm since
frame 0, docs/official-data.md §8.3); the plan keeps every frame at least :data:`ROTATION_MARGIN_DEG` /
:data:`TRANSLATION_MARGIN_M` away from the thresholds so the labels do not depend on float rounding.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data_creation.labels.prepare_grasp_dexycb import (ROTATION_THRESHOLD_DEG, TRANSLATION_THRESHOLD_M, is_grasping,
                                                object_motion)
from data_creation.synthetic.grasp import MAX_CURL, NUM_DIGITS, Grasp, HandKit, Preshape, fit_grasp, \
    object_orientation
from data_creation.synthetic.objects import SyntheticObject
from utils.rotations import axis_angle_to_matrix

ROTATION_MARGIN_DEG = 0.3
TRANSLATION_MARGIN_M = 0.003
TABLE_CLEARANCE = 0.006  # m between the lowest hand vertex and the table
PRESHAPE_CURL = 0.15  # fraction of the final curls held during the approach
GRASP_ATTEMPTS = 8
REST_GAP = 0.0005  # m between a resting object and the table: coplanar faces would z-fight in the renders
UP = np.array([0.0, 0.0, 1.0])
REACH_SPREAD_DEG = 30.0  # the hand's forward direction at the grasp lies within +-this of +x (world)


@dataclass(frozen=True)
class SequencePlan:
    """Everything needed to render a sequence (world frame, F frames).

    hand_transforms: (F, 4, 4) hand-local -> world. curls: (F, 5) digit curls (pre-shape in ``preshape``).
    object_poses: (F, n_obj, 4, 4) object -> world, in ``ycb_ids`` order. phases: F names.
    grasping: (F,) bool DexYCB grasp label. motion: (F, 2) grasped object's (rotation deg, translation m) since
    frame 0.
    """

    side: str
    ycb_ids: tuple
    grasp_ind: int
    preshape: Preshape
    curls: np.ndarray
    hand_transforms: np.ndarray
    object_poses: np.ndarray
    phases: tuple
    grasping: np.ndarray
    motion: np.ndarray


def rigid(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3], out[:3, 3] = rotation, translation
    return out


def about_point(rotation: np.ndarray, point: np.ndarray) -> np.ndarray:
    """(4, 4) rotation about a world point."""
    return rigid(rotation, point - rotation @ point)


def _world_hand(grasp: Grasp, object_rest: np.ndarray) -> np.ndarray:
    """Hand-local -> world transform (4, 4) that puts the grasped object at its resting pose."""
    return object_rest @ np.linalg.inv(grasp.object_pose)


def _lowest_hand_point(kit: HandKit, grasp: Grasp, hand_world: np.ndarray) -> float:
    curls = np.stack([np.zeros(NUM_DIGITS), grasp.curls])
    verts, _ = kit.forward(kit.finger_pose(curls, grasp.preshape))
    return float((verts @ hand_world[:3, :3].T + hand_world[:3, 3])[..., 2].min())


def plan_grasp(rng: np.random.Generator, kit: HandKit, obj: SyntheticObject, object_rest: np.ndarray
               ) -> tuple[Grasp, np.ndarray]:
    """A side grasp (thumb up) of an upright object at ``object_rest`` (4, 4) that keeps the hand above the
    table; returns the grasp and the hand-local -> world transform. Tries random pre-shapes, tilts and
    approach directions; falls back to the attempt that came closest to the table clearance."""
    best = None
    for _ in range(GRASP_ATTEMPTS):
        approach = obj.approach[rng.integers(len(obj.approach))] if obj.approach else (1.0, 0.0, 0.0)
        wrap_world = object_rest[:3, :3] @ np.asarray(obj.wrap_axis)
        sign = -1.0 if wrap_world[2] > 0 else 1.0  # index -> little points down: thumb up
        diagonal = np.cross(kit.palm.n, sign * kit.palm.w).dot(kit.palm.f)  # tilt towards the hypothenar
        tilt = -np.sign(diagonal) * rng.uniform(0.25, 0.55)
        rotation = object_orientation(obj.wrap_axis, approach, kit.palm, sign, tilt)
        preshape = Preshape(rng.normal(0.0, 0.05, NUM_DIGITS), rng.uniform(0.4, 0.9))
        shift = rng.uniform(-0.01, 0.01)
        for _ in range(3):
            grasp = fit_grasp(kit, obj, rotation, shift, preshape)
            hand_world = _world_hand(grasp, object_rest)
            deficit = TABLE_CLEARANCE - _lowest_hand_point(kit, grasp, hand_world)
            if best is None or deficit < best[0]:
                best = (deficit, grasp, hand_world)
            if deficit <= 0:
                return grasp, hand_world
            down = -(hand_world[:3, :3] @ kit.palm.w)[2]
            shift += deficit / max(abs(down), 0.3) * np.sign(down or 1.0)
    return best[1], best[2]


def _smoothstep(x):
    return x * x * (3.0 - 2.0 * x)


def _lift_motions(rng: np.random.Generator, count: int, centre: np.ndarray, object_rest: np.ndarray) -> list:
    """World motions (4, 4) of the lift frames (rigid, about the object centre), kept off the grasp thresholds."""
    height, drift = rng.uniform(0.07, 0.15), rng.normal(0.0, 0.03, 2)
    axis = np.array([*rng.normal(size=2), 0.0])
    axis /= np.linalg.norm(axis)
    angle = np.radians(rng.uniform(8.0, 35.0))
    motions = []
    for k in range(1, count + 1):
        progress = k / count
        for _ in range(50):
            turn = about_point(axis_angle_to_matrix(axis * angle * progress), centre)
            motion = rigid(np.eye(3), np.array([*drift, height]) * progress) @ turn
            rotation, translation = object_motion(motion @ object_rest, object_rest)
            if (abs(rotation - ROTATION_THRESHOLD_DEG) > ROTATION_MARGIN_DEG
                    and abs(translation - TRANSLATION_THRESHOLD_M) > TRANSLATION_MARGIN_M):
                break
            progress *= 1.02
        motions.append(motion)
    return motions


def plan_sequence(rng: np.random.Generator, kit: HandKit, grasped: SyntheticObject,
                  distractor: SyntheticObject | None, frames: int) -> SequencePlan:
    """Draw a sequence of ``frames`` frames (>= 4): resting object(s), grasp, approach / close / lift motion."""
    if frames < 4:
        raise ValueError(f"a synthetic sequence needs at least 4 frames (approach, close, lift), got {frames}")
    heading = rng.uniform(0, 2 * np.pi)
    object_rest = rigid(axis_angle_to_matrix(np.array([0.0, 0.0, heading])),
                        np.array([*rng.normal(0.0, 0.03, 2), grasped.half_height + REST_GAP]))
    grasp, hand_world = plan_grasp(rng, kit, grasped, object_rest)
    forward = hand_world[:3, :3] @ kit.palm.f
    reach = np.radians(rng.uniform(-REACH_SPREAD_DEG, REACH_SPREAD_DEG)) - np.arctan2(forward[1], forward[0])
    towards_reach = about_point(axis_angle_to_matrix(UP * reach), object_rest[:3, 3])  # keeps the table clearance
    object_rest, hand_world = towards_reach @ object_rest, towards_reach @ hand_world
    n_close = max(1, round(0.2 * frames))
    n_approach = max(1, round(0.4 * frames))
    n_lift = frames - n_approach - n_close
    palm_normal = hand_world[:3, :3] @ kit.palm.n
    palm_centre = hand_world[:3, :3] @ (kit.palm.wrist + kit.palm.knuckles) / 2 + hand_world[:3, 3]
    back_off, rise = rng.uniform(0.12, 0.2), rng.uniform(0.05, 0.12)
    start_turn = rng.normal(0.0, 0.25, 3)
    transforms, curls, phases = [], [], []
    for k in range(n_approach):
        remaining = 1.0 - _smoothstep(k / n_approach)
        offset = -palm_normal * back_off * remaining + UP * rise * remaining ** 2
        turn = about_point(axis_angle_to_matrix(start_turn * remaining), palm_centre)
        transforms.append(rigid(np.eye(3), offset) @ turn @ hand_world)
        curls.append(PRESHAPE_CURL * grasp.curls)
        phases.append("approach")
    for k in range(1, n_close + 1):
        transforms.append(hand_world)
        curls.append((PRESHAPE_CURL + (1.0 - PRESHAPE_CURL) * k / n_close) * grasp.curls)
        phases.append("close")
    motions = _lift_motions(rng, n_lift, object_rest[:3, 3], object_rest)
    for motion in motions:
        transforms.append(motion @ hand_world)
        curls.append(grasp.curls)
        phases.append("lift")
    grasped_poses = [object_rest] * (n_approach + n_close) + [m @ object_rest for m in motions]
    poses = [np.stack(grasped_poses)]
    ycb_ids = [grasped.ycb_id]
    if distractor is not None:
        side_dir = axis_angle_to_matrix(UP * rng.uniform(-1.0, 1.0)) @ palm_normal
        side_dir[2] = 0.0
        position = object_rest[:3, 3] + side_dir / np.linalg.norm(side_dir) * rng.uniform(0.2, 0.28)
        rest = rigid(axis_angle_to_matrix(UP * rng.uniform(0, 2 * np.pi)),
                     np.array([position[0], position[1], distractor.half_height + REST_GAP]))
        poses.append(np.repeat(rest[None], frames, axis=0))
        ycb_ids.append(distractor.ycb_id)
    order = rng.permutation(len(ycb_ids))
    motion = np.array([object_motion(p, grasped_poses[0]) for p in grasped_poses])
    return SequencePlan(
        side=kit.side, ycb_ids=tuple(int(ycb_ids[i]) for i in order), grasp_ind=int(np.flatnonzero(order == 0)[0]),
        preshape=grasp.preshape, curls=np.clip(np.array(curls), 0.0, MAX_CURL),
        hand_transforms=np.stack(transforms), object_poses=np.stack([poses[i] for i in order], axis=1),
        phases=tuple(phases), grasping=np.array([is_grasping(p, grasped_poses[0]) for p in grasped_poses]),
        motion=motion)
