"""Two-stream ResNet feature pyramid with LeakyReLU (official ``hfl_net_hor/backbone_share.py::FPN``).

ResNet-50 is the official trunk; ``backbone="resnet18"`` / ``"resnet34"`` build the same pyramid on the smaller
torchvision ResNets (stage widths 64-512 instead of 256-2048) for CPU-sized runs such as the synthetic demo.
A hand stream (stem, stages 1-4) and an object stream that shares the stem, stage 1 and - as in the official
code - the *hand* stage-4 weights, but has its own copies of stages 2 and 3. Each stream ends in an FPN
top-down path down to level P2 (stride 4, 256 channels). Spec: docs/official-model.md §1.3.
"""
import copy
from pathlib import Path

import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet18, resnet34, resnet50
from torchvision.models.resnet import BasicBlock, Bottleneck

from utils.checkpoint import load_checkpoint, load_weights

__all__ = ["BACKBONES", "TwoStreamFPN", "check_backbone", "configured_backbone", "leaky_resnet"]

FPN_CHANNELS = 256
P2_STRIDE = 4
BACKBONES = {"resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50}


def check_backbone(name: str, where: str = "model.backbone") -> None:
    """ValueError naming ``where`` unless ``name`` is one of :data:`BACKBONES`."""
    if name not in BACKBONES:
        raise ValueError(f"{where} must be one of {sorted(BACKBONES)}, got {name!r}")


def configured_backbone(cfg) -> str:
    """``cfg.model.backbone`` of a loaded experiment config, checked by :func:`check_backbone` (the error names
    the config file)."""
    check_backbone(cfg.model.backbone, f"{cfg.source}: model.backbone")
    return cfg.model.backbone


def leaky_resnet(backbone="resnet50", weights_path=None):
    """torchvision ResNet (random init) with every ReLU replaced by ``LeakyReLU(0.01, inplace=True)``.

    Args:
        backbone: one of :data:`BACKBONES` (``model.backbone``).
        weights_path: optional local torchvision ImageNet state_dict file of that ResNet (e.g.
            ``resnet50-19c8e357.pth``), loaded strictly. Nothing is ever downloaded.
    """
    check_backbone(backbone)
    net = BACKBONES[backbone](weights=None)
    # Official init is kaiming_normal(fan_out, 'leaky_relu') with slope 0 -> same gain as torchvision's 'relu'.
    net.relu = nn.LeakyReLU(inplace=True)
    for module in net.modules():
        if isinstance(module, (BasicBlock, Bottleneck)):
            module.relu = nn.LeakyReLU(inplace=True)
    if weights_path is not None:
        path = Path(weights_path)
        if not path.is_file():
            raise FileNotFoundError(f"backbone weights file {path} does not exist (model.backbone_weights)")
        load_weights(net, load_checkpoint(path)["state_dict"], strict=True,
                     source=f"{path} (model.backbone_weights)")
    return net


def stage_channels(resnet) -> tuple:
    """Output channels of stages 1-4 (c2..c5) of a torchvision ResNet: (256, 512, 1024, 2048) for ResNet-50."""
    return tuple(width * resnet.layer1[0].expansion for width in (64, 128, 256, 512))


def _upsample_add(coarse, lateral):
    """Bilinear resize of ``coarse`` (B,C,h,w) to ``lateral``'s (H,W) (align_corners=False) plus ``lateral``."""
    return F.interpolate(coarse, size=lateral.shape[-2:], mode="bilinear", align_corners=False) + lateral


class TwoStreamFPN(nn.Module):
    """Shared-stem two-stream FPN on a ResNet (official: ResNet-50).

    Input: image (B, 3, H, W), RGB in [0, 1], H and W multiples of 32.
    Output: ``(p2_h, p2_o)``, each (B, 256, H/4, W/4); with ``return_feat=True`` also a dict
    ``{c1_h (B,64,H/4,W/4), c2_h (B,C2,H/4,W/4), c3_h (B,C3,H/8,W/8), c3_o (B,C3,H/8,W/8)}`` where
    ``(C2, C3, C4, C5) = stage_channels`` ((256, 512, 1024, 2048) for ResNet-50, (64, 128, 256, 512) for 18 / 34).
    """

    out_channels = FPN_CHANNELS
    stride = P2_STRIDE

    def __init__(self, weights_path=None, backbone="resnet50"):
        super().__init__()
        resnet = leaky_resnet(backbone, weights_path)
        self.stage_channels = stage_channels(resnet)
        c2, c3, c4, c5 = self.stage_channels
        self.toplayer_h = nn.Conv2d(c5, FPN_CHANNELS, kernel_size=1)
        self.toplayer_o = nn.Conv2d(c5, FPN_CHANNELS, kernel_size=1)
        self.layer0_h = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool)
        self.layer1_h = nn.Sequential(resnet.layer1)
        self.layer2_h = nn.Sequential(resnet.layer2)
        self.layer3_h = nn.Sequential(resnet.layer3)
        self.layer4_h = nn.Sequential(resnet.layer4)
        self.layer2_o = nn.Sequential(copy.deepcopy(resnet.layer2))
        self.layer3_o = nn.Sequential(copy.deepcopy(resnet.layer3))
        self.smooth3_h = nn.Conv2d(FPN_CHANNELS, FPN_CHANNELS, kernel_size=3, padding=1)
        self.smooth3_o = nn.Conv2d(FPN_CHANNELS, FPN_CHANNELS, kernel_size=3, padding=1)
        for stream in ("h", "o"):
            setattr(self, f"latlayer1_{stream}", nn.Conv2d(c4, FPN_CHANNELS, kernel_size=1))
            setattr(self, f"latlayer2_{stream}", nn.Conv2d(c3, FPN_CHANNELS, kernel_size=1))
            setattr(self, f"latlayer3_{stream}", nn.Conv2d(c2, FPN_CHANNELS, kernel_size=1))

    def _top_down(self, stream, c2, c3, c4, c5):
        """FPN path of one stream ('h' or 'o') from stage outputs to P2 (B, 256, H/4, W/4)."""
        p5 = getattr(self, f"toplayer_{stream}")(c5)
        p4 = _upsample_add(p5, getattr(self, f"latlayer1_{stream}")(c4))
        p3 = _upsample_add(p4, getattr(self, f"latlayer2_{stream}")(c3))
        p2 = _upsample_add(p3, getattr(self, f"latlayer3_{stream}")(c2))
        return getattr(self, f"smooth3_{stream}")(p2)

    def _object_stream(self, c2):
        """Object stage outputs c3_o, c4_o, c5_o; stage 4 re-uses the hand weights (official quirk)."""
        c3_o = self.layer2_o(c2)
        c4_o = self.layer3_o(c3_o)
        c5_o = self.layer4_h(c4_o)
        return c3_o, c4_o, c5_o

    def forward(self, img, return_feat=False):
        c1 = self.layer0_h(img)
        c2 = self.layer1_h(c1)
        c3_h = self.layer2_h(c2)
        c4_h = self.layer3_h(c3_h)
        c5_h = self.layer4_h(c4_h)
        c3_o, c4_o, c5_o = self._object_stream(c2)
        p2_h = self._top_down("h", c2, c3_h, c4_h, c5_h)
        p2_o = self._top_down("o", c2, c3_o, c4_o, c5_o)
        if not return_feat:
            return p2_h, p2_o
        return p2_h, p2_o, {"c3_h": c3_h, "c1_h": c1, "c2_h": c2, "c3_o": c3_o}

    def object_pyramid(self, img):
        """Only the object-stream P2 map (B, 256, H/4, W/4); skips the hand stages 2-3 and hand FPN path.

        Equal to ``forward(img)[1]``; used by the grasp classifier, which reads only P2_o.
        """
        c2 = self.layer1_h(self.layer0_h(img))
        c3_o, c4_o, c5_o = self._object_stream(c2)
        return self._top_down("o", c2, c3_o, c4_o, c5_o)
