"""Data sets: the book's spiral, PTB, and helpers to locate data files."""
from .ptb import load_ptb, load_ptb_vocabulary
from .spiral import load_spiral

__all__ = ["load_ptb", "load_ptb_vocabulary", "load_spiral"]
