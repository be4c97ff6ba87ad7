"""Hand encoder: heatmaps + hand-head encoding -> flat feature vector for the MANO head (official
``hand_Encoder``). Spec: docs/official-model.md §1.6.
"""
from torch import nn

__all__ = ["EncoderResidual", "HandEncoder"]


class EncoderResidual(nn.Module):
    """Pre-activation residual block at constant width: (B, C, H, W) -> (B, C, H, W).

    BN -> LReLU -> 1x1 conv (C -> C/2) -> BN -> LReLU -> 3x3 conv -> BN -> LReLU -> 1x1 conv (C/2 -> C),
    plus the input (official ``Residual(C, C)``; no projection conv because input and output widths agree).
    """

    # (conv, batch norm applied right to its output) pairs: utils.runtime.inference_model may fold them
    conv_bn_pairs = (("conv1", "bn1"), ("conv2", "bn2"))

    def __init__(self, channels):
        super().__init__()
        mid = channels // 2
        self.bn = nn.BatchNorm2d(channels)
        self.leakyrelu = nn.LeakyReLU(inplace=True)
        self.conv1 = nn.Conv2d(channels, mid, kernel_size=1, bias=True)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, kernel_size=3, padding=1, bias=True)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, channels, kernel_size=1, bias=True)

    def forward(self, x):
        out = self.conv1(self.leakyrelu(self.bn(x)))
        out = self.conv2(self.leakyrelu(self.bn1(out)))
        out = self.conv3(self.leakyrelu(self.bn2(out)))
        return out + x


class HandEncoder(nn.Module):
    """Fuse heatmaps and encoding, then ``num_reg_blocks`` x (2 residual blocks + 2x2 max-pool), flatten.

    Input: heatmaps (B, J, R, R), encoding (B, C, R, R).
    Output: mano_encoding (B, C * (R / 2**num_reg_blocks)**2), flattened channel-major; (B, 1024) for the
    official sizes J=21, C=256, R=32, 4 blocks.
    """

    def __init__(self, num_heatmap_chan=21, num_feat_chan=256, size_input_feature=(32, 32),
                 num_reg_blocks=4, num_reg_modules=2):
        super().__init__()
        self.num_reg_blocks = num_reg_blocks
        self.num_reg_modules = num_reg_modules
        self.heatmap_conv = nn.Conv2d(num_heatmap_chan, num_feat_chan, kernel_size=1, bias=True)
        self.encoding_conv = nn.Conv2d(num_feat_chan, num_feat_chan, kernel_size=1, bias=True)
        self.reg = nn.ModuleList(
            EncoderResidual(num_feat_chan) for _ in range(num_reg_blocks * num_reg_modules)
        )
        self.maxpool = nn.MaxPool2d(kernel_size=2, stride=2)
        height, width = size_input_feature
        self.num_feat_out = num_feat_chan * (height * width) // (4 ** num_reg_blocks)

    def forward(self, heatmaps, encoding):
        x = self.heatmap_conv(heatmaps) + self.encoding_conv(encoding)
        for block in range(self.num_reg_blocks):
            for module in range(self.num_reg_modules):
                x = self.reg[block * self.num_reg_modules + module](x)
            x = self.maxpool(x)
        return x.flatten(1)  # (B, C * h * w)
