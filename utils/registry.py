"""The one way builders are registered by name (models, losses, datasets): a duplicate name is an error."""
from typing import Callable

__all__ = ["registering"]


def registering(table: dict, kind: str, name: str) -> Callable:
    """Decorator putting ``builder`` into ``table`` under ``name``; a name already there raises KeyError naming the
    module that registered it (``kind`` says what is registered, e.g. "model")."""
    def decorate(builder: Callable) -> Callable:
        if name in table:
            raise KeyError(f"{kind} '{name}' is already registered (by {table[name].__module__})")
        table[name] = builder
        return builder
    return decorate
