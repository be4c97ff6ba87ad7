"""Object keypoint voting head and its decoder (official ``obj_regHead`` + ``Pose2DLayer``).

Spec: docs/official-model.md §1.8. The head predicts, for every cell of the object ROI grid and every
one of the 21 object keypoints (8 corners, 12 edge midpoints, centre of the object's 3D box), a confidence
logit and an (x, y) offset; the decoder turns them into box-normalised positions and sigmoid confidences.
"""
import torch
from torch import nn

__all__ = ["ObjRegHead", "Pose2DLayer", "NUM_OBJECT_KEYPOINTS"]

NUM_OBJECT_KEYPOINTS = 21  # 8 box corners, 12 edge midpoints, the box centre


class ObjRegHead(nn.Module):
    """Three (1x1 conv -> BN -> LReLU(0.1) -> 3x3 conv -> BN -> LReLU(0.1)) stages and a 1x1 output conv.

    Input (B, channels, R, R) -> output (B, 3*K, R, R): channels [0, K) confidence logits, [K, 2K) x offsets,
    [2K, 3K) y offsets, K = ``joint_nb`` keypoints.
    """

    num_stages = 3
    # (conv, batch norm applied right to its output) pairs: utils.runtime.inference_model may fold them
    conv_bn_pairs = tuple((f"conv{stage}_{i}", f"bn{stage}_{i}") for stage in range(1, num_stages + 1) for i in (1, 2))

    def __init__(self, channels=256, inter_channels=128, joint_nb=NUM_OBJECT_KEYPOINTS):
        super().__init__()
        self.joint_nb = joint_nb
        for stage in range(1, self.num_stages + 1):
            setattr(self, f"conv{stage}_1", nn.Conv2d(channels, inter_channels, kernel_size=1, bias=True))
            setattr(self, f"bn{stage}_1", nn.BatchNorm2d(inter_channels))
            setattr(self, f"conv{stage}_2", nn.Conv2d(inter_channels, channels, kernel_size=3, padding=1,
                                                       bias=True))
            setattr(self, f"bn{stage}_2", nn.BatchNorm2d(channels))
        self.out_conv = nn.Conv2d(channels, 3 * joint_nb, kernel_size=1, bias=True)
        self.activation = nn.LeakyReLU(0.1, inplace=True)

    def forward(self, x):
        for stage in range(1, self.num_stages + 1):
            x = self.activation(getattr(self, f"bn{stage}_1")(getattr(self, f"conv{stage}_1")(x)))
            x = self.activation(getattr(self, f"bn{stage}_2")(getattr(self, f"conv{stage}_2")(x)))
        return self.out_conv(x)


class Pose2DLayer(nn.Module):
    """Decode the voting map (B, 3K, H, W) into ``[px, py, conf]``, each (B, H, W, K) laid out (B, row, col, k).

    conf = sigmoid(logit); px = x_offset / coord_norm_factor + (col + 0.5) / W;
    py = y_offset / coord_norm_factor + (row + 0.5) / H. Positions are normalised to the object box
    ((0, 0) top-left, (1, 1) bottom-right). No parameters; identical in train and eval mode.
    """

    def __init__(self, joint_nb=NUM_OBJECT_KEYPOINTS, coord_norm_factor=10.0):
        super().__init__()
        self.joint_nb = joint_nb
        self.coord_norm_factor = coord_norm_factor

    def forward(self, voting_map):
        batch, channels, height, width = voting_map.shape
        k = self.joint_nb
        if channels != 3 * k:
            raise ValueError(f"Pose2DLayer expects {3 * k} channels (3 x {k} keypoints), got {channels}")
        maps = voting_map.permute(0, 2, 3, 1)  # (B, H, W, 3K)
        col_centres = (torch.arange(width, device=maps.device, dtype=maps.dtype) + 0.5) / width
        row_centres = (torch.arange(height, device=maps.device, dtype=maps.dtype) + 0.5) / height
        conf = torch.sigmoid(maps[..., :k])
        px = maps[..., k:2 * k] / self.coord_norm_factor + col_centres.view(1, 1, width, 1)
        py = maps[..., 2 * k:] / self.coord_norm_factor + row_centres.view(1, height, 1, 1)
        return [px, py, conf]
