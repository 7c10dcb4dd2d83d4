"""The vectorised NumPy/SciPy co-occurrence count that the compiled kernels must beat:
pair codes row * V + col for every distance, ``np.bincount`` over them, non-zeros to CSR."""
import numpy as np
from scipy import sparse


def vectorised_cooccurrence(corpus, vocab_size, window):
    ids = np.asarray(corpus, dtype=np.int64)
    codes = []
    for d in range(1, window + 1):
        codes += [ids[:-d] * vocab_size + ids[d:], ids[d:] * vocab_size + ids[:-d]]
    counts = np.bincount(np.concatenate(codes), minlength=vocab_size * vocab_size)
    nonzero = np.flatnonzero(counts)
    rows, cols = np.divmod(nonzero, vocab_size)
    return sparse.csr_matrix((counts[nonzero].astype(np.float32), (rows, cols)),
                             shape=(vocab_size, vocab_size))
