"""Atomic file writes: write to a temporary file in the target folder, then ``os.replace`` it into place.

A crash (or an exception inside the ``with`` block) never leaves a half-written target: either the old file
is still there untouched, or the new file is complete. The temporary file lives in the same folder so the
final ``os.replace`` is a rename on one file system (atomic on POSIX and Windows). A process killed during the
write leaves its temporary file (``.<name>.<8 random characters>.tmp``) behind; :func:`remove_stale_temporaries`
deletes those of a folder (train.py calls it on the run folder at start). A full disk raises
:class:`DiskFullError`, which says so and that the previous file is intact.

Usage::

    with atomic_write(path, mode="wb") as f:     # f is an open file object
        torch.save(state, f)
    atomic_write_text(folder / "scores.txt", text)
    atomic_write_json(folder / "scores.json", {"mpjpe": 12.3})
"""
import contextlib
import errno
import json
import os
import re
import stat
import tempfile
from pathlib import Path

from utils.errors import InputError

__all__ = ["atomic_write", "atomic_write_text", "atomic_write_json", "remove_stale_temporaries", "DiskFullError"]

_TEMPORARY_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")  # mkstemp(prefix=".<name>.", suffix=".tmp")
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(InputError, OSError):
    """The file system ran out of space (or quota) while a file was written atomically."""


@contextlib.contextmanager
def atomic_write(path, mode="w", encoding=None):
    """Open a temporary file beside ``path`` for writing; on success move it onto ``path``.

    Args:
        path: target file (str or Path). Its folder must exist.
        mode: ``"w"`` (text) or ``"wb"`` (binary).
        encoding: text encoding (default utf-8 for text mode; ignored for binary).

    Yields:
        the open file object. On an exception inside the block the temporary file is removed, the target is
        left as it was, and the exception propagates.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write: mode must be 'w' or 'wb', got {mode!r} (for {path})")
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"atomic_write: folder {path.parent} does not exist (writing {path.name})")
    if mode == "w" and encoding is None:
        encoding = "utf-8"
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=encoding if mode == "w" else None) as f:
            os.chmod(tmp_name, _file_permissions(path))  # mkstemp creates 0600; give the usual permissions
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp_name)
        if _is_out_of_space(err):
            kept = f"the previous {path.name} is unchanged" if path.exists() else f"{path.name} was not written"
            raise DiskFullError(errno.ENOSPC, f"no space left on the device while writing {path}: {kept}; free "
                                              f"space in {path.parent} and run again") from None
        raise


def _is_out_of_space(err: BaseException | None) -> bool:
    """True when ``err`` or an exception it was raised from is an out-of-space / quota OSError (torch and numpy wrap
    the OSError of a failed write in their own exceptions)."""
    while err is not None:
        if isinstance(err, OSError) and err.errno in _NO_SPACE:
            return True
        err = err.__cause__ or err.__context__
    return False


def remove_stale_temporaries(folder) -> list[Path]:
    """Delete the temporary files interrupted atomic writes left directly in ``folder``; returns their paths.

    Call it only when no other process is writing into ``folder`` (a run's start).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [p for p in folder.iterdir() if _TEMPORARY_NAME.match(p.name) and p.is_file() and not p.is_symlink()]
    for path in stale:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return stale


def _file_permissions(path):
    """Permission bits of the existing target, else those ``open()`` would give a new file (0666 & ~umask)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def atomic_write_text(path, text, encoding="utf-8"):
    """Write the string ``text`` to ``path`` atomically."""
    with atomic_write(path, mode="w", encoding=encoding) as f:
        f.write(text)


def atomic_write_json(path, obj, indent=2):
    """Serialise ``obj`` as JSON (``indent`` spaces, keys in insertion order) to ``path`` atomically.

    The object is serialised before the file is opened, so an unserialisable object leaves the target
    untouched and raises ``TypeError``.
    """
    text = json.dumps(obj, indent=indent) + "\n"
    atomic_write_text(path, text)
