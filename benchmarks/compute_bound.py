"""What a float32 CPU computation can reach here: the FLOPs a call performs and this machine's matrix-product rate.

``counted_flops(fn)`` runs ``fn`` once under ``torch.utils.flop_counter.FlopCounterMode`` (convolutions, matrix
products, ...), with the CPU attention kernels, which that counter leaves out, counted as their matrix products
(forward: 4 * B * heads * N^2 * d; backward twice that). ``gemm_runs()`` gives square float32 ``torch.mm`` calls whose
best time, through ``gemm_gflops``, is the machine's practical float32 peak; time them in the same rounds as the
work they bound. No float32 run of the same arithmetic can take less than its FLOPs divided by that peak.
"""
import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

__all__ = ["GEMM_SIDES", "counted_flops", "gemm_runs", "gemm_gflops"]

GEMM_SIDES = (2048, 4096)  # square float32 matrix products timed for the machine's rate; the best counts


def _attention_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs):
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _attention_backward_flops(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs):
    return sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


def counted_flops(fn) -> int:
    """FLOPs of one call of ``fn()`` (forward, and backward if it runs one)."""
    mapping = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _attention_flops,
               torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _attention_backward_flops}
    with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        fn()
    return counter.get_total_flops()


def gemm_runs(seed: int = 0) -> list:
    """One zero-argument ``torch.mm`` call per side of ``GEMM_SIDES`` (random float32 operands)."""
    gen = torch.Generator().manual_seed(seed)
    operands = [(torch.randn(side, side, generator=gen), torch.randn(side, side, generator=gen)) for side in GEMM_SIDES]
    return [lambda a=a, b=b: torch.mm(a, b) for a, b in operands]


def gemm_gflops(seconds: list) -> float:
    """The machine's float32 rate (GFLOPS): the best of the ``gemm_runs`` calls, given their best times (s)."""
    return max(2 * side ** 3 / secs / 1e9 for side, secs in zip(GEMM_SIDES, seconds))
