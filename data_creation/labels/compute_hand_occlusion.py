"""Hand-occlusion ratios of a DexYCB split: ``hand_occ_{setup}_{split}.npy`` (key -> float in [0, 1]).

Definition (the official code reads these ratios but does not say how they were made; docs/official-data.md
§2.6): ``ratio = visible hand pixels / total hand pixels`` where

* total = the silhouette of the ground-truth MANO hand mesh (DexYCB ``pose_m`` + ``mano_betas``, PCA with 45
  components, non-flat mean, the side's model, translation included) projected with the camera intrinsics
  and rasterised triangle by triangle (``cv2.fillConvexPoly``, exact for a mesh, no GL needed);
* visible = pixels of that silhouette labelled hand (255) in the frame's ``labels_XXXXXX.npz`` ``seg``.

Both are counted inside the image, so truncation by the image border is not occlusion. 1.0 = fully
visible (the loaders' default), 0.0 = fully hidden or entirely outside the image.

Usage: ``python -m data_creation.labels.compute_hand_occlusion --root $DEX_YCB_DIR --mano_root DIR --data_split s0_test``
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch

from data_creation.labels.create_dataset_dexycb import ROOT_ENV
from datasets.dexycb import annotation_file
from datasets.dexycb_index import load_index
from datasets.dexycb_splits import parse_split_name
from datasets.geometry import mesh_silhouette
from models.mano import ManoLayer
from datasets.label_files import write_label_dict
from utils.hand_conventions import MM_PER_M
from utils.mano_io import load_mano_assets, resolve_mano_root
from utils.errors import command_main

HAND_LABEL = 255
BATCH = 256


def occlusion_ratio(hand_seg: np.ndarray, silhouette: np.ndarray) -> float:
    """Visible fraction of a hand silhouette: ``|seg & silhouette| / |silhouette|`` (0 for an empty silhouette)."""
    total = int(silhouette.sum())
    return float(np.logical_and(hand_seg, silhouette).sum()) / total if total else 0.0


def mano_vertices(layers: dict, sides: np.ndarray, pose_m: np.ndarray, betas: np.ndarray) -> np.ndarray:
    """(B, 778, 3) metres, camera frame, of DexYCB hands.

    Args: ``sides`` (B,) 'left'/'right', ``pose_m`` (B, 51), ``betas`` (B, 10); ``layers`` side -> PCA ManoLayer.
    """
    verts = np.empty((len(pose_m), 778, 3))
    with torch.no_grad():
        for side, layer in layers.items():
            chosen = np.flatnonzero(sides == side)
            if len(chosen):
                out, _ = layer(torch.as_tensor(pose_m[chosen, :48], dtype=torch.float32),
                               torch.as_tensor(betas[chosen], dtype=torch.float32),
                               torch.as_tensor(pose_m[chosen, 48:], dtype=torch.float32))
                verts[chosen] = out.double().numpy() / MM_PER_M
    return verts


def occlusion_ratios(root: str | Path, setup: str, split: str, mano_root: str | Path) -> dict[str, float]:
    """``id_<n>`` -> visible-hand ratio for every record of ``dex_ycb_{setup}_{split}_data.json``."""
    root = Path(root)
    index = load_index(annotation_file(root, setup, split))
    layers = {side: ManoLayer(flat_hand_mean=False, ncomps=45, use_pca=True, side=side,
                              assets=load_mano_assets(mano_root, side)) for side in ("right", "left")}
    faces = layers["right"].th_faces.numpy()
    sides = np.where(index.is_left, "left", "right")
    ratios = {}
    for start in range(0, len(index), BATCH):
        chunk = np.arange(start, min(start + BATCH, len(index)))
        verts = mano_vertices(layers, sides[chunk], index.pose_m[chunk].astype(np.float64),
                              index.betas[chunk].astype(np.float64))
        for i, hand in zip(chunk, verts):
            label_path = root / index.label_file(i)
            if not label_path.is_file():
                raise FileNotFoundError(f"label file not found: {label_path} (sample '{index.key(i)}')")
            with np.load(label_path, allow_pickle=False) as labels:
                seg = labels["seg"]
            fx, fy, cx, cy = index.intrinsics[i].astype(np.float64)
            k = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
            silhouette = mesh_silhouette(hand, faces, k, seg.shape[1], seg.shape[0])
            ratios[index.key(i)] = occlusion_ratio(seg == HAND_LABEL, silhouette)
    return ratios


def write_occlusion_file(root: str | Path, setup: str, split: str, mano_root: str | Path) -> tuple[Path, dict]:
    """Write ``<root>/hand_occ_{setup}_{split}.npy``; returns (path, ratios)."""
    ratios = occlusion_ratios(root, setup, split, mano_root)
    return write_label_dict(Path(root) / f"hand_occ_{setup}_{split}.npy", ratios), ratios


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=os.environ.get(ROOT_ENV), help=f"DexYCB root (default: ${ROOT_ENV})")
    parser.add_argument("--mano_root", default=None, help="MANO folder (default: $MANO_ROOT)")
    parser.add_argument("--data_split", nargs="+", required=True, help="e.g. s0_train s0_test")
    args = parser.parse_args(argv)
    if not args.root:
        parser.error(f"give --root or set the environment variable {ROOT_ENV}")
    mano_root = resolve_mano_root(args.mano_root)
    for name in args.data_split:
        setup, split = parse_split_name(name)
        path, ratios = write_occlusion_file(args.root, setup, split, mano_root)
        values = np.array(list(ratios.values()))
        print(f"{path}: {len(values)} samples, mean visible ratio {values.mean() if len(values) else float('nan'):.3f}")


if __name__ == "__main__":
    command_main(main)
