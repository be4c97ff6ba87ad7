"""Mobile blocks of MobRecon's DenseStack backbone, shared by MobRecon and H2ONet.

Spec: docs/official-baselines.md §2.4 and §5.2. Attribute names and registration order follow the
official ``mob_recon/models`` modules so state_dict keys match keys_mobrecon.txt / keys_h2onet.txt.
Feature maps are (B, C, H, W); all units below keep the spatial size (stride 1).
"""
import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["conv_layer", "linear_layer", "MobileUnit", "DenseBlock", "DenseBlock2", "DenseBlock2NoExpand",
           "SenetBlock", "Reorg", "DenseStackEncoder", "DenseStack", "DenseStackBackbone", "HARDTANH_MAX"]

HARDTANH_MAX = 4.0  # the official "relu" of the linear layers is Hardtanh(0, 4)


def conv_layer(cin, cout, kernel_size=1, stride=1, padding=0, bias=False, bn=True, relu=True, groups=1):
    """Sequential(Conv2d [, BatchNorm2d] [, ReLU]); keys ``0`` conv, ``1`` BN."""
    layers = [nn.Conv2d(cin, cout, kernel_size, stride, padding, bias=bias, groups=groups)]
    if bn:
        layers.append(nn.BatchNorm2d(cout))
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def linear_layer(cin, cout, bias=False, bn=True, relu=True):
    """Sequential(Linear [, BatchNorm1d] [, Hardtanh(0, 4)]); keys ``0`` linear, ``1`` BN."""
    layers = [nn.Linear(cin, cout, bias=bias)]
    if bn:
        layers.append(nn.BatchNorm1d(cout))
    if relu:
        layers.append(nn.Hardtanh(0.0, HARDTANH_MAX))
    return nn.Sequential(*layers)


class MobileUnit(nn.Module):
    """Depthwise 3x3 conv(s) then a pointwise conv (each with BN + ReLU), residual when cin == cout.

    ``num3x3`` = 1 or 2 depthwise layers (``conv3x3.0`` [, ``conv3x3.1``]); ``conv1x1`` pointwise.
    (B, cin, H, W) -> (B, cout, H, W).
    """

    def __init__(self, cin, cout, num3x3=1):
        super().__init__()
        self.residual = cin == cout
        self.conv3x3 = nn.Sequential(*[conv_layer(cin, cin, kernel_size=3, padding=1, groups=cin)
                                       for _ in range(num3x3)])
        self.conv1x1 = conv_layer(cin, cout)

    def forward(self, x):
        out = self.conv1x1(self.conv3x3(x))
        return out + x if self.residual else out


class _ConcatUnits(nn.Module):
    """Units ``conv1..convN``; unit k sees cat(input, outputs 1..k-1); the result concatenates the input
    (when ``keep_input``) and every unit output along channels."""

    keep_input = True

    def forward(self, x):
        features = [x]
        for unit in self.units():
            features.append(unit(torch.cat(features, dim=1)))
        return torch.cat(features if self.keep_input else features[1:], dim=1)

    def units(self):
        return [module for name, module in self.named_children() if name.startswith("conv")]


