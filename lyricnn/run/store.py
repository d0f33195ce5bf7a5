"""Where checkpoints live on disk: file names, the writer's lock, atomic folder swaps,
finding the newest complete checkpoint after a crash. What the files hold is
``lyricnn.run.checkpoint``'s."""
import errno
import hashlib
import json
import logging
import math
import os
import re
import shutil
import stat
from pathlib import Path


from lyricnn.checks import is_integer, is_real
from lyricnn.fileio import TEMP_SUFFIX, fsync_path

try:  # advisory locks: POSIX only
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

log = logging.getLogger(__name__)


FORMAT = 2
CONFIG, VOCAB, PARAMS, HISTORY, RNG, CORPUS, MANIFEST = (
    "config.json", "vocab.json", "params.params", "history.json", "rng.json", "corpus.txt",
    "manifest.json")
#: The files the manifest covers, in the order they are written.
DATA_FILES = (CONFIG, VOCAB, PARAMS, HISTORY, RNG, CORPUS)
#: NT-ASGD's SGD iterate (``lyricnn.training.averaging``): present, and in the manifest,
#: only once averaging has started; the model's own file then holds the mean.
ITERATE = "iterate.params"
OPTIONAL_FILES = (ITERATE,)
#: Written first into every folder a save makes: how a folder under a leftover name
#: (``.NAME.old``, ``.NAME.tmp-*``) is known to be lyricnn's and not a user's.
MARKER = ".lyricnn-save"
#: Every file a save writes: what replacing a checkpoint folder may replace.
OWN_FILES = DATA_FILES + OPTIONAL_FILES + (MANIFEST, MARKER)
FILES = DATA_FILES + (MANIFEST,)
#: A reader retries this often when a save replaces the folder while it reads.
READ_ATTEMPTS = 5

FIX = "restore the folder from a backup, or train again with --force"


class CheckpointError(ValueError):
    """A checkpoint is missing, incomplete, corrupted, or does not match its own files."""


class NotACheckpoint(CheckpointError):
    """The path given holds no checkpoint at all (a file, or a folder without one)."""


class CheckpointLocked(RuntimeError):
    """Another process is writing this checkpoint."""


def checkpoint_error(folder, name, problem, fix=FIX):
    return CheckpointError(f"checkpoint {folder}: {name}: {problem}; {fix}")


def is_int_in(value, low, high):
    return is_integer(value) and low <= value <= high


def is_number(value):
    return is_real(value) and math.isfinite(value)


# -- the lock -----------------------------------------------------------------------

def lock_path(path):
    path = Path(path)
    return path.with_name(f".{path.name}.lock")


class CheckpointLock:
    """An exclusive advisory lock on the checkpoint at ``path`` (``.NAME.lock`` beside it).

    ``acquire`` fails at once with ``CheckpointLocked`` naming the holder's
    pid if another process writes this checkpoint.  The lock dies with the
    process (a killed writer never leaves it held); the file stays.
    """

    def __init__(self, path):
        self.path = writable_path(path)
        self.file = lock_path(self.path)
        self._fd = None

    @property
    def held(self):
        return self._fd is not None

    def acquire(self):
        if self._fd is not None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:   # never through a link (it would overwrite what it points to), never a FIFO
            fd = os.open(self.file, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK,
                         0o666)
        except OSError as err:
            raise CheckpointError(f"the lock file {self.file} cannot be used ({err.strerror}): "
                                  "it must be a regular file lyricnn creates; remove it") \
                from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise CheckpointError(f"the lock file {self.file} is not a regular file; remove it")
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                holder = os.read(fd, 32).decode("ascii", "replace").strip() or "?"
                os.close(fd)
                if err.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
                raise CheckpointLocked(
                    f"{self.path} is being written by another lyricnn process (pid "
                    f"{holder}, lock {self.file}); wait for it to finish or choose another "
                    "--out") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        self._fd = fd
        return self

    def release(self):
        if self._fd is not None:
            os.close(self._fd)  # closing releases the flock
            self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def writable_path(path):
    """``path``, or the folder it links to: a symlinked checkpoint is written through.

    A dangling link is refused: writing would replace the link by a folder.
    """
    path = Path(path).absolute()
    if path.is_symlink():
        target = path.resolve()
        if not target.is_dir() and target.exists():
            raise CheckpointError(f"{path} is a symlink to {target}, which is not a folder; "
                                  "remove the link or point it at a folder")
        if not target.exists():
            raise CheckpointError(f"{path} is a symlink to {target}, which does not exist; "
                                  "create that folder or remove the link")
        return target
    return path


