"""MANO regression head: feature vector -> 16 joint rotations (6D) + shape -> MANO mesh in metres
(official ``hfl_net_hor/mano_head.py::mano_regHead``). Spec: docs/official-model.md §1.7.
"""
from torch import nn

from models.blocks.gt_mesh import mano_mesh_m, split_mano_param
from models.mano import ManoLayer
from utils.hand_conventions import NUM_BETAS, NUM_MANO_JOINTS
from utils.rotations import axis_angle_to_matrix, matrix_to_axis_angle, rot6d_to_matrix

__all__ = ["ManoRegHead", "right_hand_mano_layer"]


def right_hand_mano_layer(mano_root):
    """Right-hand MANO layer as the official model uses it: axis-angle, 45 finger DoF, no PCA, flat mean.

    ``mano_root`` is the folder holding MANO_RIGHT.pkl (resolve it with ``utils.mano_io.resolve_mano_root``).
    """
    return ManoLayer(mano_root=mano_root, side="right", use_pca=False, flat_hand_mean=True, ncomps=6)


class ManoRegHead(nn.Module):
    """Regress MANO pose and shape from the hand encoding and pose the mesh.

    forward(features (B, F), mano_params (B, 58) or None) -> (pred, gt, mano_features):
        pred: ``verts3d`` (B, 778, 3) m, ``joints3d`` (B, 21, 3) m (manopth order), ``mano_shape`` (B, 10),
            ``mano_pose`` (B, 16, 3, 3) rotation matrices, ``mano_pose_aa`` (B, 48) axis-angle;
        gt: the same keys except ``mano_pose_aa`` from ``mano_params`` = [48 axis-angle (flat-hand-mean
            convention), 10 betas], or None when not given;
        mano_features: (B, mano_neurons[-1]) output of the MLP.
    Meshes are in the MANO frame (global rotation about the MANO root, no translation, not root-centred).
    """

    def __init__(self, mano_layer, feature_size=1024, mano_neurons=(1024, 512)):
        super().__init__()
        layers = []
        width = feature_size
        for neurons in mano_neurons:
            layers += [nn.Linear(width, neurons), nn.LeakyReLU(inplace=True)]
            width = neurons
        self.mano_base_layer = nn.Sequential(*layers)
        self.pose_reg = nn.Linear(width, NUM_MANO_JOINTS * 6)
        self.shape_reg = nn.Linear(width, NUM_BETAS)
        self.mano_layer = mano_layer

    def mesh(self, pose_aa, shape):
        """MANO layer in metres: pose_aa (B, 48), shape (B, 10) -> (verts (B, 778, 3), joints (B, 21, 3))."""
        return mano_mesh_m(self.mano_layer, pose_aa, shape)

    def forward(self, features, mano_params=None):
        batch = features.shape[0]
        mano_features = self.mano_base_layer(features)
        rotmats = rot6d_to_matrix(self.pose_reg(mano_features).view(batch, NUM_MANO_JOINTS, 6))
        shape = self.shape_reg(mano_features)
        pose_aa = matrix_to_axis_angle(rotmats).reshape(batch, NUM_MANO_JOINTS * 3)
        verts, joints = self.mesh(pose_aa, shape)
        pred = {"verts3d": verts, "joints3d": joints, "mano_shape": shape, "mano_pose": rotmats,
                "mano_pose_aa": pose_aa}
        gt = None
        if mano_params is not None:
            gt_pose, gt_shape = split_mano_param(mano_params)
            gt_verts, gt_joints = self.mesh(gt_pose, gt_shape)
            gt = {"verts3d": gt_verts, "joints3d": gt_joints, "mano_shape": gt_shape,
                  "mano_pose": axis_angle_to_matrix(gt_pose.view(batch, NUM_MANO_JOINTS, 3))}
        return pred, gt, mano_features
