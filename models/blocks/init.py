"""Weight initialisation of the official heads (docs/official-model.md §1.16)."""
from torch import nn

__all__ = ["init_head_weights"]


def init_head_weights(module):
    """Re-initialise every sub-module of ``module`` by exact type (official ``init_weights``).

    Conv2d / ConvTranspose2d: weight ~ N(0, 0.001), bias 0; BatchNorm2d: weight 1, bias 0;
    Linear: weight ~ N(0, 0.01), bias 0. Other types (Conv1d, BatchNorm1d, LayerNorm, Parameters such as
    ``betas``) keep their values.
    """
    for sub in module.modules():
        kind = type(sub)
        if kind in (nn.Conv2d, nn.ConvTranspose2d):
            nn.init.normal_(sub.weight, std=0.001)
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)
        elif kind is nn.BatchNorm2d:
            nn.init.ones_(sub.weight)
            nn.init.zeros_(sub.bias)
        elif kind is nn.Linear:
            nn.init.normal_(sub.weight, std=0.01)
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)
