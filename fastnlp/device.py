"""Where models and data live: the host (NumPy) or the GPU (CuPy), and moving them between.

``fastnlp.set_device("cuda")`` is the book's ``GPU = True``: models and trainers built later
without a device put their arrays on the GPU. ``model.to("cuda")`` / ``model.to("cpu")``
moves one model (parameters, gradients, the state its layers carry), keeping tied weights tied;
``Trainer(..., device=...)`` and ``RnnlmTrainer(..., device=...)`` move the model and the
optimizer's state, and every batch to the model before its forward. Layers and optimizers
never choose a device themselves: they compute where their inputs are.

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
    """A batch (an array, or a tuple/list of them) on ``model``'s device: what the trainers and
    evaluation helpers call before ``forward``. Non-arrays pass unchanged."""
    if isinstance(batch, (tuple, list)):
        return type(batch)(batch_to(b, model) for b in batch)
    if not hasattr(batch, "dtype"):
        return batch
    return to_device(batch, model_device(model)) if device_of(batch) != model_device(model) else batch


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
        owners = {}
        for a in self.arrays.values():
            if a.base is None:
                owners.setdefault((_pointer(a), a.dtype.str), a)
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

