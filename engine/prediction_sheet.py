"""A sheet of test images with the predicted hand mesh drawn over them (``eval.py --sheet N``).

Each tile is the hand's neighbourhood in the original image, twice: the plain image and the predicted mesh
over it. The mesh is placed as the scores see it: the prediction translated so its wrist sits on the GT wrist
(``root_joint_flip``), mirrored back for left hands (the network predicts every hand as a right hand in the
mirrored camera), and projected with the frame's intrinsics. Tile titles give the sample key, hand-only (H) /
hand-object (HO) and the sample's root-aligned J-PE in mm.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import default_collate

from datasets.geometry import mirror_points_3d
from datasets.label_files import read_rgb
from utils.atomic import atomic_write
from utils.render import MeshRenderer, MeshSpec
from utils.runtime import to_device

MESH_COLOR = (0.35, 0.62, 0.95)
MESH_ALPHA = 0.65


def sheet_indices(num_samples: int, count: int) -> np.ndarray:
    """``count`` test-sample indices spread evenly over ``num_samples`` (all of them if fewer)."""
    count = max(0, min(int(count), int(num_samples)))
    return np.unique(np.linspace(0, num_samples - 1, count).round().astype(np.int64))


def placed_vertices(pred_verts, pred_joints, gt_root_flip, is_left: bool) -> np.ndarray:
    """(778, 3) predicted vertices in the original camera frame, metres.

    Args:
        pred_verts (778, 3), pred_joints (21, 3): the network's output, mirrored camera frame for left hands.
        gt_root_flip (3,): GT wrist in the same (mirrored for left hands) frame.
    """
    verts = np.asarray(pred_verts, np.float64) - np.asarray(pred_joints, np.float64)[0] + np.asarray(gt_root_flip)
    return mirror_points_3d(verts).astype(np.float64) if is_left else verts


def hand_window(points_2d: np.ndarray, width: int, height: int, scale: float = 1.6, minimum: int = 48):
    """Square window ``(x0, y0, x1, y1)`` px around 2D points, enlarged by ``scale`` and clipped to the image."""
    lo, hi = points_2d.min(0), points_2d.max(0)
    centre, side = (lo + hi) / 2.0, max(float((hi - lo).max()) * scale, minimum)
    x0, y0 = (centre - side / 2.0).round().astype(int)
    x0, y0 = int(np.clip(x0, 0, max(width - 1, 0))), int(np.clip(y0, 0, max(height - 1, 0)))
    side = int(round(side))
    return x0, y0, min(x0 + side, width), min(y0 + side, height)


def overlay_mesh(image: np.ndarray, verts: np.ndarray, faces: np.ndarray, intrinsics: np.ndarray,
                 renderer) -> np.ndarray:
    """(H, W, 3) uint8: ``image`` with the mesh (camera-frame metres, projected by ``intrinsics``) blended in."""
    rgb, _, labels = renderer.render([MeshSpec(verts, faces, color=MESH_COLOR)], intrinsics, with_labels=True)
    covered = (labels > 0)[..., None]
    blended = image.astype(np.float32) * (1 - MESH_ALPHA) + rgb.astype(np.float32) * MESH_ALPHA
    return np.where(covered, blended, image).round().astype(np.uint8)


def write_prediction_sheet(path: Path, dataset, indices, pred_verts, pred_joints, gt_root_flip, faces,
                           errors_mm=None, columns: int = 4) -> Path:
    """Draw the predictions of ``indices`` over their test images and save one PNG (atomically).

    Args:
        dataset: the test dataset (``record(i)`` gives image path, intrinsics, hand side, grasp label).
        indices: (N,) sample indices; ``pred_verts`` (N, 778, 3), ``pred_joints`` (N, 21, 3) and
            ``gt_root_flip`` (N, 3) are the matching rows, metres.
        faces: (F, 3) MANO faces.
        errors_mm: optional (N,) per-sample J-PE for the titles.
    """
    import matplotlib  # heavy: loaded only when a sheet is drawn (eval --sheet, demo)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    indices = np.asarray(indices)
    rows = max(1, int(np.ceil(len(indices) / columns)))
    figure, axes = plt.subplots(rows, 2 * columns, figsize=(4.0 * columns, 2.2 * rows), squeeze=False)
    for axis in axes.ravel():
        axis.axis("off")
    renderers: dict = {}
    try:
        for slot, index in enumerate(indices):
            record = dataset.record(int(index))
            image = read_rgb(record.image_path)
            height, width = image.shape[:2]
            renderer = renderers.get((width, height))
            if renderer is None:
                renderer = renderers[(width, height)] = MeshRenderer(width, height, background=(0.0, 0.0, 0.0))
            verts = placed_vertices(pred_verts[slot], pred_joints[slot], gt_root_flip[slot], record.is_left)
            drawn = overlay_mesh(image, verts, faces, record.intrinsics, renderer)
            x0, y0, x1, y1 = hand_window(record.hand_points_2d, width, height)
            row, column = divmod(slot, columns)
            title = f"{record.key[-28:]}\n{'HO' if record.grasping else 'H'}"
            if errors_mm is not None:
                title += f"  J-PE {float(errors_mm[slot]):.1f} mm"
            for offset, picture in enumerate((image, drawn)):
                axis = axes[row, 2 * column + offset]
                axis.imshow(picture[y0:y1, x0:x1])
                axis.set_title(title if offset == 0 else "prediction", fontsize=7)
    finally:
        for renderer in renderers.values():
            renderer.close()
    figure.tight_layout()
    path = Path(path)
    with atomic_write(path, mode="wb") as handle:
        figure.savefig(handle, format="png", dpi=110)
    plt.close(figure)
    return path


def predict_samples(model, dataset, indices, device) -> dict:
    """Run the (unwrapped, single-process) ``model`` on the test samples ``indices``; numpy outputs."""
    model.eval()
    with torch.no_grad():
        batch = to_device(default_collate([dataset[int(i)] for i in indices]), device)
        outputs = model(batch)
    merged = {**batch, **outputs}
    return {k: merged[k].detach().float().cpu().numpy() for k in
            ("pred_verts3d_cam", "pred_joints3d_cam", "root_joint_flip")}


def sheet_for_run(path: Path, model, dataset, count: int, faces, device, joint_errors_mm=None) -> Path:
    """``count`` evenly spread test samples, predicted again by ``model`` and drawn into ``path``."""
    indices = sheet_indices(len(dataset), count)
    outputs = predict_samples(model, dataset, indices, device)
    errors = None if joint_errors_mm is None else np.asarray(joint_errors_mm)[indices]
    return write_prediction_sheet(path, dataset, indices, outputs["pred_verts3d_cam"],
                                  outputs["pred_joints3d_cam"], outputs["root_joint_flip"], faces, errors)
