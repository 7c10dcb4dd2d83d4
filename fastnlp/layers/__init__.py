"""The book's layers: ``params`` and ``grads`` lists, ``forward`` and ``backward``.

Gradients are written in place (``grads[0][...] = dW``) so optimizers holding references stay
valid. Layers never look at the kernel backend: the ops they call do (fastnlp.kernels).
Inputs may be NumPy or CuPy arrays; parameters set the dtype (float32 by default).
"""
from .base import Layer
from .core import Affine, Dropout, MatMul, ReLU, Sigmoid, Softmax
from .embedding import Embedding
from .losses import SigmoidWithLoss, SoftmaxWithLoss

__all__ = ["Affine", "Dropout", "Embedding", "Layer", "MatMul", "ReLU", "Sigmoid", "SigmoidWithLoss", "Softmax",
           "SoftmaxWithLoss"]