# -- writing ------------------------------------------------------------------------

def backup_path(path):
    """Where the previous checkpoint waits while the new one is renamed into place."""
    path = Path(path)
    return path.with_name(f".{path.name}.old")


def temp_prefix(path):
    return f".{Path(path).name}.tmp-"


def is_checkpoint(path):
    """Whether ``path`` is a checkpoint folder, complete or damaged (a config or a manifest)."""
    return (Path(path) / CONFIG).is_file() or (Path(path) / MANIFEST).is_file()


def swap_in(tmp, path):
    """Rename ``tmp`` to ``path``, keeping the old ``path`` until that succeeded.

    Anything in the old ``path`` that a save does not write (a user's notes) is moved
    into ``tmp`` first, one rename each: a save replaces only its own files. (A crash
    in between leaves some in ``tmp`` and some in ``path``; ``recover`` makes ``tmp``,
    complete and of a later epoch, the checkpoint and carries the rest over first.)
    """
    backup, moved = backup_path(path), False
    if path.exists():
        if backup.exists() or backup.is_symlink():
            if not is_leftover(backup) or foreign_entries(backup):
                raise CheckpointError(f"{backup} is in the way of the save and is not one "
                                      "lyricnn left: move it elsewhere")
            remove_folder(backup)   # ``path`` is complete (recover ran), so it can go
        if path.is_dir() and not path.is_symlink():
            carry_foreign(path, tmp)
        os.rename(path, backup)
        moved = True
    os.rename(tmp, path)
    fsync_path(path.parent)
    if moved:   # only what this save set aside (a user's own .NAME.old is not ours)
        remove_folder(backup)


def remove_folder(folder):
    """Remove ``folder`` (or a file or link). A save's folder loses its ``MARKER`` last: a
    kill in the middle leaves a folder still known as lyricnn's (``is_leftover``), which
    the next run finishes removing, not one that looks like a user's."""
    if folder.is_symlink() or folder.is_file():
        folder.unlink()
        return
    marker = folder / MARKER
    for entry in sorted(folder.iterdir()):
        if entry.name == MARKER:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    if marker.exists():
        marker.unlink()
    folder.rmdir()


# -- reading ------------------------------------------------------------------------

#: Largest JSON file of a checkpoint read before its manifest says its size (a config,
#: a vocabulary of a million tokens and the history of 10^5 epochs are far below it).
MAX_JSON_BYTES = 64 << 20
#: Largest parameter or corpus file of a checkpoint without a manifest (format 1).
MAX_DATA_BYTES = 4 << 30


def _read_regular(name, dir_fd, limit):
    """The bytes of file ``name`` (in the folder of ``dir_fd``), at most ``limit + 1`` of them.

    Opened without blocking and refused unless a regular file (a FIFO or device in a
    checkpoint would hang or never end); one byte past ``limit`` is read so that a file
    grown past its stated size is seen as such, never read whole.
    """
    fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK, dir_fd=dir_fd)
    try:
        info = os.fstat(fd)
    except OSError:
        os.close(fd)
        raise
    if not stat.S_ISREG(info.st_mode):   # a folder too: fdopen would fail without its name
        os.close(fd)
        raise NotARegularFile(name)
    with os.fdopen(fd, "rb") as f:
        # Never ask for more than is there: a manifest may state any size (2**62).
        try:
            return f.read(min(limit, info.st_size) + 1)
        except OSError as err:   # EIO and the like: say which file
            raise OSError(err.errno, err.strerror, name) from None


class NotARegularFile(OSError):
    """A checkpoint file is a FIFO, a device or a folder: it is not read."""


def _stated_sizes(manifest_bytes):
    """``{name: bytes}`` the manifest states, or ``{}`` if it cannot be read."""
    try:
        files = json.loads(manifest_bytes.decode("utf-8"))["files"]
        return {name: int(entry["bytes"]) for name, entry in files.items()
                if name in DATA_FILES + OPTIONAL_FILES and is_int_in(entry["bytes"], 0, 2**63)}
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return {}


