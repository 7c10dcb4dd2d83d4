"""Data sets: the book's spiral, PTB, and helpers to locate data files."""
from .spiral import load_spiral

__all__ = ["load_spiral"]
