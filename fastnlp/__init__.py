"""fastnlp: the systems of 'Deep Learning from Scratch 2', with compiled kernels on hot paths.

The layer API lives here; the hot-path ops and their backends live in ``fastnlp.kernels``.
"""
from . import datasets, functions, gradcheck, kernels, layers, optim
from .kernels.dispatch import available_backends, get_backend, set_backend, use_backend
from .models import TwoLayerNet
from .count import count_vectors, create_co_matrix, ppmi_dense
from .serialization import load_params, save_params
from .svd import truncated_svd
from .text import Vocabulary, preprocess
from .trainer import Trainer
from .wordvectors import WordVectors, analogy, cos_similarity, most_similar

__version__ = "0.1.0"

__all__ = [
    "Trainer",
    "WordVectors",
    "analogy",
    "cos_similarity",
    "count_vectors",
    "create_co_matrix",
    "most_similar",
    "ppmi_dense",
    "truncated_svd",
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
