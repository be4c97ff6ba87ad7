"""utils.runtime.inference_model: fused / channels-last copies give the model's outputs; the original is kept."""
import torch

from models.blocks.fpn import TwoStreamFPN
from utils.runtime import inference_model


def _pyramid_with_trained_statistics():
    torch.manual_seed(0)
    net = TwoStreamFPN(backbone="resnet18")
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):  # non-trivial statistics, so folding them matters
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.1, 0.1)
    return net.eval()


def test_fused_channels_last_copy_gives_the_same_pyramid_and_leaves_the_model_alone():
    net = _pyramid_with_trained_statistics()
    img = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    batch_norms = sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    fast = inference_model(net, channels_last=True, fuse_batchnorm=True)
    assert fast is not net and not fast.training
    left = sum(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    assert batch_norms == 30 and left == 0  # resnet18: stem + 8 blocks x 2 + 3 downsamples; object layer2-3: 10
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules()) == batch_norms
    assert fast.layer1_h[0][0].conv1.weight.is_contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        expected, got = net(img), fast(img)
    for e, g in zip(expected, got):
        assert torch.allclose(e, g, rtol=1e-5, atol=1e-5 * e.abs().max().item())


def test_no_option_returns_the_model_itself_in_eval_mode():
    net = TwoStreamFPN(backbone="resnet18").train()
    assert inference_model(net) is net and not net.training


def _with_trained_statistics(module):
    for bn in module.modules():
        if isinstance(bn, torch.nn.BatchNorm2d):
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.data.uniform_(0.5, 1.5)
            bn.bias.data.uniform_(-0.1, 0.1)
    return module.eval()


def test_fusing_folds_the_conv_bn_pairs_of_the_heads_and_keeps_the_pre_activation_norms():
    from models.blocks.hand_encoder import HandEncoder
    from models.blocks.hand_head import HandRegHead
    from models.blocks.object_head import ObjRegHead

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    hand_head = _with_trained_statistics(HandRegHead(roi_res=16, channels=32, depth=2))
    encoder = _with_trained_statistics(HandEncoder(num_feat_chan=32, size_input_feature=(16, 16)))
    obj_head = _with_trained_statistics(ObjRegHead(channels=32, inter_channels=16))
    x = torch.randn(2, 32, 16, 16, generator=gen)
    for net, inputs, kept in ((hand_head, (x,), 8), (encoder, (torch.rand(2, 21, 16, 16, generator=gen), x), 8),
                              (obj_head, (x,), 0)):
        fast = inference_model(net, channels_last=True, fuse_batchnorm=True)
        # the pre-activation norm of each residual block (after a sum, before a LeakyReLU) is all that stays
        assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules()) == kept
        with torch.inference_mode():
            expected, got = net(*inputs), fast(*inputs)
        for e, g in zip(expected if isinstance(expected, tuple) else (expected,),
                        got if isinstance(got, tuple) else (got,)):
            assert torch.allclose(e, g, rtol=1e-5, atol=1e-5 * e.abs().max().item())

