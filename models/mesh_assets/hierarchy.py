"""Mesh hierarchy of the MobRecon / H2ONet decoders: levels, sampling matrices and spirals, cached on disk.

Reference: docs/official-baselines.md §7 (the official ``spiral_tramsform`` with ds_factors [2, 2, 2, 2],
seq_length [9, 9, 9, 9], dilation [1, 1, 1, 1]). The hierarchy is derived from a template mesh (by default
the user's MANO template and faces) by :mod:`.decimation`, :mod:`.upsampling` and :mod:`.spirals`, and
stored as one ``.npz`` per input in a cache folder, named by a hash of everything it depends on, so a changed
template or setting is rebuilt and an unchanged one is read back. Pure numpy/scipy.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from models.mesh_assets.decimation import qslim_decimate, target_vertex_count
from models.mesh_assets.spirals import spiral_indices
from models.mesh_assets.upsampling import upsampling_matrix
from utils.atomic import atomic_write

__all__ = ["MeshHierarchy", "build_mesh_hierarchy", "load_or_build_mesh_hierarchy", "hierarchy_cache_key",
           "DECODER_DOWNSAMPLE_FACTORS", "DECODER_SPIRAL_LENGTHS", "DECODER_SPIRAL_DILATIONS", "CACHE_DIR_ENV",
           "default_cache_dir"]

DECODER_DOWNSAMPLE_FACTORS = (2, 2, 2, 2)
DECODER_SPIRAL_LENGTHS = (9, 9, 9, 9)
DECODER_SPIRAL_DILATIONS = (1, 1, 1, 1)
CACHE_DIR_ENV = "UNIHOPE_CACHE_DIR"
ALGORITHM_VERSION = 1  # bump when a construction rule changes: old cache files are then ignored


@dataclass(frozen=True, eq=False)
class MeshHierarchy:
    """Levels 0 (template) .. L of a mesh decimated by the given factors.

    Attributes:
        vertices: per level (N_k, 3) float64 positions (level k+1 is a subset of level k).
        faces: per level (F_k, 3) int64.
        kept: per down-sampling step k (N_{k+1},) int64 ids into level k of the surviving vertices.
        up_rows / up_cols / up_values: per step k the COO triplets of U_k (N_k, N_{k+1}), 3 per row,
            explicit zeros kept (fine level-k vertices ~= U_k @ level k+1 vertices).
        spirals: per level 0..L-1 (N_k, seq_length_k) int64 spiral vertex ids (the coarsest level has none).
    """

    vertices: tuple
    faces: tuple
    kept: tuple
    up_rows: tuple
    up_cols: tuple
    up_values: tuple
    spirals: tuple

    @property
    def num_vertices(self) -> tuple:
        return tuple(len(v) for v in self.vertices)

    def down_matrix(self, step: int) -> sp.csr_matrix:
        """D_k (N_{k+1}, N_k) 0/1 selection: coarse vertices = D_k @ fine vertices."""
        kept = self.kept[step]
        return sp.csr_matrix((np.ones(len(kept)), (np.arange(len(kept)), kept)),
                             shape=(len(kept), len(self.vertices[step])))

    def up_matrix(self, step: int) -> sp.csr_matrix:
        """U_k (N_k, N_{k+1}) as a sparse float64 matrix."""
        shape = (len(self.vertices[step]), len(self.vertices[step + 1]))
        return sp.csr_matrix((self.up_values[step], (self.up_rows[step], self.up_cols[step])), shape=shape)

    def dense_up_matrices(self, dtype=np.float32) -> list:
        """[U_0, ..., U_{L-1}] as dense arrays (the official float32 values)."""
        return [self.up_matrix(k).astype(dtype).toarray() for k in range(len(self.kept))]


def build_mesh_hierarchy(vertices, faces, factors=DECODER_DOWNSAMPLE_FACTORS, seq_lengths=DECODER_SPIRAL_LENGTHS,
                         dilations=DECODER_SPIRAL_DILATIONS) -> MeshHierarchy:
    """Decimate ``vertices`` (N, 3) / ``faces`` (F, 3) by each factor in turn; build U and the spirals.

    ``seq_lengths`` / ``dilations`` give one spiral setting per level 0..len(factors)-1.
    """
    if not len(seq_lengths) == len(dilations) == len(factors):
        raise ValueError(f"need one spiral length and dilation per decimation step: factors {factors}, "
                         f"seq_lengths {seq_lengths}, dilations {dilations}")
    level_vertices = [np.asarray(vertices, dtype=np.float64)]
    level_faces = [np.asarray(faces, dtype=np.int64)]
    kept, ups = [], []
    for factor in factors:
        fine_v, fine_f = level_vertices[-1], level_faces[-1]
        survivors, coarse_f = qslim_decimate(fine_v, fine_f, target_vertex_count(len(fine_v), factor))
        coarse_v = fine_v[survivors]
        kept.append(survivors)
        ups.append(upsampling_matrix(coarse_v, coarse_f, fine_v))
        level_vertices.append(coarse_v)
        level_faces.append(coarse_f)
    spirals = [spiral_indices(level_vertices[k], level_faces[k], seq_lengths[k], dilations[k])
               for k in range(len(factors))]
    return MeshHierarchy(vertices=tuple(level_vertices), faces=tuple(level_faces), kept=tuple(kept),
                         up_rows=tuple(u[0] for u in ups), up_cols=tuple(u[1] for u in ups),
                         up_values=tuple(u[2] for u in ups), spirals=tuple(spirals))


def hierarchy_cache_key(vertices, faces, factors, seq_lengths, dilations) -> str:
    """sha256 hex of the template (float64 vertices, int64 faces), the settings and the algorithm version."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(vertices, dtype=np.float64).tobytes())
    digest.update(np.ascontiguousarray(faces, dtype=np.int64).tobytes())
    settings = {"factors": list(factors), "seq_lengths": list(seq_lengths), "dilations": list(dilations),
                "version": ALGORITHM_VERSION, "shapes": [list(np.shape(vertices)), list(np.shape(faces))]}
    digest.update(json.dumps(settings, sort_keys=True).encode())
    return digest.hexdigest()


