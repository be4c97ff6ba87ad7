"""Datasets: raw files -> per-sample records -> official sample dicts; the registry and loaders.

Importing the package registers the datasets under their official ``cfg.data.name`` (``DEX_YCB_HOPE``,
``HO3D_HOPE``; also ``DEX_YCB`` / ``HO3D``).
"""
from datasets.registry import DATASETS, build_dataset, build_loader, register_dataset  # noqa: F401
from datasets import dexycb  # noqa: F401  (registers DEX_YCB_HOPE)
from datasets import ho3d  # noqa: F401  (registers HO3D_HOPE)
