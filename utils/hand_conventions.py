"""Named hand-model conventions: joint orders, fingertip vertices, frames and units.

Hand codebases disagree on joint order and on which vertex is a fingertip (reference: docs/libraries.md B.2,
B.3, D.2). Every such number lives here, once, so datasets (which must not import ``models``), the MANO
layer and the metrics share them.

Joint orders (21 joints):
    MANO native (16 joints):  wrist, index1-3, middle1-3, little1-3, ring1-3, thumb1-3.
    manopth / DexYCB ("simple", the project's order):
        wrist, thumb1-3, thumb tip, index1-3, index tip, middle1-3, middle tip, ring1-3, ring tip,
        little1-3, little tip.
    HO3D: the 16 MANO joints, then the tips thumb, index, middle, ring, little.

Frames: HO3D annotations are in an OpenGL camera frame (y up, z towards the viewer); DexYCB and the
project use OpenCV (y down, z forwards). ``OPENGL_TO_OPENCV`` converts points either way (``p @ M.T``).
Units: the MANO files are in metres; manopth's layer returns millimetres and
results are reported in millimetres (``MM_PER_M``).
"""
from __future__ import annotations

import numpy as np

NUM_MANO_JOINTS = 16
NUM_HAND_JOINTS = 21
NUM_MANO_VERTS = 778
NUM_MANO_FACES = 1538
NUM_BETAS = 10
NUM_POSE_PARAMS = 48  # 3 global axis-angle + 15 finger joints x 3
MANO_PARAM_DIM = NUM_POSE_PARAMS + NUM_BETAS  # a batch's packed ``mano_param``: pose then betas

# Joint 0 is the root; kinematic parents of the 16 MANO joints (docs/libraries.md B.1, kintree_table row 0).
MANO_PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)

MANO_JOINT_NAMES = (
    "wrist",
    "index1", "index2", "index3",
    "middle1", "middle2", "middle3",
    "little1", "little2", "little3",
    "ring1", "ring2", "ring3",
    "thumb1", "thumb2", "thumb3",
)

HAND_JOINT_NAMES = (  # manopth / DexYCB order
    "wrist",
    "thumb1", "thumb2", "thumb3", "thumb4",
    "index1", "index2", "index3", "index4",
    "middle1", "middle2", "middle3", "middle4",
    "ring1", "ring2", "ring3", "ring4",
    "little1", "little2", "little3", "little4",
)

HO3D_JOINT_NAMES = MANO_JOINT_NAMES + ("thumb4", "index4", "middle4", "ring4", "little4")

# Fingertip vertex ids, ordered thumb, index, middle, ring, little (docs/libraries.md B.3).
FINGERTIP_VERTS_MANOPTH_RIGHT = (745, 317, 444, 556, 673)  # manopth right hand, DexYCB GT
FINGERTIP_VERTS_MANOPTH_LEFT = (745, 317, 445, 556, 673)  # manopth left hand
FINGERTIP_VERTS_HO3D = (744, 333, 444, 555, 672)  # HO3D / FreiHAND GT
FINGERTIP_VERTS_SMPLX = (744, 320, 443, 554, 671)  # smplx VERTEX_IDS['mano']

# Vertices whose mean replaces the wrist joint with manopth's optional ``root_palm``.
ROOT_PALM_VERTS = (95, 22)

# manopth: (16 MANO joints + 5 tips) -> manopth order; equally HO3D order -> manopth order.
MANO_TO_MANOPTH_ORDER = (0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20)
HO3D_TO_MANOPTH_ORDER = MANO_TO_MANOPTH_ORDER
# manopth order -> HO3D order (``ho3d = manopth[MANOPTH_TO_HO3D_ORDER]``).
MANOPTH_TO_HO3D_ORDER = (0, 5, 6, 7, 9, 10, 11, 17, 18, 19, 13, 14, 15, 1, 2, 3, 4, 8, 12, 16, 20)

OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0])  # its own inverse
MM_PER_M = 1000.0  # millimetres per metre: manopth's layer output and every reported error are in mm

MANO_SIDES = ("right", "left")
MANO_FILE_NAMES = {"right": "MANO_RIGHT.pkl", "left": "MANO_LEFT.pkl"}
MANO_DOWNLOAD_URL = "https://mano.is.tue.mpg.de"


def reorder_joints(joints, order):
    """Reorder the joint axis (second-to-last) of an array or tensor ``(..., 21, C)`` with an order map.

    ``reorder_joints(j_manopth, MANOPTH_TO_HO3D_ORDER)`` -> HO3D order, and back with
    ``HO3D_TO_MANOPTH_ORDER``. Returns a new array/tensor; the input is not modified.
    """
    index = list(order)
    if joints.shape[-2] != len(index):
        raise ValueError(f"expected {len(index)} joints on axis -2, got shape {tuple(joints.shape)}")
    return joints[..., index, :]


def fingertip_verts(side: str) -> tuple[int, ...]:
    """manopth's fingertip vertex ids (thumb, index, middle, ring, little) for ``side`` ('right'/'left')."""
    if side not in MANO_SIDES:
        raise ValueError(f"side must be one of {MANO_SIDES}, got {side!r}")
    return FINGERTIP_VERTS_MANOPTH_RIGHT if side == "right" else FINGERTIP_VERTS_MANOPTH_LEFT


# Fingertip vertices (thumb, index, middle, ring, little) of the official 21-joint regressor ``MANO.joint_regressor``
# used by the mesh-regressing baselines (MobRecon, H2ONet, SimpleHand). The middle tip is 445 although the MANO
# layer that makes the GT joints uses 444: an official quirk kept because the released checkpoints were trained and
# evaluated with it (docs/official-baselines.md §2.3, §15 item 5).
OFFICIAL_J21_TIP_VERTS = (745, 317, 445, 556, 673)


def j21_regressor(joint_regressor, tip_verts=OFFICIAL_J21_TIP_VERTS) -> np.ndarray:
    """(21, V) float32 joint regressor from mesh vertices: the 16 MANO rows (MANO order, ``joint_regressor``
    (16, V)) plus one-hot fingertip rows, reordered to manopth order (wrist, thumb1-4, ..., little1-4)."""
    joint_regressor = np.asarray(joint_regressor, dtype=np.float64)
    tips = np.zeros((len(tip_verts), joint_regressor.shape[1]))
    tips[np.arange(len(tip_verts)), list(tip_verts)] = 1.0
    return np.concatenate([joint_regressor, tips])[list(MANO_TO_MANOPTH_ORDER)].astype(np.float32)
