"""The training loop on a toy problem: exact resume, non-finite loss handling, files and model selection."""
import json
import logging

import numpy as np
import pytest
import torch
from accelerate.utils import DataLoaderConfiguration
from torch import nn

from utils.checkpoint import load_checkpoint
from utils.config import config_from_dict
from utils.runtime import make_accelerator
from engine.fit import RunCheckpoints, fit, make_trainer
from engine.trainer import NonFiniteLossError, SeededSamples

LOGGER = logging.getLogger("test")


class NoisyRegression(torch.utils.data.Dataset):
    """y = 2x + 1 with per-sample augmentation noise drawn from numpy's global RNG (like image augmentation)."""

    def __init__(self, n=24, poison_index=None):
        self.x = torch.linspace(-1, 1, n)[:, None]
        self.poison_index = poison_index

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        noise = np.float32(np.random.normal(0, 0.05))
        y = 2 * self.x[i] + 1 + noise
        if i == self.poison_index:
            y = y * float("nan")
        return {"x": self.x[i], "y": y, "sample_key": f"toy_{i}"}


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Dropout(0.2), nn.Linear(8, 1))

    def forward(self, batch):
        return {"pred": self.body(batch["x"])}


def mse(batch, outputs):
    loss = ((outputs["pred"] - batch["y"]) ** 2).mean()
    return {"mse": loss, "total": loss}


def _cfg(model_dir, epochs=2):
    return config_from_dict({
        "base": {"model_dir": str(model_dir), "seed": 3},
        "train": {"num_epochs": epochs, "batch_size": 4},
        "optimizer": {"name": "adam", "lr": 0.05},
        "scheduler": {"name": "step", "milestones": [1], "gamma": 0.5},
        "summary": {"save_latest_freq": 1, "save_mid_freq": 1, "save_best_after": 0}})


def _run(model_dir, resume=None, stop_after_steps=None, dataset=None, val=True):
    cfg = _cfg(model_dir)
    torch.manual_seed(0)
    accelerator = make_accelerator(split_batches=True,
                                   dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=7))
    model = TinyNet()
    loader = torch.utils.data.DataLoader(SeededSamples(dataset or NoisyRegression(), seed=5), batch_size=4,
                                         shuffle=True, drop_last=True)
    trainer, state = make_trainer(cfg, accelerator, model, mse, loader, resume=resume)
    val_loader = accelerator.prepare(torch.utils.data.DataLoader(NoisyRegression(10), batch_size=4))
    checkpoints = RunCheckpoints(model_dir, accelerator, cfg.summary)
    state = fit(trainer, state, cfg.train.num_epochs, {"val": val_loader} if val else {}, checkpoints, LOGGER,
                stop_after_steps=stop_after_steps)
    return accelerator.unwrap_model(trainer.model), state


def test_killed_and_resumed_run_matches_uninterrupted_run(tmp_path):
    reference, ref_state = _run(tmp_path / "straight")
    for stop in (3, 6, 8):  # mid-epoch, exactly at the epoch end, and inside the second epoch
        folder = tmp_path / f"stop{stop}"
        _, partial = _run(folder, stop_after_steps=stop)
        assert partial.step == stop
        resumed, state = _run(folder, resume=folder / "model_latest.pth")
        assert state.step == ref_state.step == 12 and state.epoch == 2
        for (name, a), b in zip(reference.state_dict().items(), resumed.state_dict().values()):
            assert torch.allclose(a, b, atol=1e-6), (stop, name)


def test_run_writes_official_files_and_selects_by_score(tmp_path):
    _run(tmp_path)
    names = {p.name for p in tmp_path.iterdir()}
    assert {"model_latest.pth", "model_1.pth", "model_2.pth", "val_metric_latest.json"} <= names
    latest = load_checkpoint(tmp_path / "model_latest.pth")
    assert latest["epoch"] == 2 and latest["step"] == 12
    assert latest["scheduler"]["last_epoch"] == 2
    assert latest["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.025)  # milestone 1, gamma 0.5
    # The toy outputs have no hand meshes: there is no score, so no epoch may count as best (official bug).
    assert "val_model_best.pth" not in names
    assert json.loads((tmp_path / "val_metric_latest.json").read_text())["epoch"] == 2


def test_non_finite_loss_names_step_terms_and_samples_and_keeps_last_checkpoint(tmp_path):
    _run(tmp_path, stop_after_steps=2)
    before = (tmp_path / "model_latest.pth").read_bytes()
    with pytest.raises(NonFiniteLossError) as err:
        _run(tmp_path, resume=tmp_path / "model_latest.pth", dataset=NoisyRegression(poison_index=5))
    message = str(err.value)
    assert "non-finite loss at step" in message and "mse=nan" in message and "toy_5" in message.split("ids:")[1]
    assert (tmp_path / "model_latest.pth").read_bytes() == before
