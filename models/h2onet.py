"""H2ONet (CVPR'23), single-frame model as in UniHOPE's comparison (official ``H2ONet``, model name
``h2onet``, 128 px crops): MobRecon's backbone plus an orientation encoder, a SpiralConv mesh decoder that
predicts the hand without its global rotation, and a global-rotation regressor.

Spec: docs/official-baselines.md §2.3, §6, §7. Quirks kept for checkpoint compatibility (§15.4, §15.6):
the 21-joint regressor is a trainable parameter ``mano_joint_reg`` (initialised with J21, first state_dict
entry) and the 6D rotation is stacked as matrix ROWS (pytorch3d convention), unlike HFL's columns.

Batch keys read: ``img`` (B, 3, 128, 128); optional ``mano_pose`` (B, 48) + ``mano_shape`` (B, 10) or
``mano_param`` (B, 58),
``val_mano_pose`` (B, 48), ``joints_img`` (B, 21, 2).
Outputs (metres, MANO frame): ``pred_verts3d_cam`` = ``pred_verts3d_w_gr`` (B, 778, 3) and
``pred_joints3d_cam`` = ``pred_joints3d_w_gr`` (B, 21, 3) (rotated about the predicted root),
``pred_verts3d_wo_gr`` / ``pred_joints3d_wo_gr`` (before the global rotation), ``pred_joints_img`` (B, 21, 2)
crop-normalised uv, ``pred_glob_rot`` (B, 6), ``pred_glob_rot_mat`` (B, 3, 3); with GT ``gt_verts3d_cam``,
``gt_joints3d_cam``, ``gt_glob_rot`` (B, 3) axis-angle, ``gt_glob_rot_mat`` (B, 3, 3), ``gt_verts3d_w_gr`` /
``gt_joints3d_w_gr`` (from ``val_mano_pose`` when given), ``gt_verts3d_wo_gr`` / ``gt_joints3d_wo_gr`` (global
rotation zeroed) and ``joints_img``.
"""
import torch
from torch import nn

from models.blocks.gt_mesh import gt_pose_and_betas, mano_mesh_m
from models.blocks.mobile import DenseStackBackbone
from models.blocks.spiral import SpiralConv, SpiralMeshDecoder
from models.mobrecon import (DECODER_CHANNELS, check_input_image, decoder_inputs_from_config, load_backbone_weights,
                             mano_gt_outputs)
from models.registry import register_model
from utils.rotations import axis_angle_to_matrix, rot6d_to_matrix

__all__ = ["H2ONet", "GlobalRotationRegressor", "H2ONetDecoder", "rot6d_to_matrix_rows", "build_h2onet"]


def rot6d_to_matrix_rows(rot6d):
    """(..., 6) -> (..., 3, 3) with ROWS b1, b2, b3 (pytorch3d's ``rotation_6d_to_matrix``, H2ONet): the
    transpose of :func:`utils.rotations.rot6d_to_matrix`."""
    return rot6d_to_matrix(rot6d).transpose(-1, -2)


class GlobalRotationRegressor(nn.Module):
    """Official ``H2ONet_GlobRotReg``: (joint latent + rotation latent) (B, 1024, 4, 4) -> 6D rotation (B, 6).

    1x1 Conv1d 1024 -> 512 -> 256 over the 16 cells, flattened channel-major (B, 4096), then MLPs
    4096 -> 2048 -> 1024 and 1024 -> 1024 -> 512 -> 256 -> 6 (ReLU between layers).
    """

    def __init__(self, in_channels=1024, num_cells=16):
        super().__init__()
        self.conv_block = nn.Sequential(nn.Conv1d(in_channels, 512, 1), nn.ReLU(inplace=True),
                                        nn.Conv1d(512, 256, 1), nn.ReLU(inplace=True))
        self.pre_block = nn.Sequential(nn.Linear(256 * num_cells, 2048), nn.ReLU(inplace=True),
                                       nn.Linear(2048, 1024), nn.ReLU(inplace=True))
        self.fc_block = nn.Sequential(nn.Linear(1024, 1024), nn.ReLU(inplace=True), nn.Linear(1024, 512),
                                      nn.ReLU(inplace=True), nn.Linear(512, 256), nn.ReLU(inplace=True),
                                      nn.Linear(256, 6))

    def forward(self, joint_latent, rotation_latent):
        x = (joint_latent + rotation_latent).flatten(2)  # (B, 1024, 16)
        return self.fc_block(self.pre_block(self.conv_block(x).flatten(1)))

    def reset_parameters(self):
        """Kaiming-uniform weights (fan-in, ReLU gain) and zero biases: the official ``train.not_load_rot_reg``
        re-initialisation. Unlike PyTorch's default init, it keeps the input's share of the 6D output through the
        nine layers, so the predicted rotation depends on the image from the first step."""
        for layer in self.modules():
            if isinstance(layer, (nn.Linear, nn.Conv1d)):
                nn.init.kaiming_uniform_(layer.weight, nonlinearity="relu")
                nn.init.zeros_(layer.bias)


