"""HandOccNet's occlusion-aware feature blocks: the spatial gate that splits the FPN map into a primary (hand)
and a secondary (occluder) part, and the Feature Injecting Transformer (FIT) that fuses them.

Spec: docs/official-baselines.md §3.2-§3.3. The Self-Enhancing Transformer (SET) needs no class of its
own: it is :class:`models.blocks.transformer.CRTransformer` with learned embeddings.
"""
import torch
from torch import nn

from models.blocks.transformer import CRTransformer

__all__ = ["SpatialGate", "FeatureInjectingTransformer"]


class _GateConv(nn.Module):
    """7x7 conv (2 -> 1 channel, no bias) + BatchNorm (momentum 0.01), no activation (official ``BasicConv``)."""

    def __init__(self, kernel_size=7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size=kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(1, eps=1e-5, momentum=0.01)

    def forward(self, x):
        return self.bn(self.conv(x))


class SpatialGate(nn.Module):
    """Per-pixel gate in (0, 1): (B, C, H, W) -> (B, 1, H, W) = sigmoid(BN(conv7x7([max_c x, mean_c x]))).

    The channel-wise max map comes first, then the mean (official ``ChannelPool``).
    """

    def __init__(self):
        super().__init__()
        self.spatial = _GateConv()

    def forward(self, x):
        pooled = torch.cat((x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)), dim=1)  # (B, 2, H, W)
        return torch.sigmoid(self.spatial(pooled))


class FeatureInjectingTransformer(CRTransformer):
    """FIT: the secondary (occluder) map queries the primary (hand) map, then both are fused by convolutions.

    forward(query (B, C, R, R) secondary, key (B, C, R, R) primary) -> (B, C, R, R):
    ``depth`` gated blocks without query residual (learned R x R embeddings) give t; with z = [key, t]
    (2C channels, key first) the output is conv1(z) + conv2(z), conv1 = 3x3 (2C -> C), ReLU, 3x3 (C -> C),
    conv2 = 1x1 (2C -> C).
    """

    def __init__(self, inp_res=32, dim=256, depth=2, num_heads=4, mlp_ratio=4):
        super().__init__(inp_res, dim, depth, num_heads, mlp_ratio, learned_embedding=True, gated=True,
                         query_residual=False)
        self.conv1 = nn.Sequential(nn.Conv2d(2 * dim, dim, kernel_size=3, padding=1), nn.ReLU(inplace=True),
                                   nn.Conv2d(dim, dim, kernel_size=3, padding=1))
        self.conv2 = nn.Sequential(nn.Conv2d(2 * dim, dim, kernel_size=1))

    def forward(self, query, key):
        injected = super().forward(query, key)
        fused = torch.cat((key, injected), dim=1)  # (B, 2C, R, R)
        return self.conv1(fused) + self.conv2(fused)
