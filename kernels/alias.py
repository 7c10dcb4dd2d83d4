"""Walker's alias table, built by Vose's method: the one construction the samplers share
(negative sampling in ``sgns/`` and the fused trainer in ``word2vec/``).

Drawing from the table costs one random number and two look-ups, whatever the vocabulary size:
column ``c`` keeps its own word when the draw's low 32 bits are below ``alias_prob[c]`` (a
threshold out of 2**32) and gives ``alias_index[c]`` otherwise.
"""
import numpy as np

ALWAYS = 1 << 32  # an alias_prob of 2**32: the column always keeps its own word


def vose_alias(weights):
    """``(alias_prob int64, alias_index int64)`` of the distribution proportional to ``weights``
    (1-D float64, finite, >= 0, with a positive sum: the callers check that)."""
    n = weights.shape[0]
    scaled = weights * (n / weights.sum())
    prob = np.ones(n, dtype=np.float64)
    alias = np.arange(n, dtype=np.int64)
    small = np.flatnonzero(scaled < 1.0).tolist()
    large = np.flatnonzero(scaled >= 1.0).tolist()
    while small and large:  # each short column is topped up by one long one
        s, g = small.pop(), large.pop()
        prob[s], alias[s] = scaled[s], g
        scaled[g] = (scaled[g] + scaled[s]) - 1.0
        (small if scaled[g] < 1.0 else large).append(g)
    # Columns left over are 1 up to rounding: they keep their own word.
    return np.minimum(np.floor(prob * ALWAYS), ALWAYS).astype(np.int64), alias
