"""Where models and data live: the host (NumPy) or the GPU (CuPy), and moving them between.

``fastnlp.set_device("cuda")`` is the book's ``GPU = True``: models and trainers built later
without a device put their arrays on the GPU. ``model.to("cuda")`` / ``model.to("cpu")``
moves one model (parameters, gradients, the state its layers carry), keeping tied weights tied;
``Trainer(..., device=...)`` and ``RnnlmTrainer(..., device=...)`` move the model and the
optimizer's state, and every batch to the model before its forward (on a GPU through pinned
host buffers, the next batch's copy running while the current step computes:
:func:`batches_to`). Layers and optimizers never choose a device themselves: they compute
where their inputs are.

Device names: ``"cpu"`` (also ``"host"``, ``"numpy"``), ``"cuda"`` (also ``"gpu"``,
``"cuda:N"``, ``"gpu:N"``; N = 0 is the current device). Asking for the GPU where CuPy or a
CUDA device is missing raises ``fastnlp.kernels.BackendUnavailableError`` with the reason.
"""
from __future__ import annotations

import numpy as np

from .kernels.dispatch import BackendUnavailableError, is_device_array

CPU, CUDA = "cpu", "cuda"
_ALIASES = {"cpu": CPU, "host": CPU, "numpy": CPU, "cuda": CUDA, "gpu": CUDA, "cupy": CUDA}
_default: str | None = None  # None: nothing chosen; models stay where they are built (the host)


def normalize(device) -> str:
    """``"cpu"`` or ``"cuda"`` (``"cuda:N"`` for another device than the current one) for a
    device name; ValueError for anything else."""
    if not isinstance(device, str):
        raise TypeError(f"a device is a name: 'cpu' or 'cuda' (also 'gpu', 'cuda:0'), got {device!r}")
    name, _, index = device.strip().lower().partition(":")
    kind = _ALIASES.get(name)
    if kind is None or (index and (kind == CPU or not index.isdigit())):
        raise ValueError(f"unknown device {device!r}; use 'cpu' or 'cuda' (also 'gpu', 'cuda:0')")
    return kind if not index or int(index) == 0 else f"{kind}:{int(index)}"


def require(device) -> str:
    """``device`` normalised, after checking it can be used here (BackendUnavailableError says
    why not: CuPy not installed, no CUDA device)."""
    device = normalize(device)
    if device != CPU:
        from .kernels import _cuda

        reason = _cuda.unavailable_reason()
        if reason is not None:
            raise BackendUnavailableError(f"device {device!r} is not available: {reason}")
    return device


def set_device(name) -> None:
    """Choose the device later-built models and trainers use when given none (the book's
    ``GPU = True`` is ``set_device("cuda")``); ``None`` goes back to no choice (models stay on
    the host they are built on; trainers use the model where it is)."""
    global _default
    _default = None if name is None else require(name)


def get_device() -> str | None:
    """The device chosen with :func:`set_device`, or None."""
    return _default


def device_of(array) -> str:
    """``"cuda"`` for a CuPy array, else ``"cpu"``."""
    return CUDA if is_device_array(array) else CPU


def model_device(model) -> str:
    """Where ``model``'s parameters are (``"cpu"`` for a model without any)."""
    params = getattr(model, "params", None) or []
    return device_of(params[0]) if len(params) else CPU


def _device_index(device) -> int:
    return int(device.partition(":")[2] or 0)


def _cupy():
    import cupy

    return cupy


def to_device(array, device):
    """``array`` on ``device`` (the same object when it is already there). Host arrays go to
    the GPU with ``cupy.asarray``; device arrays come back with ``.get()``. Python values and
    lists become arrays there."""
    device = normalize(device)
    if device == CPU:
        if is_device_array(array):
            return array.get()
        return array if isinstance(array, np.ndarray) else np.asarray(array)
    if is_device_array(array) and _device_index(device) == getattr(getattr(array, "device", None), "id", 0):
        return array
    cupy = _cupy()
    with cupy.cuda.Device(_device_index(device)):
        if isinstance(array, np.ndarray) and type(array) is not np.ndarray:
            array = array.view(np.ndarray)  # RowSparseGrad and other subclasses: the plain data
        return cupy.asarray(array)


def like(array, reference):
    """``array`` on the device of ``reference`` (the same object when already there)."""
    return to_device(array, device_of(reference)) if device_of(array) != device_of(reference) else array


def batch_to(batch, model):
    """A batch (an array, or a tuple/list of them) on ``model``'s device: what the evaluation
    helpers call before ``forward`` (the trainers go through :func:`batches_to`). Non-arrays
    pass unchanged."""
    return _batch_on(batch, model_device(model))


