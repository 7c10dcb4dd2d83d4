"""Word2Vec(device="cuda") (issue 18): weights on the GPU, each job one multi-block Hogwild launch.

Without a GPU the device is tests/cuda_emulation's stand-in ``cupy`` (fake_cupy): word2vec.cu
compiled by g++ with the CUDA built-ins mapped onto CPU threads, launched by the real
kernels/word2vec/cupy_impl.py. The emulation runs a grid's blocks one after another, so the
several blocks of a launch do not race here as they do on a device; what it proves is the
host side (weights, tables and ids on the device, launches of several blocks, losses read back,
save/load, moving a model) and that every sentence of a launch is trained once. It runs 16
threads a block instead of 128 (the kernel takes any multiple of 16; tests/test_word2vec.py
checks both sizes give the reference's bits), since each emulated barrier wakes every thread.
"""
import sys
from pathlib import Path

import numpy as np
import pytest

import fastnlp
from fastnlp import FastText, Word2Vec
from fastnlp import device as fdevice
from fastnlp.kernels import BackendUnavailableError
from fastnlp.kernels import word2vec as ops

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cuda_emulation import build, fake_cupy  # noqa: E402
from test_word2vec import planted_corpus, topic_accuracy  # noqa: E402

SETTINGS = dict(vector_size=16, window=2, negative=3, min_count=1, sample=0, epochs=3, alpha=0.1, progress=False,
                batch_words=100)
SMS = 1  # the stand-in device's streaming multiprocessors: blocks = cupy_impl.BLOCKS_PER_SM (4 here) per SM


@pytest.fixture(autouse=True)
def default_device_restored():
    saved = fdevice._default
    yield
    fdevice._default = saved


@pytest.fixture(scope="module")
def planted():
    return planted_corpus(n_sentences=150, length=6)


# ----- no GPU here: the reason, before anything is trained -------------------------------------------

def test_asking_for_a_gpu_without_cupy_raises_the_reason(planted, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # `import cupy` fails, as where it is not installed
    reason = fastnlp.kernels._cuda.unavailable_reason()
    assert "CuPy is not installed" in reason
    for call in (lambda: Word2Vec(planted[0], device="cuda", **SETTINGS), lambda: Word2Vec(device="gpu:0"),
                 lambda: FastText(planted[0], device="cuda", min_count=1, bucket=100, progress=False)):
        with pytest.raises(BackendUnavailableError, match="not available|no GPU version") as info:
            call()
        assert reason in str(info.value) or "FastText" in str(info.value)
    model = Word2Vec(planted[0], device="cpu", **dict(SETTINGS, epochs=1))
    saved = model.save(tmp_path / "m.npz")
    with pytest.raises(BackendUnavailableError, match="CuPy is not installed"):
        Word2Vec.load(saved, device="cuda")
    before = model.syn0.copy()
    with pytest.raises(BackendUnavailableError, match="CuPy is not installed"):
        model.to("cuda")
    assert model.device == "cpu" and type(model.syn0) is np.ndarray
    np.testing.assert_array_equal(model.syn0, before)
    with pytest.raises(ValueError, match="unknown device"):
        Word2Vec(device="tpu")


def test_fasttext_takes_the_host_as_its_device(planted):
    settings = dict(vector_size=8, min_count=1, bucket=200, epochs=1, progress=False)
    on_host = FastText(planted[0], device="cpu", **settings)
    assert on_host.device == "cpu"
    np.testing.assert_array_equal(on_host.syn0, FastText(planted[0], device=None, **settings).syn0)
    with pytest.raises(BackendUnavailableError, match="FastText cannot run on device 'cuda'"):
        on_host.to("cuda")


# ----- on the emulated device ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def emulation_folder(tmp_path_factory):
    if build.compiler() is None:
        pytest.skip("g++ is not on PATH: the CUDA emulation needs it")
    folder = tmp_path_factory.mktemp("cuda_emulation")
    build.build(Path(ops.__file__).with_name("word2vec.cu"), folder)  # compiled once for the module
    return folder


@pytest.fixture
def gpu(emulation_folder, monkeypatch):
    """The stand-in cupy with one device of SMS multiprocessors; yields (cupy, cupy_impl)."""
    with fake_cupy.installed(emulation_folder, monkeypatch) as cupy:
        monkeypatch.setattr(cupy.cuda.runtime, "getDeviceProperties", lambda device: {"multiProcessorCount": SMS},
                            raising=False)
        from fastnlp.kernels.word2vec import cupy_impl

        monkeypatch.setattr(cupy_impl, "THREADS", 16)
        monkeypatch.setattr(cupy_impl, "BLOCKS_PER_SM", 4)
        yield cupy, cupy_impl


def on_device(array):
    return isinstance(array, fake_cupy.ndarray)


@pytest.mark.parametrize("sg", [0, 1])
def test_word2vec_on_the_device_trains_with_several_blocks_as_well_as_on_the_host(gpu, planted, sg):
    sentences, topics = planted
    launches = fake_cupy.launches
    model = Word2Vec(sentences, sg=sg, device="cuda", **SETTINGS)
    host = Word2Vec(sentences, sg=sg, **SETTINGS)
    assert model.device == "cuda" and model.kernel_backend == "cupy" and model._blocks == 4
    assert all(on_device(w) for w in (model.syn0, model.syn1neg, model.syn1))
    # 900 words an epoch in launches of 4 blocks x 100 words: 3 launches an epoch
    assert fake_cupy.launches - launches == 3 * 3
    # Hogwild over blocks: not the host's bits, but the same learning, epoch by epoch
    np.testing.assert_allclose(model.loss_history, host.loss_history, rtol=0.1)
    assert model.loss_history[-1] < 0.7 * model.loss_history[0]
    assert topic_accuracy(model, topics) == topic_accuracy(host, topics) == 1.0
    assert type(model.wv.vectors) is np.ndarray
    assert not np.array_equal(model.syn0.get(), host.syn0)


def test_a_device_model_saves_host_arrays_and_loads_onto_either(gpu, planted, tmp_path):
    sentences, topics = planted
    model = Word2Vec(sentences[:60], device="cuda", **dict(SETTINGS, epochs=2))
    saved = model.save(tmp_path / "m.npz")
    with np.load(saved) as data:  # plain host arrays in the file
        np.testing.assert_array_equal(data["syn0"], model.syn0.get())
    on_host = Word2Vec.load(saved, device="cpu")
    assert type(on_host.syn0) is np.ndarray and on_host.device == "cpu"
    on_gpu = Word2Vec.load(saved, device="cuda")
    assert on_device(on_gpu.syn0) and on_gpu.device == "cuda"
    for name in ("syn0", "syn1neg"):
        np.testing.assert_array_equal(getattr(on_host, name), getattr(model, name).get())
        np.testing.assert_array_equal(getattr(on_gpu, name).get(), getattr(model, name).get())
    on_gpu.train(sentences[:60], epochs=1)  # training goes on where the weights are
    assert on_device(on_gpu.syn0) and on_gpu.epochs_trained == 3
    assert on_gpu.to("cpu") is on_gpu and type(on_gpu.syn0) is np.ndarray and on_gpu.kernel_backend == "cupy"
    on_gpu.train(sentences[:60], epochs=1)
    assert on_gpu.kernel_backend in ("cython", "numba") and on_gpu.epochs_trained == 4
    fastnlp.set_device("cuda")  # None follows set_device, for a new model and a loaded one alike
    assert on_device(fastnlp.load(saved).syn0) and Word2Vec(**SETTINGS).device == "cuda"
    assert FastText(vector_size=8, min_count=1, bucket=100, progress=False).device == "cpu"


def test_a_corpus_file_trains_on_the_device(gpu, planted, tmp_path):
    sentences, topics = planted
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(" ".join(s) for s in sentences) + "\n", encoding="utf-8")
    launches = fake_cupy.launches
    model = Word2Vec(corpus_file=path, device="cuda", workers=2, **dict(SETTINGS, epochs=2))
    assert fake_cupy.launches - launches == 2 * 3  # one reader: the launches of the whole file
    assert on_device(model.syn0) and model.loss_history[1] < model.loss_history[0]
    assert model.corpus_total_words == 900


