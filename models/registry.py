"""Model registry: official ``cfg.model.name`` -> builder ``build(cfg) -> nn.Module``.

Builders register themselves with ``@register_model(name)`` in their model module; ``models/__init__.py``
imports those modules explicitly so the registry is complete once ``models`` is imported.
"""
from utils.errors import ConfigKeyError
from utils.registry import registering

__all__ = ["MODELS", "register_model", "get_model_builder"]

MODELS = {}


def register_model(name):
    """Decorator registering ``builder(cfg) -> nn.Module`` under ``name``; a duplicate name is an error."""
    return registering(MODELS, "model", name)


def get_model_builder(name):
    """The builder registered as ``name``; a miss raises KeyError listing the known names."""
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigKeyError(f"unknown model '{name}' (cfg.model.name); known models: {sorted(MODELS)}") from None
