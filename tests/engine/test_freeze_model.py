"""``train.freeze_model`` as officially: after a resume that lacked some parameters, the loaded ones stop training."""
import logging

import torch
from torch import nn

from engine.fit import make_trainer
from engine.trainer import TrainState
from utils.checkpoint import save_checkpoint
from utils.config import config_from_dict
from utils.runtime import make_accelerator


class TwoLayers(nn.Module):
    def __init__(self, width=4):
        super().__init__()
        self.trunk = nn.Linear(1, width)
        self.head = nn.Linear(width, 1)

    def forward(self, batch):
        return {"pred": self.head(torch.tanh(self.trunk(batch["x"])))}


def mse(batch, outputs):
    loss = ((outputs["pred"] - 3 * batch["x"]) ** 2).mean()
    return {"mse": loss, "total": loss}


def _loader():
    x = torch.linspace(-1, 1, 8)[:, None]
    return torch.utils.data.DataLoader([{"x": v} for v in x], batch_size=4)


def _trainer(tmp_path, state_dict, only_weights, freeze=True):
    cfg = config_from_dict({"base": {"model_dir": str(tmp_path)}, "train": {"freeze_model": freeze},
                            "optimizer": {"name": "adam", "lr": 0.1}, "scheduler": {"milestones": [5]}},
                           source="exp/cfg.json")
    save_checkpoint(tmp_path / "old.pth", state_dict, epoch=3)
    torch.manual_seed(1)
    model = TwoLayers()
    trainer, _ = make_trainer(cfg, make_accelerator(), model, mse, _loader(), resume=str(tmp_path / "old.pth"),
                              only_weights=only_weights)
    return trainer, model


def test_loaded_parameters_stay_fixed_and_new_ones_train(tmp_path, caplog):
    torch.manual_seed(0)
    old = TwoLayers()
    trunk_only = {k: v for k, v in old.state_dict().items() if k.startswith("trunk.")}  # the head is new
    with caplog.at_level(logging.WARNING):
        trainer, model = _trainer(tmp_path, trunk_only, only_weights=True)
    assert "exp/cfg.json: train.freeze_model froze 2 loaded parameters" in caplog.text
    head_before = model.head.weight.detach().clone()
    trainer.train_one_epoch(TrainState())
    assert torch.equal(model.trunk.weight, old.trunk.weight) and torch.equal(model.trunk.bias, old.trunk.bias)
    assert not model.trunk.weight.requires_grad and model.head.weight.requires_grad
    assert not torch.equal(model.head.weight, head_before)


def test_nothing_is_frozen_when_the_checkpoint_has_every_parameter(tmp_path, caplog):
    torch.manual_seed(0)
    with caplog.at_level(logging.WARNING):
        trainer, model = _trainer(tmp_path, TwoLayers().state_dict(), only_weights=True)
    assert all(p.requires_grad for p in model.parameters())
    assert "train.freeze_model has no effect" in caplog.text
    trunk_before = model.trunk.weight.detach().clone()
    trainer.train_one_epoch(TrainState())
    assert not torch.equal(model.trunk.weight, trunk_before)
