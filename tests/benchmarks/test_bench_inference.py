"""benchmarks/bench_inference.py: the output comparison (its FLOP count: test_compute_bound.py)."""
import torch

from benchmarks.bench_inference import _largest_difference


def test_largest_difference_reports_the_worst_key_and_the_tolerance():
    reference = {"a": torch.tensor([1.0, 2.0]), "b": torch.tensor([0.5]), "n": torch.tensor([1, 0])}
    close = {"a": torch.tensor([1.0, 2.0 + 1e-6]), "b": torch.tensor([0.5 + 3e-6]), "n": torch.tensor([1, 0])}
    assert _largest_difference(reference, close)[1:] == ("b", True)
    assert not _largest_difference(reference, dict(close, a=torch.tensor([1.0, 2.01])))[2]
    assert not _largest_difference(reference, dict(close, n=torch.tensor([0, 0])))[2]
