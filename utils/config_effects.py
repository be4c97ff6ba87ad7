"""Official config keys that are accepted but have no effect here, and what the official code did with them.

Every key of the schema in ``utils/config.py`` either acts or is listed in :data:`INERT_KEYS`. The official
experiment files set several of them (docs/official-data.md §7), so they must load; a value that would change
the official run but not ours is reported at start-up by :func:`inert_key_warnings` (key, file, what the official
code did, what happens here), never silently dropped. Values that match our behaviour are not reported
(``data.load_nori: false`` reads local files here as there).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

# Models whose official constructor loaded MobRecon's densestack.pth when ``model.pretrain`` was true.
DENSESTACK_MODELS = ("mobrecon", "h2onet")


@dataclass(frozen=True)
class InertKey:
    """``key`` (dotted, sub-dictionary keys included), what the official code did with it, what happens here, and
    ``matters(cfg, value)``: whether the value a config sets would have changed the official run."""

    key: str
    official: str
    here: str
    matters: Callable[[Any, Any], bool]


def _is_set(cfg, value) -> bool:
    return value is not None


INERT_KEYS = (
    InertKey("data.transforms_type", "never read (it named an unused ToTensor transform)", "no effect either",
             _is_set),
    InertKey("data.load_nori", "read every sample from the authors' private nori storage (required there for HO3D "
             "train/val and the de-occluded pairs)", "samples are always read from local files under data.root_dir",
             lambda cfg, value: bool(value)),
    InertKey("metric.major_metric", "named the validation metric whose running average selects "
             "<split>_model_best.pth", "selection always uses 'score' (MPJPE + PA-MPJPE + MPVPE + PA-MPVPE, lower is "
             "better)", lambda cfg, value: value != "score"),
    InertKey("test.test_part", "chose which half of a paired (contrastive) output the validation metric reads",
             "validation and test batches are never paired, so only part 0 exists",
             lambda cfg, value: value != 0),
    InertKey("model.pretrain", "loaded MobRecon's densestack.pth from a fixed relative path at construction "
             "(MobRecon, H2ONet; matters for training only)", "nothing is loaded unless model.backbone_weights names "
             "the file", lambda cfg, value: bool(value) and cfg.model.name in DENSESTACK_MODELS
             and not cfg.model.backbone_weights),
    InertKey("model.BACKBONE.pretrain", "downloaded ImageNet FastViT weights from the network at construction "
             "(SimpleHand; matters for training only)", "nothing is downloaded: random initialisation unless "
             "model.backbone_weights names a local timm file",
             lambda cfg, value: bool(value) and not cfg.model.backbone_weights),
    InertKey("model.BACKBONE.out_feature_channel", "not read (the width comes from the timm model)",
             "no effect either", _is_set),
    InertKey("model.DEPTH_HEAD", "not read by the SimpleHand model", "no effect either", _is_set),
    InertKey("model.LOSSES", "not read (the SimpleHand loss hard-coded its weights)", "no effect either: the "
             "SimpleHand loss uses the official weights", _is_set),
    *(InertKey(f"loss.{name}", "weighted only HandOccNet's extra validation-metric entries (its loss hard-coded the "
               "same values)", "not read: the HandOccNet loss weights are loss.weight.mano_lambda_verts3d, "
               "mano_lambda_joints3d, mano_lambda_manopose, mano_lambda_manoshape, lambda_joints2d (defaults = the "
               "official values)", _is_set)
      for name in ("lambda_mano_verts", "lambda_mano_joints", "lambda_mano_pose", "lambda_mano_shape",
                   "lambda_joints_img")),
)


def config_value(cfg, dotted: str):
    """The value at ``section.key[.sub_key...]`` of a config (attributes, then dict keys); None when absent."""
    section, key, *rest = dotted.split(".")
    value = getattr(getattr(cfg, section), key)
    for part in rest:
        value = value.get(part) if isinstance(value, dict) else None
    return value


def inert_key_warnings(cfg) -> list[str]:
    """One message per key of :data:`INERT_KEYS` that ``cfg`` sets to a value that mattered officially."""
    messages = []
    for inert in INERT_KEYS:
        value = config_value(cfg, inert.key)
        if inert.matters(cfg, value):
            messages.append(f"{cfg.source}: {inert.key}={value!r} has no effect here; official code: {inert.official};"
                            f" here: {inert.here}")
    return messages