def _batch_on(batch, device):
    if isinstance(batch, (tuple, list)):
        return type(batch)(_batch_on(b, device) for b in batch)
    if not hasattr(batch, "dtype"):
        return batch
    return to_device(batch, device) if device_of(batch) != device else batch


def batches_to(batches, model):
    """Each batch of the iterable ``batches`` (what :func:`batch_to` takes: an array, or a
    tuple/list of arrays and other values) on ``model``'s device, in order: what the trainers
    loop over.

    On the host this is ``batch_to`` of each batch. On a CUDA device the host arrays of a batch
    go through page-locked (pinned) host buffers and are copied on a stream of their own
    (:class:`PinnedCopier`), and the next batch's copy is queued before the current batch is
    handed out, so that it runs while the current step computes. ``batches`` is read one batch
    ahead, never more, and not past its end: a lazy source (a generator drawing each epoch's
    shuffle when it gets there) draws what the plain loop would, in the same order."""
    device = model_device(model)
    if device == CPU:
        for batch in batches:
            yield _batch_on(batch, device)
        return
    copier = PinnedCopier(device)
    try:
        queued = None
        for batch in batches:
            started = copier.start(batch)  # before the step that takes the previous batch is queued
            if queued is not None:
                yield copier.finish(queued)
            queued = started
        if queued is not None:
            yield copier.finish(queued)
    finally:
        copier.close()


class PinnedCopier:
    """Host arrays to one CUDA device through pinned host buffers, on a copy stream of its own.

    ``start(batch)`` copies each host array of the batch into a pinned buffer, allocates its
    device array and queues the copy on the copy stream without waiting for it; ``finish``
    makes the stream the model computes on wait for those copies (on the device: the host goes
    on) and returns the batch. Two sets of buffers are used in turn (double buffering), so one
    batch can be filled while the previous one is still being copied. Three orderings keep it
    correct:

    * a buffer is refilled only after the host has seen its previous copy end (that copy's
      event), since the copy reads the buffer while it runs;
    * the compute stream waits for a batch's copy before touching it (``finish``);
    * the copy waits for the work queued on the compute stream before it (an event recorded in
      ``start``): CuPy's memory pool may give the new device array memory that a queued step
      still reads.

    The copy stream is non-blocking: a blocking stream would be ordered with the legacy
    default stream the model computes on, and the copies would not overlap the steps. Items of
    a batch that are not host NumPy arrays (device arrays, numbers) are moved as ``batch_to``
    moves them.
    """

    SLOTS = 2

    def __init__(self, device):
        self.device = normalize(device)
        self.index = _device_index(self.device)
        cupy = _cupy()
        with cupy.cuda.Device(self.index):
            self.stream = cupy.cuda.Stream(non_blocking=True)
        self._blocks = [{} for _ in range(self.SLOTS)]  # per slot: position in the batch -> pinned bytes
        self._copied = [None] * self.SLOTS  # per slot: the event after its last copies, or None
        self._turn = 0

    def start(self, batch):
        """Queue the copies of ``batch``'s host arrays; returns what :meth:`finish` takes."""
        cupy = _cupy()
        items = list(batch) if isinstance(batch, (tuple, list)) else [batch]
        slot, self._turn = self._turn, (self._turn + 1) % self.SLOTS
        with cupy.cuda.Device(self.index):
            if self._copied[slot] is not None:
                self._copied[slot].synchronize()  # its last copies have read the buffers: refill them
                self._copied[slot] = None
            self.stream.wait_event(_event(cupy, cupy.cuda.get_current_stream()))
            moved = []
            for position, item in enumerate(items):
                if not isinstance(item, np.ndarray):
                    moved.append(_batch_on(item, self.device))
                    continue
                pinned = self._buffer(slot, position, item)
                np.copyto(pinned, item)
                on_device = cupy.empty(item.shape, item.dtype)
                on_device.set(pinned, stream=self.stream)
                moved.append(on_device)
            self._copied[slot] = _event(cupy, self.stream)
        return type(batch) if isinstance(batch, (tuple, list)) else None, moved, self._copied[slot]

    def finish(self, started):
        """The batch :meth:`start` queued, with the compute stream ordered after its copies."""
        kind, moved, copied = started
        cupy = _cupy()
        with cupy.cuda.Device(self.index):
            cupy.cuda.get_current_stream().wait_event(copied)
        return moved[0] if kind is None else kind(moved)

    def close(self):
        """Wait for the copies still running (their buffers are freed next), drop the buffers."""
        for copied in self._copied:
            if copied is not None:
                copied.synchronize()
        self._copied = [None] * self.SLOTS
        self._blocks = [{} for _ in range(self.SLOTS)]

    def _buffer(self, slot, position, like):
        """A pinned array shaped like ``like`` over the slot's block for that position, grown
        when too small (a shorter last batch reuses the block)."""
        blocks = self._blocks[slot]
        block = blocks.get(position)
        if block is None or block.size < like.nbytes:
            block = blocks[position] = np.frombuffer(_cupy().cuda.alloc_pinned_memory(max(like.nbytes, 1)),
                                                     np.uint8, max(like.nbytes, 1))
        return block[:like.nbytes].view(like.dtype).reshape(like.shape)


