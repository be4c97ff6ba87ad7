"""Datasets: raw files -> per-sample records -> official sample dicts; the registry and loaders.

Importing the package registers the datasets (``DEX_YCB``, ``HO3D``) under their official ``cfg.data.name``.
"""
from datasets.registry import DATASETS, build_dataset, build_loader, register_dataset  # noqa: F401
from datasets import dexycb  # noqa: F401  (registers DEX_YCB)
from datasets import ho3d  # noqa: F401  (registers HO3D)
