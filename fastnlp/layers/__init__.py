"""The book's layers: ``params`` and ``grads`` lists, ``forward`` and ``backward``.

Gradients are written in place (``grads[0][...] = dW``) so optimizers holding references stay
valid. Layers never look at the kernel backend: the ops they call do (fastnlp.kernels).
Inputs may be NumPy or CuPy arrays; parameters set the dtype (float32 by default). Bad input raises
(see base.py): TypeError, ValueError, NonFiniteError for NaN/inf, RuntimeError for backward
before forward.
"""
from .base import Layer, NonFiniteError
from .core import Affine, Dropout, MatMul, ReLU, Sigmoid, Softmax
from .embedding import Embedding
from .losses import SigmoidWithLoss, SoftmaxWithLoss

__all__ = ["Affine", "Dropout", "Embedding", "Layer", "MatMul", "NonFiniteError", "ReLU", "Sigmoid",
           "SigmoidWithLoss", "Softmax", "SoftmaxWithLoss"]

from .recurrent import (GRU, LSTM, RNN, TimeAffine, TimeBiLSTM, TimeDropout, TimeEmbedding,  # noqa: E402
                        TimeGRU, TimeLSTM, TimeRNN, TimeSoftmaxWithLoss)

__all__ += ["GRU", "LSTM", "RNN", "TimeAffine", "TimeBiLSTM", "TimeDropout", "TimeEmbedding", "TimeGRU",
            "TimeLSTM", "TimeRNN", "TimeSoftmaxWithLoss"]

from .embedding import RowSparseGrad  # noqa: E402
from .sampling import EmbeddingDot, NegativeSamplingLoss, UnigramSampler  # noqa: E402

__all__ += ["EmbeddingDot", "NegativeSamplingLoss", "RowSparseGrad", "UnigramSampler"]

from .attention import Attention, AttentionWeight, TimeAttention, WeightSum  # noqa: E402
from .transformer import (  # noqa: E402
    LayerNorm,
    MultiHeadAttention,
    PositionalEncoding,
    PositionwiseFeedForward,
    ScaledDotProductAttention,
    TransformerDecoderBlock,
    TransformerEncoderBlock,
    causal_mask,
    padding_mask,
    positional_encoding,
)

__all__ += ["Attention", "AttentionWeight", "TimeAttention", "WeightSum"]
__all__ += ["LayerNorm", "MultiHeadAttention", "PositionalEncoding", "PositionwiseFeedForward",
            "ScaledDotProductAttention", "TransformerDecoderBlock", "TransformerEncoderBlock", "causal_mask",
            "padding_mask", "positional_encoding"]
