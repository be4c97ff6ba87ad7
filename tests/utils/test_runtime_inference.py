"""utils.runtime.inference_model: fused / channels-last copies give the model's outputs; the original is kept."""
import pytest
import torch

from models.blocks.fpn import TwoStreamFPN
from utils.runtime import inference_model


def _with_trained_statistics(module):
    """``module`` in eval mode with non-trivial batch-norm statistics and affine values, so folding them matters."""
    for bn in module.modules():
        if isinstance(bn, torch.nn.BatchNorm2d):
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.data.uniform_(0.5, 1.5)
            bn.bias.data.uniform_(-0.1, 0.1)
    return module.eval()


def _pyramid_with_trained_statistics():
    torch.manual_seed(0)
    return _with_trained_statistics(TwoStreamFPN(backbone="resnet18"))


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


class _DictNet(torch.nn.Module):
    """A batch dict -> output dict model, as the evaluation models."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)

    def forward(self, batch):
        if batch["img"].shape[1] != 3:
            raise ValueError("3 channels expected")
        features = torch.nn.functional.leaky_relu(self.bn(self.conv(batch["img"]))).mean(dim=(2, 3))
        return {"features": features + batch["bbox_hand"][:, :1]}


def _dict_batch(size, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return {"img": torch.rand(size, 3, 8, 8, generator=gen), "bbox_hand": torch.rand(size, 4, generator=gen),
            "name": "not a tensor"}


def test_compiled_inference_pads_smaller_batches_to_the_compiled_size_and_cuts_the_outputs():
    net = _with_trained_statistics(_DictNet())
    wrapped = inference_model(net, compiled=True)
    seen = []

    def fake_compiled(batch):  # stands in for torch.compile's callable: records the sizes it is given
        seen.append((batch["img"].shape[0], batch["bbox_hand"].shape[0], batch["name"]))
        return net(batch)

    wrapped.__dict__["compiled"] = fake_compiled
    with torch.no_grad():
        for size in (4, 3, 1):
            batch = _dict_batch(size, seed=size)
            got, expected = wrapped(batch), net(batch)
            assert got["features"].shape == (size, 4) and torch.allclose(got["features"], expected["features"])
    assert seen == [(4, 4, "not a tensor")] * 3
    with torch.enable_grad():  # a gradient-recording call runs eagerly
        wrapped(_dict_batch(2))
    assert len(seen) == 3


def test_compiled_inference_falls_back_to_eager_on_a_compiler_failure_but_raises_input_errors():
    net = _DictNet().eval()
    wrapped = inference_model(net, compiled=True)

    def broken(batch):
        raise RuntimeError("backend failed")

    wrapped.__dict__["compiled"] = broken
    bad = dict(_dict_batch(2), img=torch.rand(2, 1, 8, 8))
    with torch.no_grad():
        with pytest.raises(ValueError, match="3 channels"):
            wrapped(bad)
        assert not wrapped.eager  # an input error says nothing about the compiler
        with pytest.warns(RuntimeWarning, match="test.compile: the compiled forward failed"):
            got = wrapped(_dict_batch(2))
        assert wrapped.eager and torch.equal(got["features"], net(_dict_batch(2))["features"])


@pytest.mark.slow
def test_compiled_inference_compiles_once_and_matches_the_eager_model():
    net = _with_trained_statistics(_DictNet())
    wrapped = inference_model(net, channels_last=True, fuse_batchnorm=True, compiled=True)
    with torch.no_grad():
        for size in (3, 2):
            batch = _dict_batch(size, seed=size)
            got, expected = wrapped(batch), net(batch)
            torch.testing.assert_close(got["features"], expected["features"], rtol=1e-5, atol=1e-5)
    assert not wrapped.eager and wrapped.batch_size == 3
