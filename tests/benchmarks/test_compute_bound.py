"""benchmarks/compute_bound.py: the FLOP counts behind the benchmarks' float32 bounds, and the GEMM rate."""
import pytest
import torch
import torch.nn.functional as F

from benchmarks.compute_bound import GEMM_SIDES, counted_flops, gemm_gflops, gemm_runs
from models.blocks.transformer import CRBlock


def test_flop_count_includes_the_cpu_attention_kernel():
    batch, heads, tokens, dim = 2, 4, 8, 16
    q, k, v = (torch.randn(batch, heads, tokens, dim) for _ in range(3))
    flops = counted_flops(lambda: F.scaled_dot_product_attention(q, k, v))
    assert flops == 4 * batch * heads * tokens * tokens * dim  # q k^T and the weighted sum of v


def test_flop_count_includes_the_cpu_attention_backward():
    batch, heads, tokens, dim = 2, 4, 8, 16
    q, k, v = (torch.randn(batch, heads, tokens, dim, requires_grad=True) for _ in range(3))
    flops = counted_flops(lambda: F.scaled_dot_product_attention(q, k, v).sum().backward())
    # forward: 2 products; backward: the scores recomputed and the gradients of q, k, v and the weights: 5
    assert flops == (4 + 10) * batch * heads * tokens * tokens * dim


def test_flop_count_of_a_cr_block_with_out_channels():
    dim, channels, side = 16, 8, 4
    block = CRBlock(dim, num_heads=4, out_channels=channels).eval()
    query = torch.randn(1, dim, side, side)
    tokens = side * side
    expected = (3 * 2 * tokens * dim * dim  # 1x1 query / key / value convolutions
                + 4 * tokens * tokens * dim  # attention over all heads
                + 2 * tokens * dim * 4 * dim + 2 * tokens * 4 * dim * channels)  # MLP, fc2 on the kept rows only
    with torch.no_grad():
        assert counted_flops(lambda: block(query, query)) == expected


def test_gemm_rate_is_the_best_of_the_timed_products():
    runs = gemm_runs()
    assert len(runs) == len(GEMM_SIDES) and runs[0]().shape == (GEMM_SIDES[0], GEMM_SIDES[0])
    slow, fast = 2 * GEMM_SIDES[0] ** 3 / 1e9, 2 * GEMM_SIDES[1] ** 3 / 1e9 / 4  # 1 GFLOPS and 4 GFLOPS
    assert gemm_gflops([slow, fast]) == pytest.approx(4.0)
