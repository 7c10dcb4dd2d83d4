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


def save_params(path, params, dtype=None) -> Path:
    """Save a list of arrays (or a model with ``.params``) to ``path`` (.npz), atomically.

    Only numeric arrays are accepted (anything else would need pickle); they are checked before
    the file is touched. ``dtype=np.float16`` stores half-precision weights (half the file);
    values beyond the range of ``dtype`` raise ``OverflowError`` instead of becoming inf or
    wrapping, and an integer ``dtype`` refuses fractions, NaN and inf (nothing is written).
    """
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
    return atomic_write(path, lambda f: np.savez(f, **arrays))


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
        if data.files and not by_index:
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
