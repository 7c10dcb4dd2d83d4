"""Models built from the layers, one module per family."""
from .rnnlm import BetterRnnlm, Rnnlm, SimpleRnnlm
from .simple import TwoLayerNet
from .word2vec import Word2Vec

__all__ = ["BetterRnnlm", "Rnnlm", "SimpleRnnlm", "TwoLayerNet", "Word2Vec"]

from .word2vec_book import CBOW, SimpleCBOW, SimpleSkipGram, SkipGram  # noqa: E402

__all__ += ["CBOW", "SimpleCBOW", "SimpleSkipGram", "SkipGram"]

from .seq2seq import (  # noqa: E402
    AttentionDecoder,
    AttentionEncoder,
    AttentionSeq2seq,
    Decoder,
    Encoder,
    PeekyDecoder,
    PeekySeq2seq,
    Seq2seq,
    eval_seq2seq,
    seq2seq_accuracy,
)
from .transformer import Transformer  # noqa: E402

__all__ += ["AttentionDecoder", "AttentionEncoder", "AttentionSeq2seq", "Decoder", "Encoder", "PeekyDecoder",
            "PeekySeq2seq", "Seq2seq", "Transformer", "eval_seq2seq", "seq2seq_accuracy"]

from .fasttext import FastText, FastTextVectors, fasttext_hash  # noqa: E402

__all__ += ["FastText", "FastTextVectors", "fasttext_hash"]
