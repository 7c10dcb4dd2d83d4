"""Word vectors: ``WordVectors`` (queries, evaluation, file formats) and the book's helpers."""
from .book import analogy, cos_similarity, most_similar
from .keyed import WordVectors

__all__ = ["WordVectors", "analogy", "cos_similarity", "most_similar"]
