"""``ManoLayer``: a drop-in for manopth's ``ManoLayer`` (hassony2/manopth 4f1dcad) without chumpy.

Same constructor arguments and defaults, same forward maths and outputs (vertices and 21 joints in
MILLIMETRES, manopth joint order), and the buffers official checkpoints contain, in manopth's
registration order: ``th_betas, th_shapedirs, th_posedirs, th_v_template, th_J_regressor, th_weights,
th_faces, th_hands_mean, th_selected_comps`` (UniHOPE's vendored copy; upstream's ``th_comps`` is kept
as a non-persistent buffer so ``load_state_dict(strict=True)`` works with official checkpoints).
Reference: docs/libraries.md B.2, docs/official-model.md §3.

Project additions: ``fix_left_shapedirs`` (negate the x-component of the left model's shape blend shapes,
docs/libraries.md B.4; off by default because DexYCB annotations were made without it), ``from_assets`` (reuse
arrays already read by :func:`utils.mano_io.load_mano_assets`) and the MANO folder resolved through
:func:`utils.mano_io.resolve_mano_root` (argument, else ``$MANO_ROOT``) instead of a CWD-relative path.
"""
from __future__ import annotations

import os

import torch
from torch import nn

from models.mano.lbs import SkinningArrays, lbs, pack_skinning_arrays
from utils.hand_conventions import MANO_SIDES, MANO_TO_MANOPTH_ORDER, MM_PER_M, ROOT_PALM_VERTS, fingertip_verts
from utils.mano_io import ManoAssets, load_mano_assets, resolve_mano_root
from utils.rotations import axis_angle_to_matrix, project_to_rotation, robust_rot6d_to_matrix, rot6d_to_matrix

ROOT_ROT_MODES = ("axisang", "rot6d")
JOINT_ROT_MODES = ("axisang", "rotmat")
NUM_FINGER_POSE = 45
SKINNING_TENSORS = ("blend_basis", "template", "joint_basis", "joint_template", "weights")


