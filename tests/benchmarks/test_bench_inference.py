"""benchmarks/bench_inference.py: the FLOP count behind its float32 bound, and the output comparison."""
import torch
import torch.nn.functional as F

from benchmarks.bench_inference import _forward_flops, _largest_difference
from models.blocks.transformer import CRBlock


def test_flop_count_includes_the_cpu_attention_kernel():
    batch, heads, tokens, dim = 2, 4, 8, 16
    q, k, v = (torch.randn(batch, heads, tokens, dim) for _ in range(3))
    flops = _forward_flops(lambda model, inputs: F.scaled_dot_product_attention(q, k, v), None, None)
    assert flops == 4 * batch * heads * tokens * tokens * dim  # q k^T and the weighted sum of v


def test_flop_count_of_a_cr_block_with_out_channels():
    dim, channels, side = 16, 8, 4
    block = CRBlock(dim, num_heads=4, out_channels=channels).eval()
    query = torch.randn(1, dim, side, side)
    tokens = side * side
    expected = (3 * 2 * tokens * dim * dim  # 1x1 query / key / value convolutions
                + 4 * tokens * tokens * dim  # attention over all heads
                + 2 * tokens * dim * 4 * dim + 2 * tokens * 4 * dim * channels)  # MLP, fc2 on the kept rows only
    with torch.no_grad():
        assert _forward_flops(lambda model, inputs: model(inputs, inputs), block, query) == expected


def test_largest_difference_reports_the_worst_key_and_the_tolerance():
    reference = {"a": torch.tensor([1.0, 2.0]), "b": torch.tensor([0.5]), "n": torch.tensor([1, 0])}
    close = {"a": torch.tensor([1.0, 2.0 + 1e-6]), "b": torch.tensor([0.5 + 3e-6]), "n": torch.tensor([1, 0])}
    assert _largest_difference(reference, close)[1:] == ("b", True)
    assert not _largest_difference(reference, dict(close, a=torch.tensor([1.0, 2.01])))[2]
    assert not _largest_difference(reference, dict(close, n=torch.tensor([0, 0])))[2]
