"""Training options for GPUs (train.channels_last, train.tf32, train.compile, fused Adam, loader settings), each
parsed and applied; checked on the CPU, with the CUDA-only choices driven by the device they are given."""
import logging
from pathlib import Path

import pytest
import torch
from torch import nn

from datasets.registry import build_loader
from engine.fit import RunCheckpoints, fit, make_trainer, restore
from engine.trainer import build_optimizer, channels_last_images
from utils.checkpoint import save_checkpoint
from utils.config import ConfigError, config_from_dict, load_config
from utils.runtime import allow_tf32_matmul, make_accelerator, resolve_mixed_precision, training_device_name

ROOT = Path(__file__).resolve().parents[2]
GPU_OPTIONS = {"mixed_precision": "no", "channels_last": False, "tf32": False, "compile": False}


class TinyConvNet(nn.Module):
    """Conv trunk + linear head; records whether each image batch arrived in channels-last memory format."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Linear(4, 1)
        self.seen_channels_last = []

    def forward(self, batch):
        self.seen_channels_last.append(batch["img"].is_contiguous(memory_format=torch.channels_last))
        return {"pred": self.head(self.conv(batch["img"]).mean(dim=(2, 3)))}


def mse(batch, outputs):
    loss = ((outputs["pred"] - batch["y"]) ** 2).mean()
    return {"mse": loss, "total": loss}


def _cfg(model_dir, **train):
    return config_from_dict({"base": {"model_dir": str(model_dir)},
                             "train": {"num_epochs": 1, "batch_size": 2, **train},
                             "optimizer": {"name": "adam", "lr": 1e-2},
                             "summary": {"save_latest_freq": 1, "save_mid_freq": 0}})


def _one_step(tmp_path, **train):
    """make_trainer + one optimizer step of TinyConvNet; returns (trainer, the unwrapped model)."""
    cfg = _cfg(tmp_path, **train)
    data = [{"img": torch.rand(3, 8, 8), "y": torch.rand(1)} for _ in range(4)]
    torch.manual_seed(0)
    trainer, state = make_trainer(cfg, make_accelerator(), TinyConvNet(), mse,
                                  torch.utils.data.DataLoader(data, batch_size=2))
    fit(trainer, state, 1, {}, RunCheckpoints(tmp_path, trainer.accelerator, cfg.summary), logging.getLogger("test"),
        stop_after_steps=1)
    return trainer, trainer.accelerator.unwrap_model(trainer.model)


@pytest.mark.parametrize("folder", sorted(p.parent.name for p in (ROOT / "experiment").glob("*/cfg.json")))
def test_official_folders_keep_official_precision(folder):
    """No experiment folder opts into an option that changes the arithmetic (bf16, TF32) or the program."""
    train = load_config(ROOT / "experiment" / folder).train
    assert {key: getattr(train, key) for key in GPU_OPTIONS} == GPU_OPTIONS


def test_channels_last_puts_conv_weights_and_images_in_nhwc(tmp_path):
    trainer, model = _one_step(tmp_path, channels_last=True)
    assert model.conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not model.conv.weight.is_contiguous()  # really NHWC, not a size-1 special case
    assert model.seen_channels_last == [True] and trainer.channels_last
    _, plain = _one_step(tmp_path / "plain")
    assert plain.conv.weight.is_contiguous() and plain.seen_channels_last == [False]


def test_channels_last_images_changes_strides_only():
    batch = {"img": torch.rand(2, 6, 5, 4), "mask": torch.ones(2, 3, 4, 4, dtype=torch.uint8),
             "joints": torch.rand(2, 21, 2), "sample_id": [1, 2]}
    out = channels_last_images(batch)
    assert out["img"].is_contiguous(memory_format=torch.channels_last) and torch.equal(out["img"], batch["img"])
    assert batch["img"].is_contiguous()  # the input batch is not modified
    assert out["mask"] is batch["mask"] and out["joints"] is batch["joints"] and out["sample_id"] == [1, 2]


@pytest.mark.parametrize("name, device, fused", [("adam", "cpu", True), ("adamw", "cpu", True),
                                                 ("adam", "cuda", True), ("adamw", "cuda:0", True),
                                                 ("adam", "mps", False), ("sgd", "cuda", None)])
def test_fused_adam_on_cpu_and_cuda(name, device, fused):
    optimizer_cfg = config_from_dict({"optimizer": {"name": name, "lr": 0.1}}).optimizer
    optimizer = build_optimizer(nn.Linear(2, 2).parameters(), optimizer_cfg, device)
    assert optimizer.defaults.get("fused") is fused  # SGD is built without the argument


def test_resume_keeps_the_optimizer_built_for_this_device(tmp_path):
    """A checkpoint written with the default Adam (an MPS run, or any run before fused Adam) resumed on the CPU
    keeps the CPU's fused Adam, and the reverse."""
    model = nn.Linear(2, 2)
    optimizer_cfg = config_from_dict({"optimizer": {"name": "adam"}}).optimizer
    mps_optimizer = build_optimizer(model.parameters(), optimizer_cfg, "mps")
    model(torch.ones(1, 2)).sum().backward()
    mps_optimizer.step()
    save_checkpoint(tmp_path / "mps.pth", model.state_dict(), optimizer=mps_optimizer.state_dict(),
                    scheduler={}, step=1, epoch=0)
    cpu_optimizer = build_optimizer(model.parameters(), optimizer_cfg, "cpu")
    restore(tmp_path / "mps.pth", model, cpu_optimizer, None, only_weights=False)
    assert cpu_optimizer.param_groups[0]["fused"]
    assert int(cpu_optimizer.state[model.weight]["step"]) == 1  # the state itself was restored
    cpu_optimizer.step()
    save_checkpoint(tmp_path / "cpu.pth", model.state_dict(), optimizer=cpu_optimizer.state_dict(),
                    scheduler={}, step=2, epoch=0)
    restore(tmp_path / "cpu.pth", model, mps_optimizer, None, only_weights=False)
    assert not mps_optimizer.param_groups[0]["fused"]
    assert int(mps_optimizer.state[model.weight]["step"]) == 2


