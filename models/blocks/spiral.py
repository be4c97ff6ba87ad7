"""Spiral mesh convolutions and the 2D-to-3D mesh decoder shared by MobRecon and H2ONet.

Spec: docs/official-baselines.md §5.3 (``Reg2DDecode3D`` with ``DSConv``) and §6.3 (``SpiralConv``).
Mesh features are (B, N, C) per vertex. Spiral indices (N, L) and dense up-sampling matrices (N_fine,
N_coarse) come from :mod:`models.mesh_assets` and are held as non-persistent buffers (they are not in the
official state_dicts; the models never read files).
"""
import torch
from torch import nn
from torch.nn import functional as F

from utils.hand_conventions import NUM_HAND_JOINTS

__all__ = ["DSConv", "SpiralConv", "SpiralDeblock", "SpiralMeshDecoder", "gather_spirals", "sample_points"]


def gather_spirals(x, spirals):
    """(B, N, C) vertex features, (N, L) spiral ids -> (B, N, L, C) features of each spiral's vertices."""
    batch, (num, length) = x.shape[0], spirals.shape
    return x.index_select(1, spirals.reshape(-1)).view(batch, num, length, x.shape[-1])


class DSConv(nn.Module):
    """Depthwise-separable spiral conv (MobRecon): per channel a weighted sum over the spiral slots (weights
    ``spatial_layer.weight`` (C, 1, 3, 3) read row-major as 9 slots), then ``channel_layer`` (no bias).
    (B, N, cin) -> (B, N, cout)."""

    def __init__(self, in_channels, out_channels, spirals):
        super().__init__()
        if spirals.shape[1] != 9:
            raise ValueError(f"DSConv needs spirals of length 9 (3x3 kernel), got {tuple(spirals.shape)}")
        self.register_buffer("spirals", spirals, persistent=False)
        self.spatial_layer = nn.Conv2d(in_channels, in_channels, 3, groups=in_channels, bias=False)
        self.channel_layer = nn.Linear(in_channels, out_channels, bias=False)
        # unit-gain over the 9 slots: Xavier on the (C, 1, 3, 3) depthwise weight (fan_out = 9C) shrinks the
        # signal ~10x per layer, 1e-5 after the 5 decoder convs, and training then stalls for many epochs
        nn.init.kaiming_uniform_(self.spatial_layer.weight, nonlinearity="linear")
        nn.init.xavier_uniform_(self.channel_layer.weight)

    def forward(self, x):
        slot_weights = self.spatial_layer.weight.view(self.spatial_layer.weight.shape[0], -1)  # (C, 9)
        mixed = torch.einsum("bnsc,cs->bnc", gather_spirals(x, self.spirals), slot_weights)
        return self.channel_layer(mixed)


class SpiralConv(nn.Module):
    """Spiral conv (SpiralNet++, H2ONet): the L spiral features flattened slot-major (index s * cin + c) and
    one Linear with bias (``layer``). (B, N, cin) -> (B, N, cout)."""

    def __init__(self, in_channels, out_channels, spirals):
        super().__init__()
        self.register_buffer("spirals", spirals, persistent=False)
        self.layer = nn.Linear(in_channels * spirals.shape[1], out_channels)
        nn.init.xavier_uniform_(self.layer.weight)
        nn.init.zeros_(self.layer.bias)

    def forward(self, x):
        features = gather_spirals(x, self.spirals)
        return self.layer(features.reshape(*features.shape[:2], -1))


class SpiralDeblock(nn.Module):
    """Up-sample (B, N_coarse, cin) to the finer level with U (N_fine, N_coarse), then spiral conv + ReLU."""

    def __init__(self, conv):
        super().__init__()
        self.conv = conv

    def forward(self, x, up_matrix):
        return F.relu(self.conv(torch.matmul(up_matrix, x)))


def sample_points(features, uv):
    """Bilinear samples of (B, C, H, W) ``features`` at crop-normalised ``uv`` (B, K, 2) in [0, 1] (x, y),
    clamped to the map (grid_sample, align_corners True, zeros padding) -> (B, K, C)."""
    grid = torch.clamp((uv - 0.5) * 2, -1, 1)
    samples = F.grid_sample(features, grid.unsqueeze(1), mode="bilinear", padding_mode="zeros",
                            align_corners=True)  # (B, C, 1, K)
    return samples[:, :, 0].transpose(1, 2)


class SpiralMeshDecoder(nn.Module):
    """Official ``Reg2DDecode3D`` / H2ONet decoder mesh part: latent map + 2D joints -> mesh vertices.

    Args:
        conv: mesh conv class (:class:`DSConv` or :class:`SpiralConv`), built as ``conv(cin, cout, spirals)``.
        spirals: per level 0..L-1 (N_k, 9) int64 tensors (level 0 = full mesh).
        up_matrices: per step k dense (N_k, N_{k+1}) float tensors.
        latent_channels: channels of the latent map (256); out_channels: per level, finest first
            ([32, 64, 128, 256]); num_joints: 2D joints sampled from the map (21).
    forward(uv (B, 21, 2) in [0, 1] of the crop, latent (B, 256, h, w)) -> vertices (B, N_0, 3): features
    sampled at the joints, lifted to the coarsest level by the learned ``upsample`` (N_L, 21), then per level
    up-sampling + spiral conv + ReLU, and a final spiral conv ``head`` to 3 coordinates (metres).
    """

    def __init__(self, conv, spirals, up_matrices, latent_channels=256, out_channels=(32, 64, 128, 256),
                 num_joints=NUM_HAND_JOINTS):
        super().__init__()
        if not len(spirals) == len(up_matrices) == len(out_channels):
            raise ValueError(f"need one spiral tensor and up-sampling matrix per level: {len(spirals)} spirals, "
                             f"{len(up_matrices)} matrices, {len(out_channels)} channel widths")
        num_levels = len(out_channels)
        self.upsample = nn.Parameter(torch.full((up_matrices[-1].shape[1], num_joints), 0.01))
        self.de_layer_conv = nn.Sequential(nn.Conv2d(latent_channels, out_channels[-1], 1, bias=False))
        widths = [out_channels[-1]] + list(reversed(out_channels))  # 256, 256, 128, 64, 32
        self.de_layer = nn.ModuleList(
            SpiralDeblock(conv(widths[i], widths[i + 1], spirals[num_levels - 1 - i])) for i in range(num_levels))
        self.head = conv(out_channels[0], 3, spirals[0])
        for step, matrix in enumerate(up_matrices):
            self.register_buffer(f"up_matrix_{step}", matrix, persistent=False)
        self.num_levels = num_levels

    def forward(self, uv, latent):
        x = sample_points(self.de_layer_conv(latent), uv)         # (B, 21, C)
        x = torch.matmul(self.upsample, x)                         # (B, N_L, C)
        for i, layer in enumerate(self.de_layer):
            x = layer(x, getattr(self, f"up_matrix_{self.num_levels - 1 - i}"))
        return self.head(x)