class H2ONetDecoder(SpiralMeshDecoder):
    """Official ``H2ONet_Decoder``: the SpiralConv mesh decoder plus ``rot_reg``.

    forward(uv, latent, joint_latent, rotation_latent) -> (vertices without global rotation (B, 778, 3) m,
    6D global rotation (B, 6)); the rotation regressor sees the joint latent detached.
    """

    def __init__(self, spirals, up_matrices):
        super().__init__(SpiralConv, spirals, up_matrices, out_channels=DECODER_CHANNELS)
        self.rot_reg = GlobalRotationRegressor()

    def forward(self, uv, latent, joint_latent, rotation_latent):
        return super().forward(uv, latent), self.rot_reg(joint_latent.detach(), rotation_latent)


class H2ONet(nn.Module):
    """Children in official order: ``mano_joint_reg`` (trainable (21, 778)), ``backbone``, ``decoder3d``,
    ``mano_layer`` (GT only). Args: mano_layer (right hand, flat mean, no PCA), assets
    (:class:`models.mobrecon.MeshDecoderAssets`)."""

    def __init__(self, mano_layer, assets):
        super().__init__()
        self.mano_joint_reg = nn.Parameter(assets.joint_regressor.clone())
        self.backbone = DenseStackBackbone(rotation_encoder=True)
        self.decoder3d = H2ONetDecoder(assets.spirals, assets.up_matrices)
        self.mano_layer = mano_layer

    def forward(self, batch):
        check_input_image(batch["img"])
        features = self.backbone(batch["img"])
        verts_wo_gr, glob_rot = self.decoder3d(features["uv"], features["latent"], features["bottleneck"],
                                               features["rotation_latent"])
        joints_wo_gr = torch.matmul(self.mano_joint_reg, verts_wo_gr)
        root = joints_wo_gr[:, :1]
        rot_mat = rot6d_to_matrix_rows(glob_rot)
        # only the mesh's root position (not its shape) receives gradients through the rotated outputs
        verts = torch.matmul(verts_wo_gr.detach() - root.detach(), rot_mat.transpose(1, 2)) + root
        joints = torch.matmul(joints_wo_gr.detach() - root.detach(), rot_mat.transpose(1, 2)) + root
        out = {"pred_verts3d_cam": verts, "pred_joints3d_cam": joints, "pred_verts3d_w_gr": verts,
               "pred_joints3d_w_gr": joints, "pred_verts3d_wo_gr": verts_wo_gr,
               "pred_joints3d_wo_gr": joints_wo_gr, "pred_joints_img": features["uv"],
               "pred_glob_rot": glob_rot, "pred_glob_rot_mat": rot_mat}
        out.update(self.gt_outputs(batch))
        if "joints_img" in batch:
            out["joints_img"] = batch["joints_img"]
        return out

    def reset_rotation_regressor(self):
        """Official ``train.not_load_rot_reg``: ``decoder3d.rot_reg`` starts again from a Kaiming-uniform init."""
        self.decoder3d.rot_reg.reset_parameters()

    def gt_outputs(self, batch):
        """GT with and without the global rotation (metres); empty without ``mano_pose``."""
        gt = mano_gt_outputs(self.mano_layer, batch)
        if not gt:
            return gt
        pose, shape = gt_pose_and_betas(batch, prefer_official_pair=True)
        gt.setdefault("gt_verts3d_w_gr", gt["gt_verts3d_cam"])
        gt.setdefault("gt_joints3d_w_gr", gt["gt_joints3d_cam"])
        verts, joints = mano_mesh_m(self.mano_layer, torch.cat([torch.zeros_like(pose[:, :3]), pose[:, 3:]], dim=1),
                                    shape)
        gt.update(gt_glob_rot=pose[:, :3], gt_glob_rot_mat=axis_angle_to_matrix(pose[:, :3]),
                  gt_verts3d_wo_gr=verts, gt_joints3d_wo_gr=joints)
        return gt


@register_model("h2onet")
def build_h2onet(cfg):
    """H2ONet from an official config (base.mano_root, model.backbone_weights: a local densestack.pth loaded
    non-strictly into the backbone, as the official ``pretrain: true`` does from a fixed path)."""
    model = H2ONet(*decoder_inputs_from_config(cfg))
    if cfg.model.backbone_weights is not None:
        load_backbone_weights(model.backbone, cfg.model.backbone_weights)
    return model