def test_compile_runs_a_step_and_keeps_state_dict_keys(tmp_path, monkeypatch):
    """train.compile compiles the model's forward in place. Inductor needs minutes to build kernels on a
    shared 2-core CPU, so the test compiles with dynamo's eager backend: the same wiring and graph capture."""
    compiled = []
    original = nn.Module.compile

    def compile_eagerly(module, **kwargs):
        compiled.append(type(module).__name__)
        original(module, backend="eager")

    monkeypatch.setattr(nn.Module, "compile", compile_eagerly)
    _, model = _one_step(tmp_path, compile=True)
    assert compiled == ["TinyConvNet"] and model._compiled_call_impl is not None
    latest = torch.load(tmp_path / "model_latest.pth", weights_only=True)
    assert latest["step"] == 1 and set(latest["state_dict"]) == {"conv.weight", "conv.bias", "head.weight",
                                                                   "head.bias"}


def test_tf32_switches_cuda_matmuls_only():
    cuda_before, cpu_before = torch.backends.cuda.matmul.fp32_precision, torch.backends.mkldnn.matmul.fp32_precision
    try:
        allow_tf32_matmul(False)
        assert torch.backends.cuda.matmul.fp32_precision == cuda_before != "tf32"
        allow_tf32_matmul(True)
        assert torch.backends.cuda.matmul.fp32_precision == "tf32"
        assert torch.backends.mkldnn.matmul.fp32_precision == cpu_before
    finally:
        torch.backends.cuda.matmul.fp32_precision = cuda_before


def test_mixed_precision_rejects_unknown_values(tmp_path):
    with pytest.raises(ValueError, match=r"train.mixed_precision must be one of .*got 'bf32'"):
        resolve_mixed_precision("bf32")
    with pytest.raises(ConfigError, match=r"<x>: key 'train.mixed_precision' must be one of \['no', 'bf16', 'fp16', "
                                          r"'auto'\], got 'bf32'"):
        config_from_dict({"train": {"mixed_precision": "bf32"}}, source="<x>")


@pytest.mark.parametrize("workers", [0, 2])
def test_loaders_pin_prefetch_and_keep_eval_workers(workers, tmp_path):
    cfg = config_from_dict({"data": {"prefetch_factor": 4}, "train": {"num_workers": workers, "batch_size": 2},
                            "test": {"num_workers": workers, "batch_size": 2}})
    data = list(range(6))
    train, test = build_loader(cfg, "train", data), build_loader(cfg, "test", data)
    for loader in (train, test):
        assert loader.pin_memory == torch.cuda.is_available()
        assert loader.prefetch_factor == (4 if workers else None)
    assert test.persistent_workers == (workers > 0)
    assert not train.persistent_workers  # train workers restart each epoch to see the dataset's new epoch


def test_device_name_says_which_device_trains(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "NVIDIA H200")
    assert training_device_name() == "GPU (NVIDIA H200)"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert training_device_name() == "Apple GPU (MPS)"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert training_device_name() == "CPU"
