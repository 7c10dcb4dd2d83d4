"""Saving and loading parameters as ``.npz`` (arrays only, never pickled code), atomically."""
from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
import zipfile
from pathlib import Path

import numpy as np

from .kernels.dispatch import is_device_array
from .kernels.validate import cast_exactly

# Array kinds a parameter file may hold: bool, signed and unsigned int, float, complex. The rest
# (object, bytes, str, structured, datetime) are not parameters, and objects would need pickle.
_NUMERIC_KINDS = "biufc"
_PARAM_KEY = re.compile(r"param_(\d+)")


def is_writable(path, st: os.stat_result | None = None) -> bool:
    """Whether the user may replace the file ``path`` or create files in the folder ``path``.

    Root may write anything, so for root the owner's write bit decides: a file or folder that
    ``ls -l`` shows read-only stays read-only, as it would for its owner.
    """
    st = os.stat(path) if st is None else st
    need = os.W_OK | (os.X_OK if stat.S_ISDIR(st.st_mode) else 0)
    if not os.access(path, need):
        return False
    return not _is_root() or bool(st.st_mode & stat.S_IWUSR)


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def atomic_write(path, write) -> Path:
    """Call ``write(file_object)`` on a temporary file beside ``path`` then rename it over
    ``path``, so readers see the old file or the complete new one, never half of one.

    It behaves like overwriting the file by hand: an existing file keeps its mode (and, where
    allowed, its owner); a new one gets the mode the umask gives; a symlink is written through
    (its target is replaced, the link stays). A read-only file raises ``PermissionError`` and a
    missing folder ``FileNotFoundError``; in both cases, and when ``write`` fails, nothing changes.
    """
    path = Path(path)
    target = Path(os.path.realpath(path))  # through symlinks, so the link itself stays
    folder = target.parent
    shown = str(path) if target == path.absolute() else f"{path} (-> {target})"
    if not folder.is_dir():
        raise FileNotFoundError(errno.ENOENT, f"cannot save {shown}: the folder does not exist", str(folder))
    try:
        existing = os.stat(target)
    except FileNotFoundError:
        existing = None
    if existing is not None:
        if stat.S_ISDIR(existing.st_mode):
            raise IsADirectoryError(errno.EISDIR, f"cannot save {shown}: it is a folder", str(target))
        if not stat.S_ISREG(existing.st_mode):
            raise FileExistsError(errno.EEXIST, f"cannot save {shown}: it exists and is not a regular file",
                                  str(target))
        if not is_writable(target, existing):
            raise PermissionError(errno.EACCES, f"cannot save {shown}: the file is read-only "
                                  f"(mode {stat.filemode(existing.st_mode)}); it was left unchanged", str(target))
    if not is_writable(folder):
        raise PermissionError(errno.EACCES, f"cannot save {shown}: the folder is read-only", str(folder))

    fd, tmp = _create_temp(folder, target.name, private=existing is not None)
    try:
        if existing is not None:
            _copy_owner_and_mode(fd, existing)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_folder(folder)
    return path


def _create_temp(folder: Path, name: str, private: bool):
    # A new file is created with 0o666 so the kernel applies the umask (or the folder's default
    # ACL) exactly as for any new file; when replacing a file it starts private and then takes
    # that file's mode, so its contents are never readable by more people than before.
    mode = 0o600 if private else 0o666
    for _ in range(100):
        tmp = folder / f".{name[:100]}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), mode), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "could not find a free temporary file name", str(folder))


def _copy_owner_and_mode(fd: int, existing: os.stat_result) -> None:
    if hasattr(os, "fchown") and (existing.st_uid, existing.st_gid) != (os.geteuid(), os.getegid()):
        try:  # only root may give a file away; others keep at least the group where they can
            os.fchown(fd, existing.st_uid, existing.st_gid)
        except PermissionError:
            try:
                os.fchown(fd, -1, existing.st_gid)
            except PermissionError:
                pass
    os.fchmod(fd, stat.S_IMODE(existing.st_mode))  # after chown, which clears set-id bits