class ManoLayer(nn.Module):
    """Differentiable MANO hand model, manopth-compatible.

    Args (manopth's, same order and defaults):
        center_idx: joint (manopth order) moved to the origin when no translation is given; None = off.
        flat_hand_mean: True -> zero finger pose is a flat hand; False -> the file's ``hands_mean`` is added.
        ncomps: number of PCA components used when ``use_pca``.
        side: 'right' or 'left'.
        mano_root: folder with MANO_RIGHT.pkl / MANO_LEFT.pkl; None -> ``$MANO_ROOT``.
        use_pca: finger pose given as ``ncomps`` PCA coefficients (else 45 axis-angle values).
        root_rot_mode: 'axisang' (3 values) or 'rot6d' (6 values) for the global rotation.
        joint_rot_mode: 'axisang', or 'rotmat' (input (B, 16, 3, 3) matrices; requires ``use_pca=False``).
        robust_rot: with 'rot6d', use manopth's symmetric 6D -> matrix variant.
    Keyword-only (project):
        fix_left_shapedirs: negate ``shapedirs[:, 0]`` of a left model (known MANO_LEFT.pkl issue).
        assets: already-loaded :class:`ManoAssets` (then ``mano_root`` is not read).
    """

    def __init__(self, center_idx: int | None = None, flat_hand_mean: bool = True, ncomps: int = 6,
                 side: str = "right", mano_root: str | os.PathLike | None = None, use_pca: bool = True,
                 root_rot_mode: str = "axisang", joint_rot_mode: str = "axisang", robust_rot: bool = False,
                 *, fix_left_shapedirs: bool = False, assets: ManoAssets | None = None):
        super().__init__()
        if side not in MANO_SIDES:
            raise ValueError(f"side must be one of {MANO_SIDES}, got {side!r}")
        if root_rot_mode not in ROOT_ROT_MODES:
            raise ValueError(f"root_rot_mode must be one of {ROOT_ROT_MODES}, got {root_rot_mode!r}")
        if joint_rot_mode not in JOINT_ROT_MODES:
            raise ValueError(f"joint_rot_mode must be one of {JOINT_ROT_MODES}, got {joint_rot_mode!r}")
        if joint_rot_mode == "rotmat" and use_pca:
            raise ValueError("joint_rot_mode='rotmat' needs use_pca=False (the input is 16 rotation matrices)")
        if use_pca and not 1 <= ncomps <= NUM_FINGER_POSE:
            raise ValueError(f"ncomps must be in 1..45 with use_pca=True, got {ncomps}")
        if assets is None:
            assets = load_mano_assets(resolve_mano_root(mano_root), side)
        elif assets.side != side:
            raise ValueError(f"assets are for the {assets.side} hand but side={side!r}")

        self.center_idx = center_idx
        self.flat_hand_mean = flat_hand_mean
        self.side = side
        self.use_pca = use_pca
        self.ncomps = ncomps if use_pca else NUM_FINGER_POSE
        self.root_rot_mode = root_rot_mode
        self.joint_rot_mode = joint_rot_mode
        self.robust_rot = robust_rot
        self.rot = 3 if root_rot_mode == "axisang" else 6
        self.fix_left_shapedirs = fix_left_shapedirs
        self.kintree_parents = [int(p) for p in assets.kintree_parents]
        self.tip_verts = list(fingertip_verts(side))
        self._register_model_buffers(assets, ncomps)
        self.refresh_skinning_arrays()
        self.register_load_state_dict_post_hook(lambda module, _keys: module.refresh_skinning_arrays())

    @classmethod
    def from_assets(cls, assets: ManoAssets, **kwargs) -> "ManoLayer":
        """Build from already-loaded assets; ``side`` is taken from them. Other kwargs as the constructor."""
        return cls(side=assets.side, assets=assets, **kwargs)

    def _register_model_buffers(self, assets: ManoAssets, ncomps: int) -> None:
        """Register manopth's buffers, in manopth's order (float32, faces int64)."""
        def f32(array):
            return torch.tensor(array, dtype=torch.float32)

        shapedirs = f32(assets.shapedirs)
        if self.fix_left_shapedirs and self.side == "left":
            shapedirs[:, 0] *= -1
        self.register_buffer("th_betas", torch.zeros(1, shapedirs.shape[-1]))
        self.register_buffer("th_shapedirs", shapedirs)
        self.register_buffer("th_posedirs", f32(assets.posedirs))
        self.register_buffer("th_v_template", f32(assets.v_template).unsqueeze(0))
        self.register_buffer("th_J_regressor", f32(assets.J_regressor))
        self.register_buffer("th_weights", f32(assets.weights))
        self.register_buffer("th_faces", torch.tensor(assets.faces, dtype=torch.int64))
        hands_mean = torch.zeros(1, NUM_FINGER_POSE) if self.flat_hand_mean else f32(assets.hands_mean)[None]
        if self.joint_rot_mode == "axisang":
            self.register_buffer("th_hands_mean", hands_mean)
            self.register_buffer("th_comps", f32(assets.hands_components), persistent=False)
            self.register_buffer("th_selected_comps", f32(assets.hands_components[:ncomps]))
        else:  # manopth registers only the mean as matrices in this mode (and never uses it in forward)
            self.register_buffer("th_hands_mean_rotmat", axis_angle_to_matrix(hands_mean.view(15, 3)))

    def refresh_skinning_arrays(self) -> None:
        """Repack the model buffers for :func:`models.mano.lbs.lbs` (non-persistent ``skin_*`` buffers).

        Runs at construction and after every ``load_state_dict``; call it after editing a ``th_*`` model
        buffer in place.
        """
        arrays = pack_skinning_arrays(self.th_v_template, self.th_shapedirs, self.th_posedirs,
                                      self.th_J_regressor, self.th_weights, self.kintree_parents)
        for field in SKINNING_TENSORS:
            self.register_buffer(f"skin_{field}", getattr(arrays, field), persistent=False)
        self._skinning = arrays._replace(**dict.fromkeys(SKINNING_TENSORS))  # index layout only; tensors above

    def _skinning_arrays(self) -> SkinningArrays:
        """The packed arrays, with the tensors as currently stored (device and dtype follow ``.to()``)."""
        return self._skinning._replace(**{field: getattr(self, f"skin_{field}") for field in SKINNING_TENSORS})

    def forward(self, pose_coeffs: torch.Tensor, betas: torch.Tensor | None = None,
                trans: torch.Tensor | None = None, root_palm: bool = False,
                share_betas: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Pose and shape a hand.

        Args:
            pose_coeffs: (B, rot + ncomps): global rotation (3 axis-angle or 6D) then ``ncomps`` PCA
                coefficients or 45 finger axis-angles; or (B, 16, 3, 3) matrices with ``joint_rot_mode='rotmat'``.
            betas: (B, 10) or (1, 10); None or a 1-element tensor -> the zero ``th_betas``.
            trans: (B, 3) translation in metres; None or all-zero -> centring on ``center_idx`` if set.
            root_palm: replace the wrist joint by the mean of vertices 95 and 22 (manopth option).
            share_betas: use the batch mean of ``betas`` for every sample (manopth option).
        Returns:
            verts (B, 778, 3) and joints (B, 21, 3) in millimetres, MANO template frame rotated about the
            root joint (plus ``trans``); joints in manopth order (wrist, thumb1-4, index1-4, middle1-4,
            ring1-4, little1-4).
        """
        if betas is None or betas.numel() == 1:
            betas = self.th_betas
        elif share_betas:
            betas = betas.mean(0, keepdim=True)
        verts, joints = lbs(betas, self._rotations(pose_coeffs), self._skinning_arrays())
        if root_palm:
            palm = verts[:, list(ROOT_PALM_VERTS)].mean(1, keepdim=True)
            joints = torch.cat([palm, joints[:, 1:]], dim=1)
        joints = torch.cat([joints, verts[:, self.tip_verts]], dim=1)[:, list(MANO_TO_MANOPTH_ORDER)]
        if trans is None or bool(torch.norm(trans) == 0):
            if self.center_idx is not None:
                center = joints[:, self.center_idx].unsqueeze(1)
                joints, verts = joints - center, verts - center
        else:
            joints, verts = joints + trans.unsqueeze(1), verts + trans.unsqueeze(1)
        return verts * MM_PER_M, joints * MM_PER_M

    def _rotations(self, pose_coeffs: torch.Tensor) -> torch.Tensor:
        """Pose input -> local joint rotations (B, 16, 3, 3), MANO joint order (0 = global rotation)."""
        if self.joint_rot_mode == "rotmat":
            if pose_coeffs.dim() != 4 or pose_coeffs.shape[1:] != (16, 3, 3):
                raise ValueError(f"joint_rot_mode='rotmat' expects pose (B, 16, 3, 3), got {tuple(pose_coeffs.shape)}")
            return project_to_rotation(pose_coeffs)
        width = self.rot + self.ncomps
        if pose_coeffs.dim() != 2 or pose_coeffs.shape[1] < width:
            kind = f"{self.ncomps} PCA coefficients" if self.use_pca else "45 finger axis-angles"
            raise ValueError(f"pose_coeffs must be (B, {width}) = {self.rot} global rotation values + {kind}, "
                             f"got {tuple(pose_coeffs.shape)}")
        batch = pose_coeffs.shape[0]
        hand = pose_coeffs[:, self.rot:width]
        if self.use_pca:
            hand = torch.addmm(self.th_hands_mean, hand, self.th_selected_comps)  # (B, 45) axis-angles
        else:
            hand = self.th_hands_mean + hand
        root = pose_coeffs[:, :self.rot]
        if self.root_rot_mode == "axisang":  # one Rodrigues call for all 16 joints
            return axis_angle_to_matrix(torch.cat([root, hand], dim=1).view(batch, 16, 3))
        root_rot = (robust_rot6d_to_matrix if self.robust_rot else rot6d_to_matrix)(root)
        return torch.cat([root_rot.unsqueeze(1), axis_angle_to_matrix(hand.view(batch, 15, 3))], dim=1)
