"""The ground-truth hand mesh from a batch's MANO parameters, shared by every model family.

A batch carries the GT parameters either packed, ``mano_param`` (B, 58) = [48 axis-angle pose (flat-hand-mean
convention, right hand), 10 betas], or as the official pair ``mano_pose`` (B, 48) + ``mano_shape`` (B, 10). The
mesh is the MANO layer's, converted from its millimetres to metres: MANO frame (global rotation about the root,
no translation, not root-centred).
"""
import torch

from utils.hand_conventions import MANO_PARAM_DIM, MM_PER_M, NUM_POSE_PARAMS

__all__ = ["split_mano_param", "gt_pose_and_betas", "mano_mesh_m", "gt_mesh_outputs"]


def split_mano_param(mano_param: torch.Tensor):
    """``mano_param`` (B, 58) -> (pose (B, 48) axis-angle, betas (B, 10)); any other shape is an error."""
    if mano_param.dim() != 2 or mano_param.shape[1] != MANO_PARAM_DIM:
        raise ValueError(f"batch['mano_param'] must be (B, {MANO_PARAM_DIM}) = {NUM_POSE_PARAMS} pose + "
                         f"{MANO_PARAM_DIM - NUM_POSE_PARAMS} betas (one image per sample), "
                         f"got {tuple(mano_param.shape)}")
    return mano_param[:, :NUM_POSE_PARAMS], mano_param[:, NUM_POSE_PARAMS:]


def gt_pose_and_betas(batch: dict, prefer_official_pair: bool = False):
    """The batch's GT (pose (B, 48), betas (B, 10)), or None when it has neither form.

    With both forms present ``mano_param`` wins, unless ``prefer_official_pair`` (MobRecon and H2ONet read
    ``mano_pose`` + ``mano_shape`` first, as their official code does).
    """
    packed = split_mano_param(batch["mano_param"]) if "mano_param" in batch else None
    pair = (batch["mano_pose"], batch["mano_shape"]) if "mano_pose" in batch and "mano_shape" in batch else None
    first, second = (pair, packed) if prefer_official_pair else (packed, pair)
    return first if first is not None else second


def mano_mesh_m(mano_layer, pose: torch.Tensor, betas: torch.Tensor):
    """Pose (B, 48) axis-angle and betas (B, 10) -> (verts (B, 778, 3), joints (B, 21, 3)) in metres, joints in
    manopth order; the parameters are cast to the layer's dtype first."""
    dtype = mano_layer.th_v_template.dtype
    verts, joints = mano_layer(pose.to(dtype), betas.to(dtype))
    return verts / MM_PER_M, joints / MM_PER_M


def gt_mesh_outputs(mano_layer, batch: dict, prefer_official_pair: bool = False) -> dict:
    """``gt_verts3d_cam`` (B, 778, 3) and ``gt_joints3d_cam`` (B, 21, 3), metres, from the batch's GT parameters
    (see :func:`gt_pose_and_betas`); empty when the batch has none."""
    gt = gt_pose_and_betas(batch, prefer_official_pair)
    if gt is None:
        return {}
    verts, joints = mano_mesh_m(mano_layer, *gt)
    return {"gt_verts3d_cam": verts, "gt_joints3d_cam": joints}