def default_cache_dir() -> Path:
    """``$UNIHOPE_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/unihope`` (default ``~/.cache/unihope``)."""
    explicit = os.environ.get(CACHE_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser().absolute()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser().absolute() / "unihope"


_FIELDS = ("vertices", "faces", "kept", "up_rows", "up_cols", "up_values", "spirals")


def _save(hierarchy: MeshHierarchy, path: Path) -> None:
    arrays = {f"{name}_{k}": array for name in _FIELDS for k, array in enumerate(getattr(hierarchy, name))}
    with atomic_write(path, mode="wb") as f:
        np.savez(f, **arrays)


def _load(path: Path) -> MeshHierarchy:
    with np.load(path, allow_pickle=False) as data:
        names = set(data.files)
        fields = {}
        for name in _FIELDS:
            count = sum(1 for key in names if key.rsplit("_", 1)[0] == name)
            if count == 0:
                raise ValueError(f"mesh hierarchy cache {path} has no '{name}_0' array (delete the file to rebuild)")
            fields[name] = tuple(data[f"{name}_{k}"] for k in range(count))
    return MeshHierarchy(**fields)


def load_or_build_mesh_hierarchy(vertices, faces, cache_dir=None, factors=DECODER_DOWNSAMPLE_FACTORS,
                                 seq_lengths=DECODER_SPIRAL_LENGTHS,
                                 dilations=DECODER_SPIRAL_DILATIONS) -> tuple[MeshHierarchy, Path]:
    """The hierarchy of this template and setting, read from ``cache_dir`` (default :func:`default_cache_dir`)
    if built before, else built and written there. Returns (hierarchy, cache file path)."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = hierarchy_cache_key(vertices, faces, factors, seq_lengths, dilations)
    path = cache_dir / f"mesh_hierarchy_{key[:24]}.npz"
    if path.is_file():
        return _load(path), path
    hierarchy = build_mesh_hierarchy(vertices, faces, factors, seq_lengths, dilations)
    cache_dir.mkdir(parents=True, exist_ok=True)
    _save(hierarchy, path)
    return hierarchy, path
