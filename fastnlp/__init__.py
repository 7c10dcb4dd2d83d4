"""fastnlp: the systems of 'Deep Learning from Scratch 2', with compiled kernels on hot paths.

The layer API lives here; the hot-path ops and their backends live in ``fastnlp.kernels``.
"""
from . import datasets, functions, gradcheck, kernels, layers, optim
from .kernels.dispatch import available_backends, get_backend, set_backend, use_backend
from .models import TwoLayerNet
from .serialization import load_params, save_params
from .text import Vocabulary, preprocess
from .trainer import Trainer

__version__ = "0.1.0"

__all__ = [
    "Trainer",
    "TwoLayerNet",
    "Vocabulary",
    "available_backends",
    "datasets",
    "functions",
    "get_backend",
    "gradcheck",
    "kernels",
    "layers",
    "load_params",
    "optim",
    "preprocess",
    "save_params",
    "set_backend",
    "use_backend",
]