def _event(cupy, stream):
    """A new event recorded on ``stream`` (timing off: cheaper to record and wait for)."""
    event = cupy.cuda.Event(disable_timing=True)
    event.record(stream)
    return event


def host(value):
    """``value`` on the host: a NumPy array for a device array, unchanged otherwise."""
    return value.get() if is_device_array(value) else value


# ----- moving a model ---------------------------------------------------------------------------------

# Attribute names never walked: the constructor's arguments (saved as they were given), caches
# of the serialization layer.
_SKIP_ATTRIBUTES = frozenset({"_settings"})


def _is_array(value) -> bool:
    return isinstance(value, np.ndarray) or is_device_array(value)


def _walkable(obj) -> bool:
    """fastnlp's own objects (layers, models, samplers), not the kernels' tables (NoiseTable
    keeps its own device copies), random generators or anything foreign."""
    module = type(obj).__module__ or ""
    return (module == "fastnlp" or module.startswith("fastnlp.")) and not module.startswith("fastnlp.kernels") \
        and hasattr(obj, "__dict__")


def _owner_rank(a) -> int:
    """0 for an array that owns its memory, 1 for a C-ordered view, 2 for any other view."""
    if a.base is None:
        return 0
    return 1 if a.flags.c_contiguous else 2


def _pointer(a) -> int:
    interface = getattr(a, "__cuda_array_interface__", None) if is_device_array(a) else None
    return (interface or a.__array_interface__)["data"][0]


class _Mover:
    """Moves every array reachable from a model, each once: an array shared by identity (a tied
    weight, a gradient list shared by two layers) maps to one moved array, and a view of another
    reachable array (BetterRnnlm's ``embed_W.T``) becomes the same view of the moved array."""

    def __init__(self, device):
        self.device = device
        self.moved: dict[int, object] = {}  # id(original) -> moved array
        self.keep: list = []  # the originals, alive while ids are compared
        self.arrays: dict[int, object] = {}  # every reachable array, by id
        # Back on the host, the gradients of layers with row-sparse gradients (Embedding,
        # EmbeddingDot) are RowSparseGrads again, so optimizers update only their rows (on the
        # GPU they are plain arrays).
        self.row_sparse: set[int] = set()

    def collect(self, obj, seen):
        if id(obj) in seen:
            return
        if _is_array(obj):
            self.arrays[id(obj)] = obj
            return
        if isinstance(obj, (list, tuple, set, frozenset)):
            seen.add(id(obj))
            for item in obj:
                self.collect(item, seen)
        elif isinstance(obj, dict):
            seen.add(id(obj))
            for item in obj.values():
                self.collect(item, seen)
        elif _walkable(obj):
            seen.add(id(obj))
            if self.device == CPU and _has_row_sparse_grad(obj):
                self.row_sparse.add(id(obj.grads[0]))
            for name, item in vars(obj).items():
                if name not in _SKIP_ATTRIBUTES:
                    self.collect(item, seen)

    def move_all(self):
        # Arrays owning their memory first, then views of them: a transposed or identical view
        # of an array in the model becomes that view of the moved array (any other array is
        # moved on its own).
        # The owner of a memory is the model's array over it that owns it, else a C-ordered one
        # (the 64-byte aligned parameters are C-ordered views of their blocks, see
        # kernels.memory.aligned_zeros_like), else the first met.
        owners = {}
        for a in self.arrays.values():
            key = (_pointer(a), a.dtype.str)
            current = owners.get(key)
            if current is None or _owner_rank(a) < _owner_rank(current):
                owners[key] = a
        later = []
        for a in self.arrays.values():
            base = owners.get((_pointer(a), a.dtype.str))
            if base is None or base is a:
                self.array(a)
            else:
                later.append((a, base))
        for a, base in later:
            self.moved[id(a)] = self._view_of(a, base)
            self.keep.append(a)

    def _view_of(self, a, base):
        moved = self.array(base)
        if a.shape == base.shape and a.strides == base.strides:
            return moved
        if a.shape == base.shape[::-1] and a.strides == base.strides[::-1]:
            return moved.T
        return to_device(a, self.device)

    def array(self, a):
        key = id(a)
        if key not in self.moved:
            self.keep.append(a)
            moved = to_device(a, self.device)
            if key in self.row_sparse:
                from .layers.embedding import RowSparseGrad

                moved = moved.view(RowSparseGrad)  # rows None: dense until the next backward
            self.moved[key] = moved
        return self.moved[key]

    def replace(self, obj, seen):
        """Put the moved arrays in place of the originals, in place (lists stay the same lists,
        so lists shared by identity stay shared)."""
        if id(obj) in seen:
            return
        if isinstance(obj, list):
            seen.add(id(obj))
            for i, item in enumerate(obj):
                if _is_array(item):
                    obj[i] = self.array(item)
                else:
                    self.replace(item, seen)
        elif isinstance(obj, dict):
            seen.add(id(obj))
            for k, item in list(obj.items()):
                if _is_array(item):
                    obj[k] = self.array(item)
                else:
                    self.replace(item, seen)
        elif isinstance(obj, (tuple, set, frozenset)):
            seen.add(id(obj))
            for item in obj:
                self.replace(item, seen)
        elif _walkable(obj):
            seen.add(id(obj))
            for name, item in list(vars(obj).items()):
                if name in _SKIP_ATTRIBUTES:
                    continue
                if _is_array(item):
                    setattr(obj, name, self.array(item))
                elif isinstance(item, tuple):
                    setattr(obj, name, self._tuple(item, seen))
                else:
                    self.replace(item, seen)

    def _tuple(self, items, seen):
        out = []
        for item in items:
            if _is_array(item):
                out.append(self.array(item))
            elif isinstance(item, tuple):
                out.append(self._tuple(item, seen))
            else:
                self.replace(item, seen)
                out.append(item)
        return type(items)(out) if type(items) is tuple else items


