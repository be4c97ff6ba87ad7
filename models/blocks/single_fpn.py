"""Single-trunk ResNet feature pyramid with LeakyReLU (HandOccNet's and Semi-Hand's ``FPN``).

The one-stream counterpart of :class:`models.blocks.fpn.TwoStreamFPN`: stem + stages 1-4 of the LeakyReLU
ResNet-50 (official; ``backbone="resnet18"`` / ``"resnet34"`` for CPU-sized runs), lateral 1x1 convs and the
top-down path down to level P2 (stride 4, 256 channels).
Spec: docs/official-baselines.md §2.1, §3.2 (HandOccNet ``backbone``) and §4.1 (Semi-Hand ``base_net``).

The official FPNs also smooth the coarser levels (``smooth1`` on P4, ``smooth2`` on P3) and return them, but
both models use only P2 (``smooth3``), which does not depend on those convs: they are registered for
checkpoint compatibility (``smooth_levels``) and not run.
"""
from torch import nn

from models.blocks.fpn import _upsample_add, leaky_resnet, stage_channels

__all__ = ["ResNetFPN"]

FPN_CHANNELS = 256
P2_STRIDE = 4
P2_SMOOTH_LEVEL = 3  # smooth3 smooths P2


class ResNetFPN(nn.Module):
    """One-stream FPN on a LeakyReLU ResNet (official: ResNet-50).

    Input: image (B, 3, H, W), RGB in [0, 1], H and W multiples of 32.
    Output: P2 = smooth3(top-down P2), (B, 256, H/4, W/4).

    Args:
        smooth_levels: which 3x3 ``smooth{level}`` convs exist: (1, 2, 3) for Semi-Hand, (2, 3) for HandOccNet
            (no ``smooth1``). Level 3 (P2) is required.
        weights_path: optional local torchvision ImageNet state_dict of that ResNet (None: random init).
        backbone: ResNet trunk (``model.backbone``): ``resnet50`` (official), ``resnet34`` or ``resnet18``.
    """

    out_channels = FPN_CHANNELS
    stride = P2_STRIDE

    def __init__(self, smooth_levels=(1, 2, 3), weights_path=None, backbone="resnet50"):
        super().__init__()
        if P2_SMOOTH_LEVEL not in smooth_levels:
            raise ValueError(f"ResNetFPN needs smooth level {P2_SMOOTH_LEVEL} (P2), got {tuple(smooth_levels)}")
        resnet = leaky_resnet(backbone, weights_path)
        c2, c3, c4, c5 = stage_channels(resnet)
        self.toplayer = nn.Conv2d(c5, FPN_CHANNELS, kernel_size=1)
        self.layer0 = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool)
        self.layer1 = nn.Sequential(resnet.layer1)
        self.layer2 = nn.Sequential(resnet.layer2)
        self.layer3 = nn.Sequential(resnet.layer3)
        self.layer4 = nn.Sequential(resnet.layer4)
        for level in sorted(smooth_levels):
            setattr(self, f"smooth{level}", nn.Conv2d(FPN_CHANNELS, FPN_CHANNELS, kernel_size=3, padding=1))
        self.latlayer1 = nn.Conv2d(c4, FPN_CHANNELS, kernel_size=1)
        self.latlayer2 = nn.Conv2d(c3, FPN_CHANNELS, kernel_size=1)
        self.latlayer3 = nn.Conv2d(c2, FPN_CHANNELS, kernel_size=1)

    def forward(self, img):
        c2 = self.layer1(self.layer0(img))   # (B, 256, H/4, W/4) for ResNet-50, (B, 64, ...) for 18 / 34
        c3 = self.layer2(c2)                 # (B, 512, H/8, W/8)
        c4 = self.layer3(c3)                 # (B, 1024, H/16, W/16)
        c5 = self.layer4(c4)                 # (B, 2048, H/32, W/32)
        p4 = _upsample_add(self.toplayer(c5), self.latlayer1(c4))
        p3 = _upsample_add(p4, self.latlayer2(c3))
        p2 = _upsample_add(p3, self.latlayer3(c2))
        return self.smooth3(p2)
