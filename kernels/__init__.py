"""Hot-path ops with one contract and several implementations (see dispatch.py)."""
from .dispatch import (
    BACKENDS,
    BackendUnavailableError,
    available_backends,
    get_backend,
    set_backend,
    use_backend,
)
from .ops import cooccurrence, embedding_gather, ppmi, scatter_add

__all__ = [
    "BACKENDS",
    "BackendUnavailableError",
    "available_backends",
    "cooccurrence",
    "embedding_gather",
    "ppmi",
    "get_backend",
    "scatter_add",
    "set_backend",
    "use_backend",
]