def _format1(config_bytes):
    """Whether ``config.json``'s bytes say format 1 (which had no manifest)."""
    try:
        return json.loads(config_bytes.decode("utf-8")).get("format") == 1
    except (AttributeError, ValueError, RecursionError):
        return False


def read_folder(folder):
    """``{name: bytes}`` of every file present, read through one directory handle.

    If a writer renames the folder away meanwhile, the handle still reads the
    folder opened; a file deleted under it shows as missing (a retry follows).
    Reading is bounded: the manifest first (at most ``MAX_JSON_BYTES``), then each
    file at most one byte past the size the manifest states (without a manifest,
    ``MAX_JSON_BYTES`` or ``MAX_DATA_BYTES``); a file that is not a regular file
    raises ``CheckpointError`` naming it.
    """
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    dir_fd = os.open(folder, flags)
    try:
        contents, sizes = {}, {}
        for name in (MANIFEST,) + DATA_FILES + OPTIONAL_FILES:   # config.json second
            if name not in (MANIFEST, CONFIG) and MANIFEST not in contents and \
                    not _format1(contents.get(CONFIG)):
                break   # no manifest and not format 1: refused as incomplete, nothing big read
            if name in OPTIONAL_FILES and name not in sizes:
                continue   # read only when the manifest lists it
            limit = sizes.get(name, MAX_JSON_BYTES if name.endswith(".json") else MAX_DATA_BYTES)
            try:
                contents[name] = _read_regular(name, dir_fd, limit)
            except FileNotFoundError:
                continue
            except NotARegularFile:
                raise checkpoint_error(folder, name, "is not a regular file (a FIFO, a device "
                                       "or a folder): it is not read") from None
            if name == MANIFEST:
                sizes = _stated_sizes(contents[name])
        return contents, os.fstat(dir_fd).st_ino
    finally:
        os.close(dir_fd)


def _read_json(folder, name):
    """The JSON value of ``folder/name``, read as ``read_folder`` reads (bounded, regular
    files only); ``OSError`` or ``ValueError`` when it cannot be had."""
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        data = _read_regular(name, fd, MAX_JSON_BYTES)
    finally:
        os.close(fd)
    return json.loads(data.decode("utf-8"))


def same_run(a, b):
    """Whether checkpoint folders ``a`` and ``b`` hold the same run: the same ``config``
    in ``config.json`` (model, sizes, vocabulary, corpus hash, seed), which a run keeps
    from its first epoch to its last. An unreadable config is no run's."""
    def config(folder):
        try:
            return _read_json(folder, CONFIG).get("config")
        except (OSError, ValueError, AttributeError, RecursionError):
            return None
    found = config(a)
    return found is not None and found == config(b)


def save_order(folder):
    """Which of two saves of one run is the later: ``(epoch, created_ns)`` from the
    manifest; ``(-1, -1)`` without a readable one, ``(0, 0)`` for format 1.

    The epoch comes first: within a run it only grows, while the wall clock can go back
    (a clock set back, a machine change) or be copied with an old folder; the save time
    only breaks a tie.
    """
    try:
        data = _read_json(folder, MANIFEST)
        epoch, created = data.get("epoch", 0), data["created_ns"]   # early saves: no epoch
        valid = is_int_in(epoch, 0, 2**63) and is_int_in(created, 0, 2**63)
        return (epoch, created) if valid else (-1, -1)
    except FileNotFoundError:
        try:
            config = _read_json(folder, CONFIG)
            return (0, 0) if config.get("format") == 1 else (-1, -1)
        except (OSError, ValueError, AttributeError, RecursionError):
            return (-1, -1)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return (-1, -1)


def leftovers_of(path):
    """``.NAME.old`` and ``.NAME.tmp-*`` beside ``path`` that interrupted saves left: folders
    (not links) empty or holding a file a save writes. Anything else under those names is
    the user's: never used, never removed (``swap_in`` refuses to work around it)."""
    parent, prefix = path.parent, temp_prefix(path)
    if not path.name or not parent.is_dir():   # "/": nothing beside it
        return []
    found = [p for p in parent.iterdir()
             if (p.name == backup_path(path).name or p.name.startswith(prefix))
             and is_leftover(p)]
    return sorted(found)


