"""Building blocks against hand-computed values and independent implementations of the spec
(docs/official-model.md §1.3-§1.12, §1.16)."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from models.blocks.classifier_heads import image_classifier_head
from models.blocks.fpn import TwoStreamFPN, leaky_resnet
from models.blocks.hand_encoder import HandEncoder
from models.blocks.hand_head import HandRegHead, Hourglass
from models.blocks.init import init_head_weights
from models.blocks.mano_head import ManoRegHead
from models.blocks.object_head import Pose2DLayer
from models.blocks.roi import box_intersection, box_uv_to_grid, pool_box, pool_boxes, sample_at_uv
from models.blocks.transformer import CRBlock, CRTransformer, SlfMultiHeadAttention


@pytest.fixture(scope="module")
def fpn():
    torch.manual_seed(0)
    return TwoStreamFPN().eval()


def test_fpn_shapes_and_object_pyramid_equals_full_forward(fpn):
    img = torch.rand(1, 3, 96, 64)
    with torch.no_grad():
        p2_h, p2_o, feats = fpn(img, return_feat=True)
        p2_o_only = fpn.object_pyramid(img)
    assert p2_h.shape == p2_o.shape == (1, 256, 24, 16)
    assert feats["c3_h"].shape == feats["c3_o"].shape == (1, 512, 12, 8)
    assert feats["c1_h"].shape == (1, 64, 24, 16) and feats["c2_h"].shape == (1, 256, 24, 16)
    torch.testing.assert_close(p2_o_only, p2_o)


@pytest.mark.parametrize("backbone, widths", [("resnet18", (64, 128, 256, 512)), ("resnet34", (64, 128, 256, 512))])
def test_smaller_resnets_give_the_same_pyramid_with_their_stage_widths(backbone, widths):
    torch.manual_seed(0)
    fpn = TwoStreamFPN(backbone=backbone).eval()
    img = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        p2_h, p2_o, feats = fpn(img, return_feat=True)
        torch.testing.assert_close(fpn.object_pyramid(img), p2_o)
    assert fpn.stage_channels == widths and fpn.latlayer3_h.in_channels == widths[0]
    assert fpn.toplayer_o.in_channels == widths[3]
    assert p2_h.shape == (1, 256, 16, 24) and feats["c3_h"].shape == (1, widths[1], 8, 12)
    # hand stages 1-4 (2+2+2+2 / 3+4+6+3 blocks) + the object stream's own copies of stages 2 and 3
    expected_blocks = {"resnet18": 8 + 4, "resnet34": 16 + 10}[backbone]
    assert sum(1 for m in fpn.modules() if type(m).__name__ == "BasicBlock") == expected_blocks
    assert not any(type(m) is nn.ReLU for m in fpn.modules())
    with pytest.raises(ValueError, match="model.backbone must be one of .*resnet18.*got 'vgg'"):
        TwoStreamFPN(backbone="vgg")


def test_backbone_uses_leaky_relu_only(fpn):
    assert not any(type(m) is nn.ReLU for m in fpn.modules())
    assert sum(type(m) is nn.LeakyReLU and m.negative_slope == 0.01 for m in fpn.modules()) > 16


def test_local_imagenet_file_is_loaded_into_both_streams(tmp_path):
    torch.manual_seed(1)
    reference = leaky_resnet("resnet50")
    path = tmp_path / "resnet50-19c8e357.pth"
    torch.save(reference.state_dict(), path)
    fpn = TwoStreamFPN(weights_path=path)
    torch.testing.assert_close(fpn.layer0_h[0].weight, reference.conv1.weight)
    torch.testing.assert_close(fpn.layer2_o[0][0].conv1.weight, reference.layer2[0].conv1.weight)
    torch.testing.assert_close(fpn.layer3_h[0][5].bn3.running_var, reference.layer3[5].bn3.running_var)
    with pytest.raises(FileNotFoundError, match="nope.pth does not exist .*model.backbone_weights"):
        TwoStreamFPN(weights_path=tmp_path / "nope.pth")


def test_pose2d_layer_decodes_cells_and_keypoints():
    k, h, w = 2, 3, 4
    voting = torch.zeros(1, 3 * k, h, w)
    voting[0, 1, 2, 3] = 0.0  # conf logit of keypoint 1 at (row 2, col 3) -> 0.5
    voting[0, k + 1, 2, 3] = 5.0  # x offset 5 / 10 = 0.5
    voting[0, 2 * k + 1, 2, 3] = -2.0  # y offset -0.2
    voting[0, 0, 0, 0] = math.log(3.0)  # sigmoid = 0.75
    px, py, conf = Pose2DLayer(joint_nb=k)(voting)
    assert px.shape == py.shape == conf.shape == (1, h, w, k)
    assert px[0, 2, 3, 1].item() == pytest.approx(0.5 + 3.5 / 4)
    assert py[0, 2, 3, 1].item() == pytest.approx(-0.2 + 2.5 / 3)
    assert px[0, 1, 2, 0].item() == pytest.approx(2.5 / 4)
    assert conf[0, 0, 0, 0].item() == pytest.approx(0.75)
    assert conf[0, 2, 3, 1].item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="expects 6 channels"):
        Pose2DLayer(joint_nb=k)(torch.zeros(1, 5, h, w))


def test_soft_argmax_of_a_peak_and_of_a_flat_map():
    head = HandRegHead(roi_res=8, joint_nb=2)
    latents = torch.zeros(1, 2, 8, 8)
    latents[0, 0, 6, 1] = 100.0  # row 6, col 1 -> u = 1.5/8, v = 6.5/8
    heatmaps, uv = head.soft_argmax(latents)
    torch.testing.assert_close(heatmaps.sum(dim=(2, 3)), torch.ones(1, 2))
    torch.testing.assert_close(uv[0, 0], torch.tensor([1.5 / 8, 6.5 / 8]))
    torch.testing.assert_close(uv[0, 1], torch.tensor([0.5, 0.5]))


def test_hand_head_and_encoder_shapes():
    head, encoder = HandRegHead().eval(), HandEncoder().eval()
    with torch.no_grad():
        heatmaps, encoding, uv = head(torch.rand(2, 256, 32, 32))
        code = encoder(heatmaps, encoding)
    assert heatmaps.shape == (2, 21, 32, 32) and encoding.shape == (2, 256, 32, 32) and uv.shape == (2, 21, 2)
    assert code.shape == (2, 1024) and encoder.num_feat_out == 1024
    assert Hourglass(planes=4, depth=4).eval()(torch.rand(1, 8, 16, 16)).shape == (1, 8, 16, 16)


def test_box_intersection_and_empty_mask():
    a = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0]])
    b = torch.tensor([[5.0, 2.0, 20.0, 8.0], [10.0, 0.0, 20.0, 5.0], [12.0, 12.0, 20.0, 20.0]])
    box, non_empty = box_intersection(a, b)
    torch.testing.assert_close(box[0], torch.tensor([5.0, 2.0, 10.0, 8.0]))
    assert non_empty.tolist() == [True, False, False]  # touching edges -> zero width -> empty


def test_pool_box_of_a_constant_map_and_box_scale():
    feat = torch.arange(16.0).view(1, 1, 4, 4).repeat(2, 1, 1, 1)  # value = 4 * row + col (stride-4 map)
    boxes = torch.tensor([[0.0, 0.0, 16.0, 16.0], [4.0, 4.0, 8.0, 8.0]])  # image px; 1/4 -> map cells
    out = pool_box(feat, boxes, output_size=2)
    assert out.shape == (2, 1, 2, 2)
    # second box covers map cell (1, 1) .. (2, 2) in continuous coords (aligned=False): samples at 1.25/1.75
    expected = torch.tensor([[4 * 1.25 + 1.25, 4 * 1.25 + 1.75], [4 * 1.75 + 1.25, 4 * 1.75 + 1.75]])
    torch.testing.assert_close(out[1, 0], expected)


def test_pool_boxes_equals_one_pool_box_per_set_and_keeps_channels_last():
    gen = torch.Generator().manual_seed(0)
    feat = torch.randn(3, 8, 16, 16, generator=gen)
    sets = [torch.tensor([[0.0, 0.0, 40.0, 30.0], [8.0, 4.0, 60.0, 64.0], [20.0, 20.0, 21.0, 22.0]]),
            torch.tensor([[10.0, 5.0, 30.0, 50.0], [0.0, 0.0, 64.0, 64.0], [30.0, 40.0, 20.0, 10.0]])]
    for fmt in (torch.contiguous_format, torch.channels_last):
        pooled = pool_boxes(feat.contiguous(memory_format=fmt), sets, output_size=4)
        for boxes, got in zip(sets, pooled):
            assert torch.equal(got, pool_box(feat, boxes, output_size=4))
            assert got.is_contiguous(memory_format=fmt)


def test_box_uv_to_grid_uses_width_for_x_and_height_for_y():
    boxes = torch.tensor([[10.0, 20.0, 50.0, 100.0]])
    uv = torch.tensor([[[0.0, 0.0], [1.0, 1.0], [0.5, 0.25]]])
    grid = box_uv_to_grid(uv, boxes, (200, 100))  # H=200, W=100: non-square, fixed official bug 1
    expected = torch.tensor([[[(10 - 50) / 50, (20 - 100) / 100], [0.0, 0.0], [(30 - 50) / 50, (40 - 100) / 100]]])
    torch.testing.assert_close(grid, expected)
    clamped = box_uv_to_grid(torch.tensor([[[3.0, -3.0]]]), boxes, (200, 100))
    torch.testing.assert_close(clamped, torch.tensor([[[1.0, -1.0]]]))


def test_sample_at_uv_reads_corners_exactly():
    feat = torch.arange(6.0).view(1, 1, 2, 3)
    uv = torch.tensor([[[-1.0, -1.0], [1.0, 1.0], [0.0, -1.0]]])
    torch.testing.assert_close(sample_at_uv(feat, uv), torch.tensor([[[0.0, 5.0, 1.0]]]))


def _cr_block_reference(block, query, key):
    """The CR block written out literally from §1.9 (explicit softmax, per-head loop)."""
    b, c, h, w = query.shape
    heads, d = block.num_heads, c // block.num_heads
    q = block.encode_query(query).flatten(2).transpose(1, 2)
    k = block.encode_key(key).flatten(2).transpose(1, 2)
    v = block.encode_value(key).flatten(2).transpose(1, 2)
    out = []
    for i in range(heads):
        sl = slice(i * d, (i + 1) * d)
        attn = torch.softmax(q[..., sl] @ k[..., sl].transpose(1, 2) * d ** -0.5, dim=-1)
        out.append(attn @ v[..., sl])
    t = query.flatten(2).transpose(1, 2) + torch.cat(out, dim=-1)
    mlp = block.mlp
    t = t + mlp.fc2(F.gelu(mlp.fc1(F.layer_norm(t, (c,), block.norm2.weight, block.norm2.bias, 1e-5))))
    return t.transpose(1, 2).reshape(b, c, h, w)


def test_cr_block_matches_the_written_out_spec():
    torch.manual_seed(0)
    block = CRBlock(dim=16, num_heads=4)
    query, key = torch.randn(2, 16, 3, 5), torch.randn(2, 16, 3, 5)
    with torch.no_grad():
        torch.testing.assert_close(block(query, key), _cr_block_reference(block, query, key), rtol=1e-5, atol=1e-5)


def test_cr_transformer_out_channels_gives_the_first_channels_of_the_full_output_with_the_same_parameters():
    torch.manual_seed(0)
    full = CRTransformer(inp_res=3, dim=16, depth=2, num_heads=4)
    half = CRTransformer(inp_res=3, dim=16, depth=2, num_heads=4, out_channels=8)
    assert [(k, v.shape) for k, v in half.state_dict().items()] == [(k, v.shape) for k, v in full.state_dict().items()]
    half.load_state_dict(full.state_dict())
    assert [layer.out_channels for layer in half.layers] == [16, 8]  # inner blocks feed the next query: all kept
    query, key = torch.randn(2, 16, 3, 5), torch.randn(2, 16, 3, 5)
    with torch.no_grad():
        expected, got = full(query, key), half(query, key)
    assert got.shape == (2, 8, 3, 5)
    torch.testing.assert_close(got, expected[:, :8], rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="out_channels"):
        CRBlock(16, num_heads=4, out_channels=17)


def test_mapper_on_a_length_one_sequence_is_norm_of_projected_value_plus_input():
    torch.manual_seed(0)
    mapper = SlfMultiHeadAttention(8, 32, 4, 4).eval()
    x = torch.randn(3, 1, 32)
    expected = F.layer_norm(mapper.fc(mapper.w_vs(x)) + x, (32,), mapper.layer_norm.weight,
                            mapper.layer_norm.bias, 1e-6)
    with torch.no_grad():
        torch.testing.assert_close(mapper(x), expected)


def test_head_init_matches_official_rule():
    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(64, 256, 3), nn.BatchNorm2d(256), nn.Linear(512, 512), nn.Conv1d(4, 4, 1))
    conv1d_before = module[3].weight.clone()
    module[1].weight.data.fill_(3.0)
    init_head_weights(module)
    assert module[0].weight.std().item() == pytest.approx(0.001, rel=0.05)
    assert module[2].weight.std().item() == pytest.approx(0.01, rel=0.05)
    assert module[0].bias.abs().max() == 0 and module[2].bias.abs().max() == 0
    assert torch.equal(module[1].weight, torch.ones(256)) and module[1].bias.abs().max() == 0
    assert torch.equal(module[3].weight, conv1d_before)  # Conv1d is not matched (exact type rule)


def test_classifier_head_layouts():
    legacy, plain = image_classifier_head(256, 32, legacy=True), image_classifier_head(256, 16)
    assert [type(m).__name__ for m in legacy] == ["Conv2d", "Flatten", "Linear", "Linear"]
    assert legacy[2].weight.shape == (1024, 65536) and legacy[3].weight.shape == (2, 1024)
    assert plain[2].weight.shape == (2, 16384)
    assert plain(torch.rand(2, 256, 16, 16)).shape == (2, 2)


def test_mano_head_identity_rotation_gives_the_rest_pose(standin_mano_root):
    from models.blocks.mano_head import right_hand_mano_layer

    head = ManoRegHead(right_hand_mano_layer(standin_mano_root), feature_size=8, mano_neurons=(8, 4))
    with torch.no_grad():
        head.pose_reg.weight.zero_()
        head.pose_reg.bias.copy_(torch.tensor([2.0, 0, 0, 0.5, 3.0, 0]).repeat(16))  # columns e_x, e_y
        head.shape_reg.weight.zero_()
        head.shape_reg.bias.zero_()
        pred, gt, features = head(torch.randn(2, 8), torch.zeros(2, 58))
    torch.testing.assert_close(pred["mano_pose"], torch.eye(3).expand(2, 16, 3, 3))
    torch.testing.assert_close(pred["mano_pose_aa"], torch.zeros(2, 48))
    rest_verts_mm, rest_joints_mm = head.mano_layer(torch.zeros(1, 48), torch.zeros(1, 10))
    torch.testing.assert_close(pred["verts3d"], (rest_verts_mm / 1000).expand(2, -1, -1))
    torch.testing.assert_close(gt["joints3d"], (rest_joints_mm / 1000).expand(2, -1, -1))
    torch.testing.assert_close(gt["mano_pose"], torch.eye(3).expand(2, 16, 3, 3))
    assert features.shape == (2, 4)
