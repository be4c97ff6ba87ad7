"""A+B baseline (official ``TwoInOneBaselineClassifier``, model name ``twoinone_baseline_classifier``).

Spec: docs/official-model.md §2.3 and docs/official-baselines.md §10. A grasp classifier routes each sample
either to a hand-only model (``h_model``, on ``img_h`` if present else ``img``) or to a hand-object model
(``ho_model``, on ``img_ho`` if present else ``img``); results are merged back in input order.

Outputs: ``pred_verts3d_cam`` (B, 778, 3) m, ``pred_joints3d_cam`` (B, 21, 3) m, ``pred_grasping`` (B,) bool,
``gt_verts3d_cam`` / ``gt_joints3d_cam`` when every sub-model that ran returned them, and in eval mode
``preds_obj_0/1/2`` (B, R, R, K): the hand-object model's object outputs for routed samples, zeros elsewhere.
"""
import torch
from torch import nn

from models.blocks.classifier_heads import GRASPING
from models.registry import get_model_builder, register_model
from utils.config import config_from_dict

__all__ = ["TwoInOneBaselineClassifier", "select_samples", "build_two_in_one", "sub_model_config"]

MESH_KEYS = ("pred_verts3d_cam", "pred_joints3d_cam")
GT_MESH_KEYS = ("gt_verts3d_cam", "gt_joints3d_cam")
OBJECT_KEYS = ("preds_obj_0", "preds_obj_1", "preds_obj_2")
CLASSIFIER_INPUT_SIZE = 128  # the official GraspClassifier is hard-coded to 128 px (img_cls in HO3D)
SUB_MODEL_IMAGE_SHAPE_KEYS = {"cls_model": "input_img_shape_cls", "h_model": "input_img_shape_h",
                              "ho_model": "input_img_shape_ho"}


def select_samples(batch, mask, image_key):
    """Sub-batch of the samples where ``mask`` (B,) bool is True; ``batch[image_key]`` (if present) becomes
    ``img``. Tensors and lists with B entries are indexed; other values are passed unchanged."""
    size = mask.shape[0]
    keep = mask.tolist()
    sub = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == size:
            sub[key] = value[mask]
        elif isinstance(value, (list, tuple)) and len(value) == size:
            sub[key] = [item for item, selected in zip(value, keep) if selected]
        else:
            sub[key] = value
    if image_key in sub:
        sub["img"] = sub[image_key]
    return sub


def _scatter(mask, values):
    """Rows ``values`` (N, ...) placed at the True positions of ``mask`` (B,) in a zero tensor (B, ...)."""
    out = values.new_zeros((mask.shape[0], *values.shape[1:]))
    return out.index_put((mask,), values)


class TwoInOneBaselineClassifier(nn.Module):
    """Route each sample by the classifier's predicted grasp label (argmax == 1 -> ``ho_model``).

    ``cls_model(batch)`` must return ``pred_obj_conf`` (B, 2); ``h_model`` / ``ho_model`` return the mesh keys,
    and ``ho_model`` the object keys in eval mode plus attributes ``roi_res`` and ``num_object_keypoints``
    (the zero object maps when no sample is routed to it), as :class:`models.hflnet.HFLNet` does.
    """

    def __init__(self, cls_model, h_model, ho_model):
        super().__init__()
        self.cls_model = cls_model
        self.h_model = h_model
        self.ho_model = ho_model

    def forward(self, batch):
        grasping = self.cls_model(batch)["pred_obj_conf"].argmax(dim=1) == GRASPING  # (B,) bool
        routes = [(grasping, self.ho_model, "img_ho"), (~grasping, self.h_model, "img_h")]
        runs = [(mask, model(select_samples(batch, mask, image_key)))
                for mask, model, image_key in routes if mask.any()]
        output = {key: sum(_scatter(mask, out[key]) for mask, out in runs) for key in MESH_KEYS}
        output["pred_grasping"] = grasping
        if all(key in out for _, out in runs for key in GT_MESH_KEYS):
            output.update({key: sum(_scatter(mask, out[key]) for mask, out in runs) for key in GT_MESH_KEYS})
        if not self.training:
            output.update(self._object_outputs(batch, grasping, runs))
        return output

    def _object_outputs(self, batch, grasping, runs):
        """Object keypoint maps (B, R, R, K): hand-object model's rows for grasping samples, zeros elsewhere."""
        if grasping.any():
            ho_out = runs[0][1]
            return {key: _scatter(grasping, ho_out[key]) for key in OBJECT_KEYS}
        res, keypoints = self.ho_model.roi_res, self.ho_model.num_object_keypoints
        img = batch["img"]
        zeros = img.new_zeros((img.shape[0], res, res, keypoints))
        return {key: zeros.clone() for key in OBJECT_KEYS}


def sub_model_config(cfg, role):
    """Config of sub-model ``role`` ('cls_model' / 'h_model' / 'ho_model') of an A+B config.

    ``cfg.model.<role>`` is ``{"name": ..., "model": {...}}``; the result is the parent config with its
    ``model`` section replaced by ``{"name": ..., **model}`` and ``data.input_img_shape`` set to the
    sub-model's image size (``data.input_img_shape_cls/_h/_ho`` when given; the classifier defaults to 128 px).
    """
    spec = getattr(cfg.model, role)
    if not isinstance(spec, dict) or "name" not in spec:
        raise ValueError(f"{cfg.source}: model.{role} must be an object with a 'name' "
                         f"(e.g. {{\"name\": \"hflnet\"}}), got {spec!r}")
    raw = cfg.to_dict()
    raw["model"] = {"name": spec["name"], **spec.get("model", {})}
    image_shape = getattr(cfg.data, SUB_MODEL_IMAGE_SHAPE_KEYS[role])
    if image_shape is None and role == "cls_model":
        image_shape = [CLASSIFIER_INPUT_SIZE, CLASSIFIER_INPUT_SIZE]
    if image_shape is not None:
        raw["data"]["input_img_shape"] = list(image_shape)
    return config_from_dict(raw, source=f"{cfg.source} (model.{role})")


@register_model("twoinone_baseline_classifier")
def build_two_in_one(cfg):
    """A+B model; each sub-model is built by the registry from :func:`sub_model_config`."""
    sub_models = {}
    for role in ("cls_model", "h_model", "ho_model"):
        sub_cfg = sub_model_config(cfg, role)
        sub_models[role] = get_model_builder(sub_cfg.model.name)(sub_cfg)
    return TwoInOneBaselineClassifier(**sub_models)
