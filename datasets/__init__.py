"""Datasets: raw files -> per-sample records -> official sample dicts; the registry and loaders.

Importing the package registers the datasets under their official ``cfg.data.name`` (``DEX_YCB_HOPE``,
``HO3D_HOPE``; the aliases ``DEX_YCB`` / ``HO3D`` resolve to them).
"""
from datasets.registry import (DATASETS, build_dataset, build_loader, official_dataset_name,  # noqa: F401
                               register_dataset)
from datasets import dexycb  # noqa: F401  (registers DEX_YCB_HOPE)
from datasets import ho3d  # noqa: F401  (registers HO3D_HOPE)
