"""Training losses of the baseline methods, one section per model family (reference: docs/official-baselines.md §11).

Every loss follows :mod:`models.losses`: ``loss(batch, outputs) -> {term: scalar tensor, ..., "total": sum}``,
registered under the official ``cfg.loss.name`` with :func:`models.losses.register_loss`. Every term is the
mean over its elements, as officially.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from models.losses import LossWeights, object_voting_loss, register_loss
from utils.errors import ConfigKeyError
from utils.mano_io import load_mano_assets, resolve_mano_root

__all__ = ["ManoRegressionLoss", "mano_regression_weights"]


# ----------------------------------------------------------------------------------------------------------------
# HandOccNet (``hand_occ_net``) and Semi-Hand(-Object) (``semi_hand``, ``semi_hand_object``)
# ----------------------------------------------------------------------------------------------------------------
# Weights: mano_lambda_verts3d 1e4, mano_lambda_joints3d 1e4, mano_lambda_manopose 10, mano_lambda_manoshape 0.1,
# lambda_joints2d 100 and (object votes) lambda_objects 500 -> confidence weight 100: the official hard-coded
# values, the defaults of models.losses.LossWeights; overridable through cfg.loss.weight.

SHAPE_REGUL_WEIGHT = 1e2
POSE_REGUL_WEIGHT = 1.0
NUM_GLOBAL_POSE = 3  # axis-angle values of the global rotation at the start of the MANO pose
MANO_TERM_WEIGHTS = ("mano_lambda_verts3d", "mano_lambda_joints3d", "mano_lambda_manopose", "mano_lambda_manoshape",
                     "lambda_joints2d", "lambda_objects")


def _required(mapping, key, what, hint):
    """``mapping[key]``; a miss raises KeyError naming the key, where it was expected and how to provide it."""
    if key not in mapping:
        raise KeyError(f"{what} has no '{key}' ({hint})")
    return mapping[key]


def mano_regression_terms(batch, outputs, weights: LossWeights) -> dict:
    """The five supervised terms of HandOccNet (official names), each ``weight * MSE``:

    ``mano_verts`` (B, 778, 3) m, ``mano_joints`` (B, 21, 3) m, ``mano_pose`` rotation matrices (B, 16, 3, 3),
    ``mano_shape`` betas (B, 10), ``joints_img`` predicted 2D joints vs ``batch['joints_img']`` (B, 21, 2) (both
    normalised to the image for HandOccNet, to the hand box for Semi-Hand).
    """
    gt_hint = "the model returns GT meshes only when the batch carries mano_param"
    pairs = (("mano_verts", "verts3d_cam", weights.mano_lambda_verts3d),
             ("mano_joints", "joints3d_cam", weights.mano_lambda_joints3d),
             ("mano_pose", "mano_pose", weights.mano_lambda_manopose),
             ("mano_shape", "mano_shape", weights.mano_lambda_manoshape))
    terms = {name: weight * F.mse_loss(outputs[f"pred_{key}"],
                                       _required(outputs, f"gt_{key}", "model outputs", gt_hint))
             for name, key, weight in pairs}
    gt_uv = _required(batch, "joints_img", "batch", "2D joint labels of the loader")
    terms["joints_img"] = weights.lambda_joints2d * F.mse_loss(outputs["pred_joints_img"], gt_uv)
    return terms


def mano_regularisers(outputs) -> dict:
    """Semi-Hand's priors: ``shape_regul`` = 100 * MSE(betas, 0), ``pose_regul`` = 1 * MSE(finger pose, 0) on the
    45 finger axis-angle values of ``pred_mano_pose_aa`` (B, 48): towards the flat hand.

    The official code applies the pose prior to ``pred_mano_pose[:, 3:]``, which there holds rotation
    *matrices* (B, 16, 3, 3), pulling 13 joint matrices towards zero (docs/official-baselines.md §11, §15.7); the
    intended axis-angle prior is implemented here.
    """
    shape = outputs["pred_mano_shape"]
    finger_pose = outputs["pred_mano_pose_aa"][:, NUM_GLOBAL_POSE:]
    return {"shape_regul": SHAPE_REGUL_WEIGHT * F.mse_loss(shape, torch.zeros_like(shape)),
            "pose_regul": POSE_REGUL_WEIGHT * F.mse_loss(finger_pose, torch.zeros_like(finger_pose))}


class ManoRegressionLoss:
    """``hand_occ_net`` (supervised terms), ``semi_hand`` (+ regularisers) and ``semi_hand_object`` (+ the object
    voting loss ``obj_total_loss`` on every sample: 500 * L1 keypoint regression + 100 * L1 confidence, from
    ``preds_obj`` (train-mode outputs), ``batch['obj_p2d']`` (B, 21, 2) and ``batch['obj_mask']`` (B, 32, 32)).
    """

    def __init__(self, weights: LossWeights, regularise: bool = False, object_votes: bool = False):
        self.weights, self.regularise, self.object_votes = weights, regularise, object_votes

    def __call__(self, batch: dict, outputs: dict) -> dict:
        losses = mano_regression_terms(batch, outputs, self.weights)
        if self.regularise:
            losses.update(mano_regularisers(outputs))
        if self.object_votes:
            preds_obj = _required(outputs, "preds_obj", "model outputs", "train-mode outputs of semi_hand_object")
            obj_p2d = _required(batch, "obj_p2d", "batch", "object keypoints of the training loader")
            every_sample = torch.ones(obj_p2d.shape[0], dtype=torch.bool, device=obj_p2d.device)
            obj_mask = _required(batch, "obj_mask", "batch", "object masks of the training loader")
            losses["obj_total_loss"] = object_voting_loss(preds_obj, obj_p2d, obj_mask, every_sample, self.weights)
        losses["total"] = sum(losses.values())
        return losses


def mano_regression_weights(cfg) -> LossWeights:
    """Term weights from ``cfg.loss.weight`` (official defaults for absent keys); other keys are an error."""
    unknown = sorted(set(cfg.loss.weight) - set(MANO_TERM_WEIGHTS))
    if unknown:
        raise ConfigKeyError(f"{cfg.source}: loss.weight keys {unknown} are not weights of loss '{cfg.loss.name}'; "
                       f"known: {list(MANO_TERM_WEIGHTS)}")
    return LossWeights(**{k: float(v) for k, v in cfg.loss.weight.items()})


@register_loss("hand_occ_net")
def build_hand_occ_net_loss(cfg):
    return ManoRegressionLoss(mano_regression_weights(cfg))


@register_loss("semi_hand")
def build_semi_hand_loss(cfg):
    return ManoRegressionLoss(mano_regression_weights(cfg), regularise=True)


@register_loss("semi_hand_object")
def build_semi_hand_object_loss(cfg):
    return ManoRegressionLoss(mano_regression_weights(cfg), regularise=True, object_votes=True)


# ----------------------------------------------------------------------------------------------------------------
# MobRecon (``mobrecon``) and H2ONet (``h2onet``)
# ----------------------------------------------------------------------------------------------------------------
# Official terms and weights (docs/official-baselines.md §11): L1 on meshes / joints / 2D joints, 0.1 x normal loss,
# 1 x edge-length loss (both on the MANO faces), MSE on the global rotation matrix. A key of cfg.loss.weight that
# names a term replaces its weight; any other key is an error.

MOBRECON_TERM_WEIGHTS = {"verts_loss": 1.0, "joint_img_loss": 1.0, "normal_loss": 0.1, "edge_loss": 1.0}
H2ONET_TERM_WEIGHTS = {"verts_wo_gr_loss": 1.0, "verts_w_gr_loss": 1.0, "joints_w_gr_loss": 1.0,
                       "glob_rot_loss": 1.0, "joints_wo_gr_loss": 1.0, "joint_img_loss": 1.0,
                       "normal_wo_gr_loss": 0.1, "edge_wo_gr_loss": 1.0}
__all__ += ["normal_vector_loss", "edge_length_loss", "MeshRegressionLoss", "mesh_term_weights"]


def _face_edges(verts, faces):
    """Edge vectors (B, F, 3) of every face (v0, v1, v2): v1 - v0, v2 - v0, v2 - v1."""
    v0, v1, v2 = (verts[:, faces[:, k]] for k in range(3))
    return v1 - v0, v2 - v0, v2 - v1


def normal_vector_loss(pred_verts, gt_verts, faces):
    """Mean over faces and the 3 predicted edges of |cos(angle)| between the normalised predicted edge and
    the GT unit face normal (I2L-MeshNet / MobRecon). verts (B, V, 3), faces (F, 3) int64."""
    gt_e1, gt_e2, _ = _face_edges(gt_verts, faces)
    gt_normal = F.normalize(torch.cross(F.normalize(gt_e1, dim=2), F.normalize(gt_e2, dim=2), dim=2), dim=2)
    cosines = [torch.abs((F.normalize(edge, dim=2) * gt_normal).sum(2)) for edge in _face_edges(pred_verts, faces)]
    return torch.stack(cosines, dim=1).mean()


def edge_length_loss(pred_verts, gt_verts, faces):
    """Mean over faces and their 3 edges of |predicted edge length - GT edge length| (metres)."""
    pred_lengths = torch.stack([edge.norm(dim=2) for edge in _face_edges(pred_verts, faces)], dim=1)
    gt_lengths = torch.stack([edge.norm(dim=2) for edge in _face_edges(gt_verts, faces)], dim=1)
    return (pred_lengths - gt_lengths).abs().mean()


class MeshRegressionLoss:
    """``mobrecon`` / ``h2onet``: weighted terms of the directly regressed mesh (metres, MANO frame).

    MobRecon: ``verts_loss`` L1(pred_verts3d_cam, gt_verts3d_cam), ``joint_img_loss`` L1(pred_joints_img,
    batch joints_img), ``normal_loss`` / ``edge_loss`` on pred vs GT vertices. H2ONet (``with_rotation``):
    the mesh terms on the rotation-free hand (``*_wo_gr``), plus, when ``w_gr``, L1 on the rotated vertices
    and joints (``*_w_gr``) and MSE of the global rotation matrices.
    """

    def __init__(self, faces, weights: dict, with_rotation: bool, w_gr: bool = True):
        self.faces = torch.as_tensor(faces, dtype=torch.int64)
        self.weights = dict(weights)
        self.with_rotation = with_rotation
        self.w_gr = w_gr

    def __call__(self, batch: dict, outputs: dict) -> dict:
        faces = self.faces.to(outputs["pred_verts3d_cam"].device)
        terms = {"joint_img_loss": F.l1_loss(outputs["pred_joints_img"], batch["joints_img"])}
        suffix = "_wo_gr" if self.with_rotation else "_cam"
        pred, gt = outputs[f"pred_verts3d{suffix}"], outputs[f"gt_verts3d{suffix}"]
        if self.with_rotation:
            terms["verts_wo_gr_loss"] = F.l1_loss(pred, gt)
            terms["joints_wo_gr_loss"] = F.l1_loss(outputs["pred_joints3d_wo_gr"], outputs["gt_joints3d_wo_gr"])
            terms["normal_wo_gr_loss"] = normal_vector_loss(pred, gt, faces)
            terms["edge_wo_gr_loss"] = edge_length_loss(pred, gt, faces)
            if self.w_gr:
                terms["verts_w_gr_loss"] = F.l1_loss(outputs["pred_verts3d_w_gr"], outputs["gt_verts3d_w_gr"])
                terms["joints_w_gr_loss"] = F.l1_loss(outputs["pred_joints3d_w_gr"], outputs["gt_joints3d_w_gr"])
                terms["glob_rot_loss"] = F.mse_loss(outputs["pred_glob_rot_mat"], outputs["gt_glob_rot_mat"])
        else:
            terms["verts_loss"] = F.l1_loss(pred, gt)
            terms["normal_loss"] = normal_vector_loss(pred, gt, faces)
            terms["edge_loss"] = edge_length_loss(pred, gt, faces)
        losses = {name: self.weights[name] * value for name, value in terms.items()}
        losses["total"] = sum(losses.values())
        return losses


def mesh_term_weights(defaults: dict, overrides: dict, source: str) -> dict:
    """``defaults`` with the values of ``overrides`` (cfg.loss.weight); an unknown term name is an error."""
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise ConfigKeyError(f"{source}: loss.weight has unknown term(s) {unknown}; known: {sorted(defaults)}")
    return {**defaults, **{name: float(value) for name, value in overrides.items()}}


def _mano_faces(cfg):
    """(1538, 3) int64 faces of the right-hand MANO model in ``cfg.base.mano_root`` (None -> $MANO_ROOT)."""
    return load_mano_assets(resolve_mano_root(cfg.base.mano_root), "right").faces


@register_loss("mobrecon")
def build_mobrecon_loss(cfg):
    weights = mesh_term_weights(MOBRECON_TERM_WEIGHTS, cfg.loss.weight, cfg.source)
    return MeshRegressionLoss(_mano_faces(cfg), weights, with_rotation=False)


@register_loss("h2onet")
def build_h2onet_loss(cfg):
    weights = mesh_term_weights(H2ONET_TERM_WEIGHTS, cfg.loss.weight, cfg.source)
    return MeshRegressionLoss(_mano_faces(cfg), weights, with_rotation=True, w_gr=cfg.train.w_gr)
