"""Atomic file writes: the one temp-file-fsync-rename in lyricnn.

A file written here is either the complete new content or, after a crash or
an error at any point, the previous file untouched: the bytes go to a temp
file in the same folder (same file system, so the rename is atomic), which is
fsynced, given the mode a plain ``open()`` would give it (``0o666 & ~umask``;
``mkstemp`` makes it 0600), renamed over the target with ``os.replace``, and
the folder is fsynced so the rename itself survives a power cut.

Temp files are named ``.<target name>.<random>.tmp`` in the target's folder
(``TEMP_SUFFIX``); an error removes them, only a killed process can leave one.
No MXNet import here.
"""
import contextlib
import errno
import os
import re
import tempfile
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "current_umask",
           "fsync_path", "TEMP_SUFFIX"]

TEMP_SUFFIX = ".tmp"

# fsync on a folder is refused by some file systems and platforms; nothing
# more can be done there, and the data itself was already fsynced.
_DIR_FSYNC_UNSUPPORTED = {errno.EINVAL, errno.EBADF, errno.ENOTSUP, errno.EACCES, errno.EPERM}


def current_umask():
    """The process umask, read without changing it where the OS allows.

    Linux reports it in ``/proc/self/status``; elsewhere ``os.umask`` must set
    a value to return the old one, which is restored at once (a race with a
    thread creating files at that instant is the documented price).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            match = re.search(r"^Umask:\s*([0-7]+)$", f.read(), re.M)
        if match:
            return int(match.group(1), 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_path(path):
    """fsync a file or a folder by path (a folder: its entries, i.e. renames into it)."""
    path = os.fspath(path)
    is_dir = os.path.isdir(path)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) * is_dir)
    try:
        os.fsync(fd)
    except OSError as err:
        if not (is_dir and err.errno in _DIR_FSYNC_UNSUPPORTED):
            raise
    finally:
        os.close(fd)


def _check_target(path):
    folder = path.parent
    if path.is_dir():
        raise IsADirectoryError(
            f"cannot write {str(path)!r}: it is a folder; give a file name inside it")
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise FileNotFoundError(
            f"cannot write {str(path)!r}: the folder {str(folder)!r} {what}; create it first")


@contextlib.contextmanager
def _named(path):
    """Give an ``OSError`` without a file name (``write``, ``fsync``: "No space left on
    device") the name of the file being written, so that its message says which."""
    try:
        yield
    except OSError as err:
        if err.filename is None and err.errno is not None:
            raise OSError(err.errno, err.strerror, str(path)) from None
        raise


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temp ``Path`` next to ``path``; on clean exit it becomes ``path``.

    Write the temp file by name (``fig.savefig(tmp)``, ``nd.save(str(tmp), ...)``).
    On clean exit: fsync it, chmod ``0o666 & ~umask``, ``os.replace`` it onto
    ``path``, fsync the folder. On an exception: the temp file is removed, the
    old ``path`` is untouched, and the exception propagates. A symlink at
    ``path`` is replaced by the file (the link's target is not written).
    """
    path = Path(path)
    _check_target(path)
    with _named(path):
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        with _named(path):   # a full disk fails in write() or fsync(): say which file
            yield tmp
            if not tmp.is_file():
                raise FileNotFoundError(
                    f"the temp file {str(tmp)!r} for {str(path)!r} was removed or replaced "
                    "before it could be renamed into place")
            fsync_path(tmp)
            os.chmod(tmp, 0o666 & ~current_umask())
            os.replace(tmp, path)
    finally:
        if tmp.is_file() or tmp.is_symlink():
            tmp.unlink()
    fsync_path(path.parent)


def atomic_write_bytes(path, data):
    """Write ``data`` (bytes-like) to ``path`` atomically; returns ``path`` as a ``Path``."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
    return path


def atomic_write_text(path, text, encoding="utf-8"):
    """Write ``text`` to ``path`` atomically (UTF-8, no newline translation)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return atomic_write_bytes(path, text.encode(encoding))