def _fsync_folder(folder: Path) -> None:
    # Makes the rename itself durable; some file systems cannot sync a folder, which is harmless.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def to_host(a):
    """A NumPy view or copy of ``a`` (CuPy arrays are copied from the device)."""
    return a.get() if is_device_array(a) else np.asarray(a)


def save_params(path, params, dtype=None, vocabulary=None) -> Path:
    """Save a model (or a list of arrays) to ``path`` (.npz), atomically.

    Only numeric arrays are accepted (anything else would need pickle); they are checked before
    the file is touched. ``dtype=np.float16`` stores half-precision weights (half the file);
    values beyond the range of ``dtype`` raise ``OverflowError`` instead of becoming inf or
    wrapping, and an integer ``dtype`` refuses fractions, NaN and inf (nothing is written).

    A model's file also records its class and constructor settings, so ``fastnlp.load`` rebuilds
    it; ``vocabulary`` (a ``Vocabulary`` or a list of words) is kept with it.
    """
    model = params if hasattr(params, "params") else None
    params = getattr(params, "params", params)
    target = None if dtype is None else np.dtype(dtype)
    if target is not None and target.kind not in _NUMERIC_KINDS:
        raise TypeError(f"dtype must be numeric, got {target}")
    arrays = {}
    for i, p in enumerate(params):
        a = to_host(p)
        if a.dtype.kind not in _NUMERIC_KINDS:
            raise TypeError(f"param {i} has dtype {a.dtype}; only numeric arrays can be saved (nothing was written)")
        if target is not None:
            a = cast_exactly(a, target, what=f"param {i}")
        arrays[f"param_{i:04d}"] = a
    state = {}
    if vocabulary is not None:
        state["vocabulary"] = list(getattr(vocabulary, "id_to_word", vocabulary))
    elif getattr(model, "vocabulary", None) is not None:
        state["vocabulary"] = list(model.vocabulary.id_to_word)
    if model is not None and "_settings" in getattr(model, "__dict__", {}):
        return write_file(path, model, arrays, kind="model", settings=model._settings, state=state)
    return write_file(path, None, arrays, kind="params", state=state)


def load_params(path, into=None, dtype=np.float32):
    """Load arrays saved by ``save_params`` as ``dtype`` (float32 by default; None keeps the
    stored dtype). With ``into`` (a list of arrays or a model), copy them into its params in
    place, only after checking the count and every shape, so a mismatch changes nothing;
    returns the list of arrays."""
    arrays = _read_param_arrays(path, dtype)
    if into is not None:
        targets = getattr(into, "params", into)
        if len(targets) != len(arrays):
            raise ValueError(f"{path} holds {len(arrays)} params but the model has {len(targets)}")
        for i, (t, a) in enumerate(zip(targets, arrays)):
            if t.shape != a.shape:
                raise ValueError(f"param {i}: saved shape {a.shape} != model shape {t.shape}")
            if isinstance(t, np.ndarray) and not t.flags.writeable:
                raise ValueError(f"param {i} of the model is read-only")
        for t, a in zip(targets, arrays):
            t[...] = a if not is_device_array(t) else array_like(a, t)
    return arrays


@contextlib.contextmanager
def open_npz(path, what: str):
    """The archive at ``path`` as numpy's NpzFile (no pickle), closed with its file on leaving,
    also where numpy fails to parse it; a ValueError naming ``what`` ("an .npz written by
    save_params") when the file is not an .npz archive."""
    with open(Path(path), "rb") as handle:
        try:
            data = np.load(handle, allow_pickle=False)
        except (ValueError, EOFError, zipfile.BadZipFile) as err:
            raise ValueError(f"{path} is not {what}: {err}") from None
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError(f"{path} holds a single array (.npy), not {what}")
        with data:
            yield data


