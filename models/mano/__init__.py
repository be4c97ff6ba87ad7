"""MANO hand model: pure LBS maths (:mod:`.lbs`) and the manopth-compatible :class:`ManoLayer`."""
from models.mano.layer import ManoLayer

__all__ = ["ManoLayer"]
