"""Mesh-decoder assets of MobRecon / H2ONet, derived from a template mesh (pure numpy/scipy, no torch).

Decimation (:mod:`.decimation`), up-sampling matrices (:mod:`.upsampling`), spiral indices (:mod:`.spirals`)
and the cached hierarchy that combines them (:mod:`.hierarchy`). Reference: docs/official-baselines.md §7.
"""
from models.mesh_assets.hierarchy import (CACHE_DIR_ENV, MeshHierarchy, build_mesh_hierarchy, default_cache_dir,
                                          load_or_build_mesh_hierarchy)

__all__ = ["MeshHierarchy", "build_mesh_hierarchy", "load_or_build_mesh_hierarchy", "default_cache_dir",
           "CACHE_DIR_ENV"]