def _read_param_arrays(path, dtype) -> list:
    with open_npz(path, "an .npz written by save_params") as data:
        # Numeric order: 'param_10000' sorts before 'param_9999' as text. Old files padded to
        # four digits and newer ones past 9999 parse alike.
        by_index = {}
        for key in data.files:
            match = _PARAM_KEY.fullmatch(key)
            if match:
                index = int(match.group(1))
                if index in by_index:
                    raise ValueError(f"{path} holds param {index} twice ({by_index[index]} and {key})")
                by_index[index] = key
        if [key for key in data.files if key != HEADER_KEY] and not by_index:
            raise ValueError(f"{path} is not an .npz written by save_params: no param_* arrays in it")
        missing = sorted(set(range(len(by_index))) - set(by_index))
        if missing:
            raise ValueError(f"{path} has {len(by_index)} params but lacks param {missing[0]}: "
                             "the file is damaged or was not written by save_params")
        arrays = []
        for index in range(len(by_index)):
            try:
                a = data[by_index[index]]
            except (EOFError, zipfile.BadZipFile) as err:
                raise ValueError(f"{path}: param {index} cannot be read, the file is damaged ({err})") from None
            if a.dtype.kind not in _NUMERIC_KINDS:
                raise ValueError(f"{path}: param {index} has non-numeric dtype {a.dtype}")
            arrays.append(a if dtype is None else a.astype(dtype))
    return arrays


def array_like(host_array, like):
    """A new array holding ``host_array`` with ``like``'s dtype, on ``like``'s device."""
    if not is_device_array(like):
        return np.array(host_array, dtype=like.dtype)
    import cupy

    return cupy.asarray(host_array, dtype=like.dtype)


# ----- one file format for every saved object ---------------------------------------------------
#
# Every file fastnlp writes is an .npz of plain arrays plus one header array, HEADER_KEY: UTF-8
# JSON as uint8 (a NumPy string array would need a fixed width and drops trailing NULs). The
# header names the format and its version, the kind of file, the class and the constructor
# settings that rebuild it, and any small state (lists, numbers) the object needs. Parameters
# are stored as ``param_0000...`` so ``load_params`` reads the parameters of any file.

FORMAT_NAME = "fastnlp"
FORMAT_VERSION = 1
HEADER_KEY = "__fastnlp__"

_CLASSES: dict = {}  # "module.Class" -> class; fastnlp.load builds only these, never an arbitrary import


def class_name(cls) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def saveable(cls):
    """Class decorator: register ``cls`` for ``fastnlp.load`` and record the arguments its
    constructor was called with (``obj.settings``), so a file can rebuild the object.

    Only the outermost constructor records: a subclass's ``super().__init__`` call does not
    overwrite the subclass's own settings."""
    import functools
    import inspect

    init = cls.__init__
    signature = inspect.signature(init)

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        if "_settings" not in self.__dict__:
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            settings = {}
            for name, value in list(bound.arguments.items())[1:]:
                kind = signature.parameters[name].kind
                if kind is inspect.Parameter.VAR_KEYWORD:
                    settings.update(value)
                elif kind is not inspect.Parameter.VAR_POSITIONAL:
                    settings[name] = value
            self.__dict__["_settings"] = settings
        init(self, *args, **kwargs)

    cls.__init__ = __init__
    cls.settings = property(lambda self: dict(self._settings),
                            doc="The constructor arguments this object was built with (what a saved file records).")
    return register_class(cls)


def register_class(cls):
    """Let ``fastnlp.load`` build ``cls`` from a file (classes with their own ``_to_file`` /
    ``_from_file``, or decorated with :func:`saveable`)."""
    _CLASSES[class_name(cls)] = cls
    return cls


