"""utils.runtime: the bf16 choice reads the CPU's instruction flags; the accelerator uses CUDA or MPS when present."""
import pytest
import torch

from utils.runtime import fast_bf16_available


def test_bf16_follows_the_cpu_flags(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    info = tmp_path / "cpuinfo"
    info.write_text("processor : 0\nflags : fpu sse2 avx2 avx512f avx512bw\n")
    assert not fast_bf16_available(info)
    info.write_text("processor : 0\nflags : fpu sse2 avx512f avx512_bf16\n")
    assert fast_bf16_available(info)
    info.write_text("flags : fpu amx_bf16 amx_tile\n")
    assert fast_bf16_available(info)
    assert not fast_bf16_available(tmp_path / "missing")


def test_mixed_precision_choice(monkeypatch):
    import utils.runtime as runtime

    monkeypatch.setattr(runtime, "fast_bf16_available", lambda: True)
    assert runtime.resolve_mixed_precision("auto") == "bf16"
    assert runtime.resolve_mixed_precision("no") == "no"
    monkeypatch.setattr(runtime, "fast_bf16_available", lambda: False)
    assert runtime.resolve_mixed_precision("auto") == "no"
    assert runtime.resolve_mixed_precision("bf16") == "bf16"


@pytest.mark.parametrize("cuda, mps, cpu", [(True, False, False), (False, True, False), (False, False, True)])
def test_accelerator_uses_cuda_or_mps_when_present(monkeypatch, cuda, mps, cpu):
    import accelerate

    from utils.runtime import make_accelerator

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    monkeypatch.setattr(accelerate, "Accelerator", lambda **kwargs: kwargs)  # the arguments it would get
    chosen = make_accelerator(split_batches=True)
    assert chosen["cpu"] is cpu and chosen["split_batches"] and chosen["dataloader_config"].non_blocking
    assert make_accelerator(cpu=True)["cpu"] is True  # an explicit choice wins
