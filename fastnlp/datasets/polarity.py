"""The sentence polarity data set v1.0 ("MR", Pang and Lee 2005): 10,662 movie-review snippets.

Two files, ``sentiment/rt-polarity.pos`` and ``sentiment/rt-polarity.neg``, 5,331 snippets each,
one a line. The copy the project uses (see ``fastnlp.datasets._files.KNOWN_FILES``) is UTF-8: both
files decode strictly as UTF-8 (a few dozen accented letters and typographic dashes, no BOM, no
carriage returns), so they are read with ``encoding="utf-8"`` and a bad byte raises.

Tokenisation is the book's ``preprocess`` applied to each line: lower-case, ``.`` split off words,
split on whitespace (``line.lower().replace(".", " .").split()``). The files are already lower-cased
and tokenised (punctuation stands alone, clitics stay attached: ``it's``, ``doesn't``), so in
practice this changes only 4 upper-case letters (``É`` and three others) and splits nothing: no
token of the files carries an attached ``.``. Lines that would give no token are dropped (the
shared copy has none).

There is no official train/test split; results are reported as 10-fold cross-validation accuracy.
"""
from __future__ import annotations

import numpy as np

from ._files import find_or_fetch

POLARITY_FILES = {1: "sentiment/rt-polarity.pos", 0: "sentiment/rt-polarity.neg"}
N_PER_CLASS = 5331


def tokenize(text: str) -> list[str]:
    """The book's ``preprocess`` tokenisation of one text: lower-case, split ``.`` off, split on
    whitespace."""
    if not isinstance(text, str):
        raise TypeError(f"tokenize expects a str, got {type(text).__name__}")
    return text.lower().replace(".", " .").split()


def load_polarity(data_dir=None, verify: bool = True):
    """``(texts, labels)``: the 10,662 snippets of the sentence polarity data set.

    ``texts`` is a list of token lists (see the module docstring for the tokenisation), all 5,331
    positive snippets first, then the 5,331 negative ones, each in file order; ``labels`` is an
    int64 array, 1 for positive and 0 for negative. Shuffle (or use a stratified split) before
    cutting it.

    The files are looked for in ``data_dir``, then ``$FASTNLP_DATA``, then the user cache, and
    downloaded from their public home when missing (checked against their sha256 before they are
    written); see ``fastnlp.datasets._files.find_or_fetch``. ``verify=True`` (the default) also checks
    local copies against the recorded sha256 (``ChecksumError`` for a corrupt or altered copy);
    ``verify=False`` reads a deliberately changed copy.
    """
    texts: list[list[str]] = []
    labels: list[int] = []
    for label in (1, 0):
        path = find_or_fetch(POLARITY_FILES[label], data_dir, verify=verify)
        with open(path, encoding="utf-8", errors="strict", newline="") as f:
            for line in f:
                tokens = tokenize(line)
                if tokens:
                    texts.append(tokens)
                    labels.append(label)
    return texts, np.asarray(labels, dtype=np.int64)
