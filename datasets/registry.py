"""Dataset registry, the config -> settings translation, and the official DataLoader settings.

Dataset builders register under the official ``cfg.data.name`` values (``DEX_YCB_HOPE``, ``HO3D_HOPE``, as the
official experiment files spell them; ``DEX_YCB`` / ``HO3D`` are accepted aliases) with :func:`register_dataset`;
:func:`build_dataset` looks the name up and raises a KeyError listing the known names on a miss. Only the
functions here and the registered builders read the config.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from torch.utils.data import DataLoader, Dataset

from datasets.hand_object_sample import SampleSettings
from utils.errors import ConfigKeyError
from utils.registry import registering
from utils.runtime import worker_init_fn

DATASETS: dict[str, Callable] = {}
REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
SPLITS = ("train", "val", "test")
# Extra resized copies of the crop: config key -> batch key (docs/official-data.md §2.7).
EXTRA_IMAGE_KEYS = {"input_img_shape_1": "img_1", "input_img_shape_cls": "img_cls",
                    "input_img_shape_h": "img_h", "input_img_shape_ho": "img_ho"}


# Names this project's configs used before adopting the official spelling; still accepted.
DATASET_ALIASES = {"DEX_YCB": "DEX_YCB_HOPE", "HO3D": "HO3D_HOPE"}


def register_dataset(name: str):
    """Decorator: register ``builder(cfg, split) -> Dataset`` under the official dataset name (a duplicate name is
    an error)."""
    return registering(DATASETS, "dataset", name)


def official_dataset_name(name: str) -> str:
    """The official spelling of a ``cfg.data.name`` (``DEX_YCB`` -> ``DEX_YCB_HOPE``, ``HO3D`` -> ``HO3D_HOPE``)."""
    return DATASET_ALIASES.get(name, name)


def build_dataset(cfg, split: str) -> Dataset:
    """The dataset named ``cfg.data.name`` for ``split`` in train / val / test."""
    if split not in SPLITS:
        raise KeyError(f"unknown split {split!r}; expected one of {SPLITS}")
    try:
        builder = DATASETS[official_dataset_name(cfg.data.name)]
    except KeyError:
        raise ConfigKeyError(f"unknown dataset cfg.data.name={cfg.data.name!r} in {cfg.source}; known: "
                             f"{sorted(DATASETS)} (also accepted: {sorted(DATASET_ALIASES)})") from None
    return builder(cfg, split)


def dataset_root(cfg, default: str) -> Path:
    """``cfg.data.root_dir`` (honoured here; the official code ignored it), else the official default ``default``.

    A relative path (the official files write ``data/DexYCB``; the official loaders read ``./data/DexYCB`` from
    the repository root) is taken relative to the repository root, never to the current directory. A folder
    that does not exist is an error naming the key, the config file and the resolved path.
    """
    given = cfg.data.root_dir
    root = Path(given if given else default).expanduser()
    root = root if root.is_absolute() else REPOSITORY_ROOT / root
    if not root.is_dir():
        origin = f"data.root_dir={given!r}" if given else f"data.root_dir unset (official default {default!r})"
        raise FileNotFoundError(f"{cfg.source}: {origin} -> dataset folder {root} does not exist; set data.root_dir "
                                f"(in cfg.json or --set data.root_dir=/path/to/{Path(default).name})")
    return root


def sample_settings(cfg, split: str, rotation: str) -> SampleSettings:
    """Translate ``cfg.data`` into :class:`SampleSettings` for one split (augmentation/pairs in train only)."""
    data = cfg.data
    train = split == "train"
    extra = {key: int(getattr(data, cfg_key)[0]) for cfg_key, key in EXTRA_IMAGE_KEYS.items()
             if getattr(data, cfg_key)}
    return SampleSettings(
        res=int(data.input_img_shape[0]), augment=train, rotation=rotation,
        use_data_aug_h=data.use_data_aug_h, use_data_aug_ho=data.use_data_aug_ho,
        use_data_aug_h_gen=data.use_data_aug_h_gen, pair_same_data_aug=data.pair_same_data_aug,
        contrastive=train and data.contrastive, filter_rule=data.filter_rule,
        score_threshold=data.score_threshold, occ_threshold=data.occ_threshold,
        bbox_hand_normalize_2d_joint=data.bbox_hand_normalize_2d_joint, extra_resolutions=extra)


def build_loader(cfg, split: str, dataset: Dataset | None = None) -> DataLoader:
    """DataLoader with the official settings: train shuffles and drops the last partial batch; val/test
    follow ``cfg.test.shuffle`` and keep every sample; workers reseed python/numpy from torch's seed.

    For GPUs: batches land in pinned memory when CUDA is present (the accelerator then copies them without
    blocking), each worker keeps ``data.prefetch_factor`` batches ready, and val/test workers persist across
    epochs. Train workers start afresh every epoch: each holds a copy of the dataset, and the training loop sets
    the dataset's epoch (which seeds each sample's augmentation) in the main process before the epoch starts.
    """
    dataset = build_dataset(cfg, split) if dataset is None else dataset
    train = split == "train"
    section = cfg.train if train else cfg.test
    workers = int(section.num_workers)
    return DataLoader(
        dataset, batch_size=int(section.batch_size), shuffle=True if train else bool(cfg.test.shuffle),
        drop_last=train, num_workers=workers, pin_memory=torch.cuda.is_available(),
        prefetch_factor=int(cfg.data.prefetch_factor) if workers > 0 else None,
        worker_init_fn=worker_init_fn, persistent_workers=workers > 0 and not train)
