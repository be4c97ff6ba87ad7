"""2D hand joint head: stacked-hourglass features + per-joint soft-argmax (official ``hand_regHead``).

Spec: docs/official-model.md §1.5. Attribute names (``hg``, ``res``, ``fc``, ``score``, ``betas``,
``uu``, ``vv``) match the official state_dict keys under ``hand_head.``.
"""
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["HourglassBottleneck", "Hourglass", "HandRegHead"]


class HourglassBottleneck(nn.Module):
    """Pre-activation bottleneck, expansion 2: (B, C_in, H, W) -> (B, 2*planes, H, W), identity skip.

    BN -> LReLU -> 1x1 conv -> BN -> LReLU -> 3x3 conv -> BN -> LReLU -> 1x1 conv, plus the input
    (``in_planes`` must equal ``2 * planes``; every use in the official model satisfies this).
    """

    expansion = 2
    # (conv, batch norm applied right to its output) pairs: utils.runtime.inference_model may fold them
    conv_bn_pairs = (("conv1", "bn2"), ("conv2", "bn3"))

    def __init__(self, in_planes, planes):
        super().__init__()
        if in_planes != planes * self.expansion:
            raise ValueError(f"HourglassBottleneck needs in_planes == 2*planes, got {in_planes} and {planes}")
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=1, bias=True)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, padding=1, bias=True)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=True)
        self.leakyrelu = nn.LeakyReLU(inplace=True)

    def forward(self, x):
        out = self.conv1(self.leakyrelu(self.bn1(x)))
        out = self.conv2(self.leakyrelu(self.bn2(out)))
        out = self.conv3(self.leakyrelu(self.bn3(out)))
        return out + x


def _residual(planes, num_blocks=1):
    """Sequential of ``num_blocks`` bottlenecks working at 2*planes channels (official ``_make_residual``)."""
    return nn.Sequential(*[HourglassBottleneck(planes * 2, planes) for _ in range(num_blocks)])


class Hourglass(nn.Module):
    """Recursive hourglass of ``depth`` levels: (B, 2*planes, H, W) -> same shape; H, W divisible by 2**depth.

    ``hg[d]`` holds the blocks of level d+1: [skip branch, after-pool branch, after-recursion branch] and,
    for the innermost level only, a 4th bottom block. Down-sampling 2x2 max-pool, up-sampling nearest x2.
    """

    def __init__(self, planes=128, depth=4, num_blocks=1):
        super().__init__()
        self.depth = depth
        self.hg = nn.ModuleList(
            nn.ModuleList(_residual(planes, num_blocks) for _ in range(4 if level == 0 else 3))
            for level in range(depth)
        )

    def _level(self, n, x):
        blocks = self.hg[n - 1]
        up1 = blocks[0](x)
        low1 = blocks[1](F.max_pool2d(x, kernel_size=2, stride=2))
        low2 = self._level(n - 1, low1) if n > 1 else self.hg[0][3](low1)
        low3 = blocks[2](low2)
        return up1 + F.interpolate(low3, scale_factor=2, mode="nearest")

    def forward(self, x):
        return self._level(self.depth, x)


class _ConvBlock(nn.Module):
    """1x1 conv (bias) + BN + LReLU, stored as ``block`` (official key ``fc.0.block.*``)."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=True),
            nn.BatchNorm2d(out_channels),
            nn.LeakyReLU(inplace=True),
        )

    def forward(self, x):
        return self.block(x)


class HandRegHead(nn.Module):
    """Hourglass + soft-argmax 2D joint head on a hand ROI feature map (one stack).

    Input: ``x`` (B, channels, R, R) with R = ``roi_res``.
    Returns ``(heatmaps, encoding, joints_uv)``:
        heatmaps (B, J, R, R), each summing to 1 (softmax with a learnt per-joint temperature ``betas``);
        encoding (B, channels, R, R), the feature map the heatmaps are scored from;
        joints_uv (B, J, 2), soft-argmax (u right, v down) normalised to the hand box: (0, 0) top-left corner,
        (1, 1) bottom-right corner of the box the ROI was pooled from.
    (The official head returns each of these wrapped in a one-element list.)
    """

    def __init__(self, roi_res=32, joint_nb=21, channels=256, depth=4, num_blocks=1):
        super().__init__()
        self.roi_res = roi_res
        self.joint_nb = joint_nb
        planes = channels // HourglassBottleneck.expansion
        self.betas = nn.Parameter(torch.ones(joint_nb, 1))
        centres = (torch.arange(roi_res, dtype=torch.float32) + 0.5) / roi_res
        rows, cols = torch.meshgrid(centres, centres, indexing="ij")
        self.register_buffer("uu", cols.contiguous())  # uu[i, j] = (j + 0.5) / R  (horizontal)
        self.register_buffer("vv", rows.contiguous())  # vv[i, j] = (i + 0.5) / R  (vertical)
        self.hg = nn.ModuleList([Hourglass(planes, depth, num_blocks)])
        self.res = nn.ModuleList([_residual(planes, num_blocks)])
        self.fc = nn.ModuleList([_ConvBlock(channels, channels)])
        self.score = nn.ModuleList([nn.Conv2d(channels, joint_nb, kernel_size=1, bias=True)])

    def soft_argmax(self, latents):
        """Latent scores (B, J, R, R) -> (heatmaps (B, J, R, R), joints_uv (B, J, 2) box-normalised)."""
        batch, joints, rows, cols = latents.shape
        heatmaps = F.softmax(latents.view(batch, joints, rows * cols) * self.betas, dim=2)
        heatmaps = heatmaps.view(batch, joints, rows, cols)
        u = (heatmaps * self.uu).sum(dim=(2, 3))
        v = (heatmaps * self.vv).sum(dim=(2, 3))
        return heatmaps, torch.stack((u, v), dim=-1)

    def forward(self, x):
        encoding = self.fc[0](self.res[0](self.hg[0](x)))
        heatmaps, joints_uv = self.soft_argmax(self.score[0](encoding))
        return heatmaps, encoding, joints_uv
