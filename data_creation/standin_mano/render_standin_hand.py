"""Render a MANO-format hand model (the stand-in or the real MANO) in three poses: flat, fist, grasp.

``python -m data_creation.standin_mano.render_standin_hand --mano_root DIR --out standin_hand.png``

Writes one PNG: columns = poses (flat, fist, grasp), rows = views (palm, side). The poses are built from
the model's own template joints (flexion axes from the bone directions and the palm normal), so the
script works for any right-hand MANO-format file.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from models.mano import ManoLayer
from utils.hand_conventions import MM_PER_M
from utils.mano_io import load_mano_assets, resolve_mano_root
from utils.render import MeshRenderer, MeshSpec, look_at_intrinsics
from utils.rotations import axis_angle_to_matrix

from utils.errors import command_main

IMAGE_SIZE = 320
CAMERA_DISTANCE = 0.6  # m
# template frame (fingers -x, back of hand +y) -> camera frame (OpenCV) with the palm facing the camera
PALM_VIEW = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
FIST_ANGLES = (1.35, 1.6, 1.1)  # rad at the 1st, 2nd, 3rd joint of each finger
THUMB_FIST_ANGLES = (0.5, 0.7, 0.9)


def _rotation(axis, angle):
    return axis_angle_to_matrix(np.asarray(axis, float) * angle)


def flexion_pose(template_joints: np.ndarray, scale: float, thumb_scale: float) -> np.ndarray:
    """(48,) axis-angle pose curling every finger towards the palm (right hand, flat-hand-mean convention).

    Args:
        template_joints: (16, 3) MANO joints of the template (metres, MANO order).
        scale, thumb_scale: fraction of the fist angles for the fingers and the thumb.
    """
    j = template_joints
    back = np.cross(j[7] - j[0], j[1] - j[0])  # little-base x index-base: back of a right hand
    palmar = -back / np.linalg.norm(back)
    across = (j[7] - j[1]) / np.linalg.norm(j[7] - j[1])  # from the index towards the little finger
    pose = np.zeros((16, 3))
    for chain in range(5):
        thumb = chain == 4
        towards = palmar + (0.6 * across if thumb else 0.0)
        angles = THUMB_FIST_ANGLES if thumb else FIST_ANGLES
        for k in range(3):
            joint = 1 + 3 * chain + k
            child = j[joint + 1] if k < 2 else j[joint] + (j[joint] - j[joint - 1])
            bone = (child - j[joint]) / np.linalg.norm(child - j[joint])
            t = towards - bone * towards.dot(bone)
            axis = np.cross(bone, t / np.linalg.norm(t))
            pose[joint] = axis * angles[k] * (thumb_scale if thumb else scale)
    return pose.ravel()


def render_poses(mano_root: str | None, out: Path) -> Path:
    assets = load_mano_assets(resolve_mano_root(mano_root), "right")
    layer = ManoLayer.from_assets(assets, use_pca=False, flat_hand_mean=True)
    joints = assets.J_regressor @ assets.v_template
    poses = np.stack([np.zeros(48), flexion_pose(joints, 1.0, 1.0), flexion_pose(joints, 0.45, 0.9)])
    verts, _ = layer(torch.tensor(poses, dtype=torch.float32))
    verts = verts.detach().numpy() / MM_PER_M
    views = (PALM_VIEW, _rotation((0, 1, 0), np.pi / 2) @ PALM_VIEW)
    K = look_at_intrinsics(IMAGE_SIZE, IMAGE_SIZE, focal=900.0)
    rows = []
    with MeshRenderer(IMAGE_SIZE, IMAGE_SIZE) as renderer:
        for view in views:
            row = []
            for v in verts:
                cam = v @ (_rotation((1, 0, 0), 0.35) @ view).T
                cam += [0, 0, CAMERA_DISTANCE] - 0.5 * (cam.min(0) + cam.max(0))  # centre the hand's box
                rgb, _ = renderer.render([MeshSpec(cam, assets.faces)], K)
                row.append(rgb)
            rows.append(np.concatenate(row, axis=1))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, axis=0)).save(out)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mano_root", default=None, help="folder with MANO_RIGHT.pkl (default: $MANO_ROOT)")
    parser.add_argument("--out", type=Path, default=Path("standin_hand.png"))
    args = parser.parse_args(argv)
    print(f"wrote {render_poses(args.mano_root, args.out)} (columns: flat, fist, grasp; rows: palm, side view)")


if __name__ == "__main__":
    command_main(main)
