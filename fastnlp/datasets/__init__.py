"""Data sets: the book's spiral, PTB, and helpers to locate and download data files."""
from ._files import FILE_GROUPS, download
from .ptb import load_ptb, load_ptb_vocabulary
from .sequence import (
    build_char_vocabulary,
    decode_ids,
    encode_questions,
    encode_sequences,
    generate_additions,
    generate_dates,
    load_sequence,
    reverse_questions,
)
from .spiral import load_spiral

__all__ = ["FILE_GROUPS", "download", "load_ptb", "load_ptb_vocabulary", "load_spiral"]
__all__ += ["build_char_vocabulary", "decode_ids", "encode_questions", "encode_sequences", "generate_additions",
            "generate_dates", "load_sequence", "reverse_questions"]

from .polarity import load_polarity  # noqa: E402

__all__ += ["load_polarity"]