def move(model, device):
    """Move every array of ``model`` (parameters, gradients, carried state, cached buffers) to
    ``device``, in place; returns ``model``. See :meth:`DeviceMixin.to`."""
    device = require(device)
    mover = _Mover(device)
    mover.collect(model, set())
    mover.move_all()
    mover.replace(model, set())
    return model


def _has_row_sparse_grad(obj) -> bool:
    from .layers.embedding import SparseRows

    grads = getattr(obj, "grads", None)
    return isinstance(getattr(obj, "_rows", None), SparseRows) and bool(grads) and _is_array(grads[0])


class DeviceMixin:
    """``to(device)`` and ``device`` for a model: every model of ``fastnlp.models`` has them."""

    def to(self, device):
        """Move this model to ``device`` (``"cuda"``, ``"gpu"``, ``"cuda:0"`` or ``"cpu"``) and
        return it: parameters, gradients and the state its layers keep move together, tied
        weights stay one array. A Trainer built before the move finds the new arrays at its
        next ``fit``; an optimizer's state follows the parameters at its next update."""
        return move(self, device)

    @property
    def device(self) -> str:
        """``"cuda"`` or ``"cpu"``: where the parameters are."""
        return model_device(self)

    def _follow_default_device(self):
        """Called at the end of a model's constructor: onto the device of ``set_device``."""
        if _default is not None and _default != CPU:
            move(self, _default)


class FollowsItsModel:
    """What both trainers share: ``ties`` and ``device`` kept in step with the model's arrays."""

    def _follow_model(self):
        """Find the ties again when the model's arrays were replaced (``model.to(...)`` after
        this trainer was built); the optimizer's state follows at its next update."""
        from .optim import TiedParams

        if [id(p) for p in self.model.params] != self._param_ids:
            self.ties = TiedParams(self.model.params)
            self._param_ids = [id(p) for p in self.model.params]
        self.device = model_device(self.model)


def move_optimizer_state(optimizer, params) -> None:
    """The optimizer's per-parameter buffers (``state_names``) onto the devices of ``params``."""
    for name in getattr(optimizer, "state_names", ()) or ():
        buffers = getattr(optimizer, name, None)
        if isinstance(buffers, list) and len(buffers) == len(params):
            setattr(optimizer, name, [like(b, p) for b, p in zip(buffers, params)])

