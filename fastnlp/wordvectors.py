"""Kept so ``fastnlp.wordvectors`` imports keep working; the code lives in ``fastnlp.vectors``."""
from .vectors import WordVectors, analogy, cos_similarity, most_similar

__all__ = ["WordVectors", "analogy", "cos_similarity", "most_similar"]
