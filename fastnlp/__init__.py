"""fastnlp: the systems of 'Deep Learning from Scratch 2', with compiled kernels on hot paths.

The layer API lives here; the hot-path ops and their backends live in ``fastnlp.kernels``.
"""


def _attach_source_tree_kernels() -> None:
    """Make ``fastnlp.kernels`` importable when this package is imported from a source checkout.

    Installed, the top-level ``kernels/`` folder becomes the subpackage ``fastnlp.kernels``
    (setuptools ``package-dir``). Python started in the repository root finds the local
    ``fastnlp/`` folder first, which has no ``kernels`` inside; then the sibling ``kernels/`` folder
    is attached here under its installed name (sub-packages of it import as usual). Compiled
    extensions a checkout lacks make their backend report itself unavailable.
    """
    import importlib.util
    import os
    import sys

    name = __name__ + ".kernels"
    if name in sys.modules:
        return
    try:
        if importlib.util.find_spec(name) is not None:  # installed, or an editable install
            return
    except (ImportError, ValueError):
        pass
    here = os.path.dirname(os.path.abspath(__file__))
    folder = os.path.join(os.path.dirname(here), "kernels")
    init = os.path.join(folder, "__init__.py")
    if not os.path.isfile(init):
        raise ImportError(
            f"fastnlp.kernels is missing: the fastnlp package at {here} is neither a complete "
            f"installation nor a source checkout (no {init}). Reinstall it with pip "
            f"('pip install fastnlp', or 'pip install .' in a checkout), or, if you ran Python from "
            f"inside a copy of the fastnlp sources, run it from another folder.", name=name)
    spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[folder])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    globals()["kernels"] = module


_attach_source_tree_kernels()
del _attach_source_tree_kernels

from . import datasets, functions, kernels, layers, optim  # noqa: E402
# fastnlp.gradcheck(layer, *inputs) checks a layer; the module keeps its other helpers
# (from fastnlp.gradcheck import numerical_gradient).
from .gradcheck import check_layer as gradcheck  # noqa: E402
from .kernels.dispatch import available_backends, get_backend, set_backend, use_backend
from .models import TwoLayerNet, Word2Vec
from .count import count_vectors, create_co_matrix, ppmi_dense
from .serialization import load, load_params, save, save_params
from .svd import truncated_svd
from .text import Vocabulary, preprocess
from .trainer import Trainer
from .models import AttentionSeq2seq, PeekySeq2seq, Seq2seq, Transformer, eval_seq2seq, seq2seq_accuracy
from .plot import plot_attention
from .lm import RnnlmTrainer, eval_perplexity, generate_text
from .wordvectors import WordVectors, analogy, cos_similarity, most_similar
from .contexts import convert_one_hot, create_contexts_target
from .layers import UnigramSampler
from .classify import TextClassifier, doc_vectors, fit_idf, fit_sif  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "Trainer",
    "AttentionSeq2seq",
    "PeekySeq2seq",
    "Seq2seq",
    "Transformer",
    "eval_seq2seq",
    "plot_attention",
    "seq2seq_accuracy",
    "UnigramSampler",
    "convert_one_hot",
    "create_contexts_target",
    "RnnlmTrainer",
    "eval_perplexity",
    "generate_text",
    "WordVectors",
    "analogy",
    "cos_similarity",
    "count_vectors",
    "create_co_matrix",
    "most_similar",
    "ppmi_dense",
    "truncated_svd",
    "TwoLayerNet",
    "Word2Vec",
    "Vocabulary",
    "available_backends",
    "datasets",
    "functions",
    "get_backend",
    "gradcheck",
    "kernels",
    "layers",
    "load",
    "load_params",
    "optim",
    "preprocess",
    "save",
    "save_params",
    "set_backend",
    "use_backend",
]

__all__ += ["TextClassifier", "doc_vectors", "fit_idf", "fit_sif"]

from .device import get_device, set_device  # noqa: E402  the book's GPU switch (fastnlp.device)

__all__ += ["get_device", "set_device"]

from .models import FastText, fasttext_hash  # noqa: E402  fastText: subword n-grams, vectors for unseen words

__all__ += ["FastText", "fasttext_hash"]

from . import sweeps  # noqa: E402  fastnlp.sweeps.word2vec_grid (Dask is imported only when a client is given)