#: The temp file ``atomic_path`` writes a file through: ``mkstemp``'s ``.NAME.XXXXXXXX.tmp``
#: (8 characters of ``[a-z0-9_]``), left by a crash in the middle of that write.
_TEMP_NAME = re.compile(r"\.(?P<own>.+)\.[a-z0-9_]{8}" + re.escape(TEMP_SUFFIX))


def _own(name):
    """A name a save writes: one of ``OWN_FILES``, or the temp file of one."""
    if name in OWN_FILES:
        return True
    match = _TEMP_NAME.fullmatch(name)
    return match is not None and match.group("own") in OWN_FILES


def is_leftover(folder):
    """Whether ``folder`` (under a leftover name) is a save's own: a real folder, empty or
    holding the ``MARKER`` every save writes first (saves before the marker existed: a
    folder whose manifest verifies). A user's folder under such a name, even one holding
    files with a checkpoint's names, is not."""
    if folder.is_symlink() or not folder.is_dir():
        return False
    try:
        names = os.listdir(folder)
    except OSError:
        return False
    if not names or MARKER in names:
        return True
    if MANIFEST not in names:
        return False
    try:
        read_folder(folder)     # an earlier lyricnn's complete save: its manifest verifies
        return True
    except (OSError, ValueError, CheckpointError):
        return False


def foreign_entries(folder):
    """The entries of a checkpoint folder that no save writes (a user's notes)."""
    try:
        return sorted(n for n in os.listdir(folder) if not _own(n))
    except OSError:
        return []


def carry_foreign(source, target):
    """Move ``source``'s foreign entries into ``target`` (one rename each; a name already
    in ``target`` gets a ``.recovered`` suffix): before ``source`` is removed."""
    for name in foreign_entries(source):
        destination = target / name
        k = 1
        while destination.exists() or destination.is_symlink():
            destination, k = target / f"{name}.recovered{'' if k == 1 else k}", k + 1
        os.rename(source / name, destination)


def _newest(path):
    """The folder with the newest complete-looking checkpoint among ``path`` and leftovers.

    For a symlinked ``path`` the leftovers are beside its target, where saves write.
    """
    real = path.resolve() if path.is_symlink() else path
    leftovers = [p for p in leftovers_of(real) if p.is_dir() and not p.is_symlink()]
    if is_checkpoint(path):   # a leftover of another run (model, corpus) never stands in
        candidates = [path] + [p for p in leftovers if same_run(p, path)]
    else:
        candidates = leftovers
    dated = [(save_order(p), p != path, p) for p in candidates]
    # The folder itself wins a tie; a temp folder without a manifest never wins.
    dated = [d for d in dated if d[0][0] >= 0 or d[2] == path]
    if not dated:
        return None
    return max(dated, key=lambda d: (d[0], not d[1]))[2]


def find_checkpoint(path):
    """The checkpoint folder for ``path``: ``path`` itself or ``path/checkpoint``.

    A run directory written by the CLI holds its checkpoint in ``checkpoint/``.
    If an interrupted save left a newer complete checkpoint beside it (or
    none in place), that one is returned, with a warning.  Raises
    ``FileNotFoundError`` if ``path`` does not exist, ``CheckpointError`` if it
    holds no checkpoint.
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink() and not leftovers_of(path.absolute()):
        raise FileNotFoundError(f"checkpoint folder {str(path)!r} does not exist")
    if path.exists() and not path.is_dir():
        raise NotACheckpoint(f"{path} is a file, not a checkpoint folder; give the run "
                             "folder (or its checkpoint/ folder)")
    for candidate in (path, path / "checkpoint"):
        candidate = candidate.absolute()
        newest = _newest(candidate)
        if newest is not None:
            if newest != candidate:
                log.warning("%s: an interrupted save left a newer complete checkpoint in %s; "
                            "using it (the next training run puts it in place)",
                            candidate, newest.name)
            return newest
    raise NotACheckpoint(f"{path} holds no lyricnn checkpoint (no {CONFIG}); give the run "
                         "folder that `lyricnn train --out` wrote")


def replaced(folder, inode):
    try:
        return inode is None or os.stat(folder).st_ino != inode
    except OSError:
        return True


def sha256(data):
    return hashlib.sha256(data).hexdigest()
