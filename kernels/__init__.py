"""Hot-path ops with one contract and several implementations, one folder per op family.

``registry`` knows every op and which backend implements it; ``dispatch`` holds the user's
choice of backend; ``calibration`` measures, once per machine, which backend runs each op when
nothing was chosen; ``harness`` checks any implementation against the NumPy reference and times
it, for tests and benchmarks alike. ``validate`` (with the id-range op of ``ids/``) guards every
unchecked loop. The C pieces every family shares (splitmix64, the lane dot product, the
instruction-set dispatch) are in ``include/fastnlp/``, the Numba ones in ``_numba_common.py``.
"""
from . import dispatch, registry
from .attention import (
    attention_context,
    attention_context_backward,
    attention_weights,
    attention_weights_backward,
    weighted_sum,
    weighted_sum_backward,
)
from .cooccurrence import cooccurrence, ppmi
from .dropout import dropout_forward
from .dispatch import (
    BACKENDS,
    BackendUnavailableError,
    available_backends,
    get_backend,
    set_backend,
    use_backend,
)
from .embedding import embedding_gather, scatter_add
from .gemm import gemm
from .lstm import lstm_step_backward, lstm_step_forward
from .rounding import round_to_format
from .sgns import gather_dot, gather_dot_backward, sample_negatives
from .sgd import sgd_update
from .softmax import exp_row_sums
from .topk import topk  # noqa: F401  per-row k best scores (WordVectors.most_similar)
from . import word2vec  # noqa: E402, F401  registers the fused trainer's ops (fastnlp.Word2Vec runs them)
from . import fasttext  # noqa: E402, F401  registers the fastText trainer's ops (fastnlp.FastText runs them)
from . import ivf  # noqa: E402, F401  registers ivf_scan (WordVectors.build_index("ivf") scans with it)

__all__ = [
    "BACKENDS",
    "BackendUnavailableError",
    "attention_context",
    "attention_context_backward",
    "attention_weights",
    "attention_weights_backward",
    "available_backends",
    "cooccurrence",
    "dispatch",
    "dropout_forward",
    "embedding_gather",
    "exp_row_sums",
    "gather_dot",
    "gather_dot_backward",
    "gemm",
    "get_backend",
    "lstm_step_backward",
    "lstm_step_forward",
    "ppmi",
    "registry",
    "round_to_format",
    "sample_negatives",
    "scatter_add",
    "set_backend",
    "sgd_update",
    "use_backend",
    "weighted_sum",
    "weighted_sum_backward",
]
