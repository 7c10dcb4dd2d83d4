"""Models built from the layers, one module per family."""
from .simple import TwoLayerNet
from .word2vec import Word2Vec

__all__ = ["TwoLayerNet", "Word2Vec"]

from .word2vec_book import CBOW, SimpleCBOW, SimpleSkipGram, SkipGram  # noqa: E402

__all__ += ["CBOW", "SimpleCBOW", "SimpleSkipGram", "SkipGram"]
