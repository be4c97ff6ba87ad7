"""Networks and the model registry. ``build_model(cfg)`` builds the model named by ``cfg.model.name``.

The model modules are imported here explicitly so that their ``@register_model`` builders are registered.
"""
from models import classifier, hflnet, mean_pose, two_in_one, unihope  # noqa: F401  (registration side effect)
from models import simplehand, simplehand_loss  # noqa: F401  (SimpleHand model and loss registration)
from models import baseline_losses, handoccnet, semihand  # noqa: F401  (HandOccNet / Semi-Hand models and losses)
from models import h2onet, mobrecon  # noqa: F401  (MobRecon / H2ONet models)
from models.registry import MODELS, get_model_builder

__all__ = ["build_model", "MODELS"]


def build_model(cfg):
    """Build the model registered as ``cfg.model.name``; an unknown name raises KeyError listing the known."""
    return get_model_builder(cfg.model.name)(cfg)
