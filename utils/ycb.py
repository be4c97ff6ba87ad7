"""YCB objects as numbered in DexYCB, and the 21 box keypoints of an object point cloud.

DexYCB class ids run 1..21 (same numbering as YCB-Video / BOP ycbv); the official loaders use them as
``obj_cls`` (test), mesh-dict keys and ``obj_cls_label + 1``. Reference: docs/official-data.md §8.5,
§2.1; docs/official-model.md §1.8.
"""
import numpy as np

__all__ = [
    "YCB_CLASSES",
    "DEXYCB_SYMMETRIC_IDS",
    "BBOX21_NAMES",
    "ycb_class_name",
    "bbox21_from_points",
    "box_diameter",
]

YCB_CLASSES = {
    1: "002_master_chef_can",
    2: "003_cracker_box",
    3: "004_sugar_box",
    4: "005_tomato_soup_can",
    5: "006_mustard_bottle",
    6: "007_tuna_fish_can",
    7: "008_pudding_box",
    8: "009_gelatin_box",
    9: "010_potted_meat_can",
    10: "011_banana",
    11: "019_pitcher_base",
    12: "021_bleach_cleanser",
    13: "024_bowl",
    14: "025_mug",
    15: "035_power_drill",
    16: "036_wood_block",
    17: "037_scissors",
    18: "040_large_marker",
    19: "051_large_clamp",
    20: "052_extra_large_clamp",
    21: "061_foam_brick",
}

# Objects evaluated with ADD-S (closest-point distance) by the official object metric:
# 024_bowl, 036_wood_block, 052_extra_large_clamp, 061_foam_brick.
DEXYCB_SYMMETRIC_IDS = frozenset({13, 16, 20, 21})

# Official keypoint order. Corners are named [b]ottom/[t]op (z min/max), [l]eft/[r]ight (x min/max),
# [b]ack/[f]ront (y min/max); "..e" are the 12 edge midpoints; the last one is the box centre.
BBOX21_NAMES = (
    "blb", "brb", "blf", "brf", "tlb", "trb", "tlf", "trf",
    "ble", "bre", "bfe", "bbe", "tle", "tre", "tfe", "tbe",
    "lfe", "lbe", "rfe", "rbe", "centre",
)
# Edge midpoints as pairs of corner indices (into the first 8 entries above).
_EDGE_CORNERS = (
    (0, 2), (1, 3), (2, 3), (0, 1),  # bottom: left, right, front, back
    (4, 6), (5, 7), (6, 7), (4, 5),  # top: left, right, front, back
    (2, 6), (0, 4), (3, 7), (1, 5),  # vertical: left-front, left-back, right-front, right-back
)


def ycb_class_name(class_id):
    """Name of a DexYCB class id (1..21), e.g. 13 -> '024_bowl'. Unknown ids raise ``KeyError``."""
    try:
        return YCB_CLASSES[int(class_id)]
    except KeyError:
        raise KeyError(f"unknown DexYCB object class id {class_id!r}; expected an integer in 1..21") from None


def _points_array(points):
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or len(points) == 0:
        raise ValueError(f"object points must have shape (P, 3) with P >= 1, got {points.shape}")
    return points


def bbox21_from_points(points):
    """21 keypoints of the axis-aligned 3D box of an object point cloud, in the official order.

    Args:
        points: (P, 3) object model points (e.g. DexYCB ``points.xyz``), metres, object frame.

    Returns:
        (21, 3) float64: 8 corners, 12 edge midpoints, centre (see ``BBOX21_NAMES``), same frame/units.
    """
    points = _points_array(points)
    lo, hi = points.min(axis=0), points.max(axis=0)
    bits = np.array([[(i >> 0) & 1, (i >> 1) & 1, (i >> 2) & 1] for i in range(8)])  # (8, 3) x, y, z bits
    corners = np.where(bits == 1, hi, lo)  # (8, 3): index = x_bit + 2*y_bit + 4*z_bit
    edges = np.stack([(corners[a] + corners[b]) / 2 for a, b in _EDGE_CORNERS])  # (12, 3)
    centre = ((lo + hi) / 2)[None]
    return np.concatenate([corners, edges, centre], axis=0)


def box_diameter(points):
    """Object "diameter" as the official code defines it: the diagonal length of the axis-aligned box (metres)."""
    points = _points_array(points)
    return float(np.linalg.norm(points.max(axis=0) - points.min(axis=0)))