def _encode_settings(settings: dict, arrays: dict, who: str) -> dict:
    """Settings as JSON: dtypes become their names, arrays go into the file beside the header."""
    encoded = {}
    for name, value in settings.items():
        if isinstance(value, np.ndarray) or is_device_array(value):
            key = f"setting_{name}"
            arrays[key] = to_host(value)
            encoded[name] = {"array": key}
        elif isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
            encoded[name] = {"dtype": np.dtype(value).name}
        elif isinstance(value, np.generic):
            encoded[name] = value.item()
        elif value is None or isinstance(value, (bool, int, float, str)):
            encoded[name] = value
        elif isinstance(value, (list, tuple)) and all(isinstance(v, (bool, int, float, str)) for v in value):
            encoded[name] = list(value)
        else:
            raise TypeError(f"cannot save {who}: its setting {name}={type(value).__name__} is not a number, "
                            "string, dtype or array")
    return encoded


def _decode_settings(encoded: dict, arrays: dict, path) -> dict:
    settings = {}
    for name, value in encoded.items():
        if isinstance(value, dict) and set(value) == {"array"}:
            if value["array"] not in arrays:
                raise ValueError(f"{path}: the setting {name!r} names the array {value['array']!r}, which is missing")
            settings[name] = arrays[value["array"]]
        elif isinstance(value, dict) and set(value) == {"dtype"}:
            settings[name] = np.dtype(value["dtype"])
        else:
            settings[name] = value
    return settings


