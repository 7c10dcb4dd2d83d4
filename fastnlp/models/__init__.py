"""Models built from the layers, one module per family."""
from .simple import TwoLayerNet

__all__ = ["TwoLayerNet"]