class DenseBlock(_ConcatUnits):
    """4 units of c/4 channels: (B, c, H, W) -> (B, 2c, H, W)."""

    def __init__(self, channels):
        super().__init__()
        quarter = channels // 4
        self.conv1 = MobileUnit(channels, quarter)
        self.conv2 = MobileUnit(channels * 5 // 4, quarter)
        self.conv3 = MobileUnit(channels * 6 // 4, quarter)
        self.conv4 = MobileUnit(channels * 7 // 4, quarter)


class DenseBlock2(_ConcatUnits):
    """2 units of c/2 channels: (B, c, H, W) -> (B, 2c, H, W)."""

    def __init__(self, channels):
        super().__init__()
        half = channels // 2
        self.conv1 = MobileUnit(channels, half)
        self.conv2 = MobileUnit(channels * 3 // 2, half)


class DenseBlock2NoExpand(_ConcatUnits):
    """Units of 3c/4 and c/4 channels whose outputs (not the input) are concatenated: (B, c, ...) -> (B, c, ...)."""

    keep_input = False

    def __init__(self, channels):
        super().__init__()
        self.conv1 = MobileUnit(channels, channels * 3 // 4)
        self.conv2 = MobileUnit(channels * 7 // 4, channels // 4)


class SenetBlock(nn.Module):
    """Squeeze-and-excitation: global average -> fc1 (C -> min(C/2, 256), BN, Hardtanh) -> fc2 (-> C, BN)
    -> sigmoid -> per-channel scale of the input. (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, channels):
        super().__init__()
        hidden = min(channels // 2, 256)
        self.fc1 = linear_layer(channels, hidden)
        self.fc2 = linear_layer(hidden, channels, relu=False)

    def forward(self, x):
        scale = torch.sigmoid(self.fc2(self.fc1(x.mean(dim=(2, 3)))))
        return x * scale[:, :, None, None]


class Reorg(nn.Module):
    """Space-to-depth: (B, C, H, W) -> (B, 4C, H/2, W/2); output channel 4c + 2dy + dx holds input pixel
    (2y + dy, 2x + dx) of channel c."""

    def forward(self, x):
        b, c, h, w = x.shape
        x = x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)  # (B, C, dy, dx, H/2, W/2)
        return x.reshape(b, 4 * c, h // 2, w // 2)


def _upsample_nearest(x):
    return F.interpolate(x, scale_factor=2, mode="nearest")


class DenseStackEncoder(nn.Module):
    """Encoder half of the DenseStack hourglass (official ``DenseStack2_Encoder`` when ``deep``).

    dense1 (DenseBlock2, c -> 2c) -> senet1 -> /2; dense2 (DenseBlock, -> 4c) -> senet2 -> /2; dense3 (-> 8c)
    -> senet3 (applied only when ``use_senet3``; always registered) -> /2; with ``deep`` two
    DenseBlock2NoExpand (dense4, dense5) at 8c. (B, c, H, W) -> (B, 8c, H/8, W/8).
    Returns (d1 (B, 2c, H/2, W/2), d2 (B, 4c, H/4, W/4), d3 (B, 8c, H/8, W/8)).
    """

    def __init__(self, channels, deep, use_senet3):
        super().__init__()
        self.use_senet3 = use_senet3
        self.dense1 = DenseBlock2(channels)
        self.senet1 = SenetBlock(channels * 2)
        self.transition1 = nn.AvgPool2d(2)
        self.dense2 = DenseBlock(channels * 2)
        self.senet2 = SenetBlock(channels * 4)
        self.transition2 = nn.AvgPool2d(2)
        self.dense3 = DenseBlock(channels * 4)
        self.senet3 = SenetBlock(channels * 8)
        self.transition3 = nn.AvgPool2d(2)
        if deep:
            self.dense4 = DenseBlock2NoExpand(channels * 8)
            self.dense5 = DenseBlock2NoExpand(channels * 8)

    def encode(self, x):
        d1 = self.transition1(self.senet1(self.dense1(x)))
        d2 = self.transition2(self.senet2(self.dense2(d1)))
        d3 = self.dense3(d2)
        if self.use_senet3:
            d3 = self.senet3(d3)
        d3 = self.transition3(d3)
        if hasattr(self, "dense5"):
            d3 = self.dense5(self.dense4(d3))
        return d1, d2, d3

    def forward(self, x):
        return self.encode(x)[2]


class DenseStack(DenseStackEncoder):
    """Hourglass (official ``DenseStack`` / ``DenseStack2``): the encoder, then thrink1..3 with SE blocks and
    nearest x2 up-sampling plus skips from d2, d1.

    ``deep=False`` (DenseStack): senet3 registered but unused; output bilinear-up-sampled x2 (align_corners):
    (B, c, H, W) -> (B, out, H, W). ``deep=True`` (DenseStack2): senet3 used, dense4/5 added, no final
    up-sampling: -> ((B, out, H/2, W/2), bottleneck (B, 8c, H/8, W/8)).
    """

    def __init__(self, channels, out_channels, deep):
        super().__init__(channels, deep=deep, use_senet3=deep)
        self.final_upsample = not deep
        self.thrink1 = nn.Sequential(MobileUnit(channels * 8, channels * 4),
                                     MobileUnit(channels * 4, channels * 4, num3x3=2))
        self.senet4 = SenetBlock(channels * 4)
        self.thrink2 = nn.Sequential(MobileUnit(channels * 4, channels * 2),
                                     MobileUnit(channels * 2, channels * 2, num3x3=2))
        self.senet5 = SenetBlock(channels * 2)
        self.thrink3 = nn.Sequential(MobileUnit(channels * 2, channels * 2),
                                     MobileUnit(channels * 2, out_channels, num3x3=2))
        self.senet6 = SenetBlock(out_channels)

    def forward(self, x):
        d1, d2, bottleneck = self.encode(x)
        u = _upsample_nearest(self.senet4(self.thrink1(bottleneck))) + d2
        u = _upsample_nearest(self.senet5(self.thrink2(u))) + d1
        out = self.senet6(self.thrink3(u))
        if self.final_upsample:
            return F.interpolate(out, scale_factor=2, mode="bilinear", align_corners=True)
        return out, bottleneck



class DenseStackBackbone(nn.Module):
    """MobRecon's ``DenseStack_Backnone`` (and H2ONet's, with ``rotation_encoder``) for 128 px crops.

    (B, 3, 128, 128) RGB in [0, 1] -> pre_layer (B, 128, 64, 64) -> reorg (B, 512, 32, 32) -> thrink t
    (B, 128, 32, 32) -> dense_stack1 (B, 24, 32, 32) -> stack1_remap, cat with t -> thrink2 t2 (B, 128, 32, 32)
    -> dense_stack2 -> (B, 24, 16, 16) map + bottleneck (B, 1024, 4, 4).
    forward returns a dict: ``latent`` (B, 256, 4, 4) = mid_proj(bottleneck), ``bottleneck`` (B, 1024, 4, 4),
    ``uv`` (B, 21, 2) joints normalised to the crop (from the 16x16 map of each joint, flattened row-major,
    through an MLP), and with ``rotation_encoder`` ``rotation_latent`` (B, 1024, 4, 4) = dense_stack3 applied
    to t2 detached (H2ONet's orientation branch).
    """

    def __init__(self, num_joints=21, stack_channels=128, joint_map_channels=24, latent_channels=256,
                 rotation_encoder=False):
        super().__init__()
        self.pre_layer = nn.Sequential(conv_layer(3, 64, kernel_size=3, stride=2, padding=1),
                                       MobileUnit(64, stack_channels))
        self.thrink = conv_layer(stack_channels * 4, stack_channels)
        self.dense_stack1 = DenseStack(stack_channels, joint_map_channels, deep=False)
        self.stack1_remap = conv_layer(joint_map_channels, joint_map_channels)
        self.thrink2 = conv_layer(stack_channels + joint_map_channels, stack_channels)
        self.dense_stack2 = DenseStack(stack_channels, joint_map_channels, deep=True)
        if rotation_encoder:
            self.dense_stack3 = DenseStackEncoder(stack_channels, deep=True, use_senet3=True)
        self.mid_proj = nn.Sequential(nn.Conv2d(stack_channels * 8, latent_channels, 1, bias=False))
        self.reduce = nn.Sequential(nn.Conv2d(joint_map_channels, num_joints, 1, bias=False))
        map_size = 16 * 16  # the 24-channel joint map is 16x16 for a 128 px crop
        self.uv_reg = nn.Sequential(linear_layer(map_size, 128, bn=False), linear_layer(128, 64, bn=False),
                                    linear_layer(64, 2, bn=False, relu=False))
        self.reorg = Reorg()
        self.map_size = map_size

    def forward(self, img):
        t = self.thrink(self.reorg(self.pre_layer(img)))
        stack1 = self.dense_stack1(t)
        t2 = self.thrink2(torch.cat([self.stack1_remap(stack1), t], dim=1))
        joint_maps, bottleneck = self.dense_stack2(t2)
        reduced = self.reduce(joint_maps)  # (B, 21, 16, 16)
        if reduced.shape[2] * reduced.shape[3] != self.map_size:
            raise ValueError(f"the DenseStack backbone needs 128x128 crops, got {tuple(img.shape[-2:])}")
        out = {"latent": self.mid_proj(bottleneck), "bottleneck": bottleneck,
               "uv": self.uv_reg(reduced.flatten(2))}
        if hasattr(self, "dense_stack3"):
            out["rotation_latent"] = self.dense_stack3(t2.detach())
        return out