def write_file(path, obj, arrays: dict, *, kind: str, settings: dict | None = None, state: dict | None = None) -> Path:
    """Write one fastnlp file: ``arrays`` (numeric, checked before the file is touched) and the
    header naming ``kind`` ("model", "vectors", "checkpoint", "params"), ``obj``'s class (None
    for bare arrays), its constructor ``settings`` and JSON ``state``. Atomic."""
    import io
    import json

    arrays = {key: to_host(a) for key, a in arrays.items()}
    who = "a file" if obj is None else type(obj).__name__
    header = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "kind": kind,
              "class": None if obj is None else class_name(type(obj)),
              "settings": _encode_settings(settings or {}, arrays, who), "state": state or {}}
    for key, a in arrays.items():
        if a.dtype.kind not in _NUMERIC_KINDS:
            raise TypeError(f"cannot save {who}: array {key!r} has dtype {a.dtype}; only numeric arrays can be "
                            "saved (nothing was written)")
    if HEADER_KEY in arrays:
        raise ValueError(f"{HEADER_KEY!r} is reserved for the file's header")
    try:
        text = json.dumps(header, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise TypeError(f"cannot save {who}: its state is not plain JSON ({err}); nothing was written") from None
    arrays[HEADER_KEY] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    buffer = io.BytesIO()  # serialised before the file is touched, so a failure leaves it as it was
    np.savez(buffer, **arrays)
    return atomic_write(path, lambda f: f.write(buffer.getbuffer()))


def read_file(path, what: str = "a file written by fastnlp"):
    """``(header, arrays)`` of a fastnlp file. Files from before the one format (no header)
    get a header with ``version`` 0 and the ``kind`` their arrays show."""
    with open_npz(path, what) as data:
        try:
            arrays = {key: data[key] for key in data.files}
        except (EOFError, zipfile.BadZipFile, ValueError) as err:
            raise ValueError(f"{path} is damaged: {err}") from None
    raw = arrays.pop(HEADER_KEY, None)
    if raw is None:
        return _legacy_header(arrays, path), arrays
    return parse_header(raw, path), arrays


def parse_header(raw, path) -> dict:
    """The header of a fastnlp file from its array (UTF-8 JSON as uint8), checked: the format's
    name and a version this code reads."""
    import json

    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise ValueError(f"{path}: the header {HEADER_KEY!r} is not UTF-8 bytes (damaged file)")
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: the header is not valid JSON ({err}); the file is damaged") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise ValueError(f"{path} is not a fastnlp file (format {header.get('format') if isinstance(header, dict) else None!r})")
    version = header.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(f"{path} has format version {version!r}; this fastnlp reads versions up to "
                         f"{FORMAT_VERSION}: upgrade fastnlp")
    return header


def _legacy_header(arrays: dict, path) -> dict:
    """What a file written before the one format holds, judged by its arrays."""
    header = {"format": FORMAT_NAME, "version": 0, "class": None, "settings": {}, "state": {}}
    keys = set(arrays)
    if "meta" in keys and "syn0" in keys:
        header.update(kind="model", **{"class": "fastnlp.models.word2vec.Word2Vec"})
    elif "vectors" in keys and ({"word_bytes", "word_offsets"} <= keys or "words" in keys):
        header.update(kind="vectors", **{"class": "fastnlp.vectors.keyed.WordVectors"})
    elif "rnnlm_trainer_state" in keys:
        header.update(kind="checkpoint")
    elif keys and all(_PARAM_KEY.fullmatch(k) for k in keys):
        header.update(kind="params")
    elif not keys:
        header.update(kind="params")
    else:
        raise ValueError(f"{path} is not a file written by fastnlp (arrays {sorted(keys)[:5]})")
    return header


def save(path, obj, dtype=None, **extra) -> Path:
    """Save ``obj`` (any model, WordVectors, Word2Vec, or a list of arrays) to one ``.npz`` that
    ``fastnlp.load`` turns back into the same object. ``dtype`` stores a model's parameters in
    another format (``np.float16``: half the bytes); ``vocabulary=`` keeps the words a model
    reads (a ``Vocabulary`` or list of words), so the file alone can generate text."""
    writer = getattr(obj, "_to_file", None)
    if writer is not None:
        return writer(path) if dtype is None and not extra else writer(path, dtype=dtype, **extra)
    return save_params(path, obj, dtype=dtype, **extra)


def load(path):
    """The object a fastnlp file holds: a model (with its ``vocabulary`` when one was saved),
    ``WordVectors``, a ``Word2Vec``, or a list of arrays for files that record no class (those
    written by ``save_params`` from a list, and files from before the one format). A checkpoint
    loads as its model with the saved parameters; ``RnnlmTrainer.load_checkpoint`` resumes it."""
    import importlib

    header, arrays = read_file(path)
    name = header.get("class")
    if name is None:
        return _params_in_order(arrays, path)
    if name not in _CLASSES:  # the class's module registers it on import
        module = name.rsplit(".", 1)[0]
        if module.split(".")[0] == "fastnlp":
            try:
                importlib.import_module(module)
            except ImportError:
                pass
    cls = _CLASSES.get(name)
    if cls is None:
        raise ValueError(f"{path} holds a {name}, which fastnlp cannot build (not a fastnlp class)")
    reader = getattr(cls, "_from_file", None)
    if reader is not None:
        return reader(header, arrays, path)
    return _build_model(cls, header, arrays, path)


def _params_in_order(arrays: dict, path) -> list:
    by_index = {}
    for key in arrays:
        match = _PARAM_KEY.fullmatch(key)
        if match:
            by_index[int(match.group(1))] = arrays[key]
    if set(by_index) != set(range(len(by_index))):
        raise ValueError(f"{path}: the parameters are not numbered 0..{len(by_index) - 1}; the file is damaged")
    return [by_index[i] for i in range(len(by_index))]


def _build_model(cls, header, arrays, path):
    settings = _decode_settings(header.get("settings", {}), arrays, path)
    try:
        model = cls(**settings)
    except TypeError as err:
        raise ValueError(f"{path}: cannot rebuild {cls.__name__} from its saved settings ({err})") from None
    saved = _params_in_order(arrays, path)
    targets = model.params
    if len(saved) != len(targets):
        raise ValueError(f"{path} holds {len(saved)} params but a {cls.__name__} with its settings has {len(targets)}")
    for i, (t, a) in enumerate(zip(targets, saved)):
        if tuple(t.shape) != a.shape:
            raise ValueError(f"{path}: param {i} has shape {a.shape}, but the model's is {tuple(t.shape)}")
    for t, a in zip(targets, saved):
        t[...] = a if not is_device_array(t) else array_like(a, t)  # a model built on a device (set_device)
    vocabulary = header.get("state", {}).get("vocabulary")
    if vocabulary is not None:
        from .text import Vocabulary

        model.vocabulary = Vocabulary(vocabulary)
    return model