def test_every_sentence_of_a_multi_block_launch_is_trained_once(gpu):
    """Subsampling decides per token position, so the words trained by any split of a job's
    sentences over blocks equal the reference's count; one block also gives its bits."""
    from hypothesis import given, settings

    cupy, cupy_impl = gpu
    from fastnlp.kernels.word2vec import reference

    @settings(max_examples=8, deadline=None, database=None)
    @given(args=ops._examples())
    def check(args):
        n_sentences = args[4].shape[0]
        args = args[:-2]  # no private rows: the multi-block launch trains every row in place
        for blocks in (1, 3, n_sentences + 2):
            mine = [cupy.asarray(a.copy()) if isinstance(a, np.ndarray) else a for a in args]
            theirs = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
            loss, trained = cupy_impl.train_hogwild(True, *mine, blocks=blocks)
            want_loss, want_trained = reference.word2vec_sg(*theirs)
            assert trained == want_trained, blocks
            if blocks == 1:
                assert loss == want_loss or (np.isnan(loss) and np.isnan(want_loss))
                np.testing.assert_array_equal(mine[0].get(), theirs[0])

    check()


def test_the_device_kernel_checks_ids_on_the_host_and_refuses_host_weights(gpu):
    cupy, cupy_impl = gpu
    counts = [5, 3, 2]
    tables = ops.Tables.build(counts, sample=0, negative=2)
    weights = [cupy.asarray(np.zeros((3, 4), np.float32)) for _ in range(2)] + [cupy.zeros((0, 4), np.float32)]
    kernel = cupy_impl.HogwildKernel(*weights, tables, sg=True, window=2, negative=2, blocks=3)
    with pytest.raises(ValueError, match="token ids must lie in"):
        kernel.upload(np.array([0, 3], np.int32), np.array([2], np.int64))
    with pytest.raises(TypeError, match="must be a CuPy array"):
        cupy_impl.HogwildKernel(np.zeros((3, 4), np.float32), *weights[1:], tables, sg=True, window=2, negative=2,
                                blocks=3)
    with pytest.raises(ValueError, match="keep_below has 2 entries for 3 words"):
        cupy_impl.HogwildKernel(*weights, ops.Tables.build([5, 3], sample=0, negative=2), sg=True, window=2,
                                negative=2, blocks=3)
    tokens, ends = kernel.upload(np.array([0, 1, 2, 1], np.int32), np.array([4], np.int64))
    assert on_device(tokens) and on_device(ends)
    loss = kernel.launch(tokens, ends, 0.1, 0.1, 7)
    assert on_device(loss) and loss.shape == (3,)
    assert np.isfinite(kernel.losses([loss])[0])
