"""The de-occluded pair index of a synthetic tree, from its exact de-occluded renders.

The loaders read de-occluded partners as crops of the **un-augmented fused hand+object region** (left hands
mirrored) listed in a pair index (:mod:`datasets.deocc_pairs`). For every grasping training sample of a
setup this module cuts that region out of the frame's ``deoccluded_XXXXXX.jpg`` (written by the generator
next to ``color_XXXXXX.jpg``) exactly as the loader cuts the original (:func:`datasets.transforms.warp_image`,
nearest neighbour, at ``store_res``), and writes the run layout of the de-occluder
(:class:`data_creation.deocclusion.run.OutputLayout`)::

    <root>/deocc/dexycb_<setup>_train_v<gen_version>[_p<part>].json     pair index (the path the loader reads)
    <root>/deocc/dexycb_<setup>_train_v<gen_version>/crops/<key>.png      store_res x store_res RGB crop
    <root>/deocc/dexycb_<setup>_train_v<gen_version>/results/<key>.json   {"status": "exact", scores, occ_ratio, source}

Scores: ``ori_score = gen_score = 0`` (an exact render has no pose error); strength 0. Note that with the
``score`` filter rule and ``score_threshold = 0`` the loader drops such pairs (``0 + 0 - 0 >= 0``); the
UniHOPE configs use the ``occ`` rule. Needs the annotation and grasp files of the setup (run
``create_dataset_dexycb`` and ``prepare_grasp_dexycb`` first) and uses ``hand_occ_<setup>_train.npy`` when present.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from data_creation.deocclusion.run import OutputLayout
from data_creation.synthetic.sequence_writer import DEOCCLUDED_NAME
from datasets.deocc_pairs import PairEntry, pair_index_path, write_pair_index
from datasets.dexycb import DexYCBDataset
from datasets.geometry import crop_transform
from datasets.hand_object_sample import SampleSettings, crop_region, mirrored_view
from datasets.label_files import read_rgb
from datasets.transforms import warp_image
from utils.atomic import atomic_write_json
from utils.mano_io import load_mano_assets

STORE_RES = 128


def deoccluded_path(color_path: str | Path) -> Path:
    """``.../color_000012.jpg`` -> ``.../deoccluded_000012.jpg``."""
    color_path = Path(color_path)
    return color_path.with_name(DEOCCLUDED_NAME.format(int(color_path.stem.split("_")[-1])))


def fused_crop(image: np.ndarray, record, res: int) -> np.ndarray:
    """(res, res, 3) un-augmented fused hand+object crop of a full frame (left hands mirrored)."""
    height, width = image.shape[:2]
    view = mirrored_view(record, width)
    if record.is_left:
        image = np.ascontiguousarray(image[:, ::-1])
    centre, scale = crop_region(view, True, width, height)
    return warp_image(image, crop_transform(centre, scale, 0.0, res), res)


def write_exact_pairs(root: str | Path, setup: str, mano_root: str | Path, gen_version: int = 1, gen_part: int = 1,
                      store_res: int = STORE_RES) -> tuple[Path, int]:
    """Write the crops, per-frame results and pair index of ``setup``'s training split; returns (index, pairs)."""
    root = Path(root)
    dataset = DexYCBDataset(root, setup, "train", load_mano_assets(mano_root, "right"),
                            load_mano_assets(mano_root, "left"), SampleSettings(res=store_res))
    index_path = pair_index_path(root, f"dexycb_{setup}", gen_version, gen_part)
    out = OutputLayout(index_path)
    pairs = {}
    for i in range(len(dataset)):
        record = dataset.record(i)
        if not record.grasping:
            continue
        source = deoccluded_path(record.image_path)
        if not source.is_file():
            raise FileNotFoundError(f"grasping sample '{record.key}' has no exact de-occluded render {source} "
                                    f"(trees written by data_creation.synthetic.make_synthetic have one per grasping frame)")
        crop_path, result_path = out.crop_path(record.key), out.result_path(record.key)
        for folder in (crop_path.parent, result_path.parent):
            folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(fused_crop(read_rgb(source), record, store_res)).save(crop_path)
        atomic_write_json(result_path, {
            "key": record.key, "status": "exact", "ori_score": 0.0, "gen_score": 0.0, "strength": 0.0,
            "occ_ratio": record.occ_ratio, "source": str(source.relative_to(root))})
        pairs[record.key] = PairEntry(str(crop_path), 0.0, 0.0, 0.0)
    write_pair_index(index_path, pairs)
    return index_path, len(pairs)
