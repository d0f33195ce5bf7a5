"""Data hub: find a registered data file on disk, or download it and check its sha1.

d2lzh opens ``'../data/jaychou_lyrics.txt.zip'``, which only works when the
notebook's working directory happens to sit next to a ``data`` folder.  lyricnn
looks in a fixed search order instead (``locate``) and downloads as a last
resort, like d2l's ``DATA_HUB``.
"""
import hashlib
import logging
import os
import urllib.error
import urllib.request
from pathlib import Path

from lyricnn.checks import check_number
from lyricnn.fileio import atomic_path

log = logging.getLogger(__name__)

#: name -> (url, sha1).  URLs are where the book's authors publish the files.
DATA_HUB = {
    "jaychou_lyrics.txt.zip": (
        "https://raw.githubusercontent.com/d2l-ai/d2l-zh/v1/data/jaychou_lyrics.txt.zip",
        "9529987e701a4f37048ab778270a5dde9a762a0b",
    ),
    "ptb.zip": (
        "http://d2l-data.s3-accelerate.amazonaws.com/ptb.zip",
        "319d85e578af0cdc590547f26231e4e31cdf1e42",
    ),
}

ENV_VAR = "LYRICNN_DATA_DIR"
# A source checkout keeps its data next to the package (the Makefile seeds it).
PROJECT_DATA_DIR = Path(__file__).resolve().parents[2] / "data"


def cache_dir():
    """Where downloads go: ``$LYRICNN_DATA_DIR`` if set, else ``~/.cache/lyricnn``."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lyricnn"


def search_dirs():
    """Folders searched for a data file, in order.

    ``$LYRICNN_DATA_DIR``, the user cache, the source checkout's ``data/``, and
    last the book's ``../data`` convention (relative to the working directory).
    """
    dirs = []
    if os.environ.get(ENV_VAR):
        dirs.append(Path(os.environ[ENV_VAR]).expanduser())
    dirs += [cache_dir(), PROJECT_DATA_DIR, Path.cwd().parent / "data"]
    unique = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


def sha1sum(path):
    """Hex sha1 of a file, read in 1 MiB chunks."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _entry(name):
    try:
        return DATA_HUB[name]
    except (KeyError, TypeError):  # TypeError: an unhashable name
        raise ValueError(f"unknown data file {name!r}; registered: {sorted(DATA_HUB)}") from None


def locate(name, path=None, download_missing=True):
    """Return the path of registered data file ``name``.

    Search order: the explicit ``path`` (a file, or a folder holding ``name``),
    then ``search_dirs()``; a found file must match its registered sha1.  If
    nothing is found and ``download_missing`` is true, download into
    ``cache_dir()``.
    """
    url, sha1 = _entry(name)
    if path is not None:
        p = Path(path).expanduser()
        p = p / name if p.is_dir() else p
        if not p.is_file():
            raise FileNotFoundError(f"path={str(path)!r}: no file {name!r} there")
        return p
    for d in search_dirs():
        candidate = d / name
        if candidate.is_file():
            if sha1sum(candidate) == sha1:
                return candidate
            log.warning("%s has the wrong sha1; ignoring it", candidate)
    if not download_missing:
        raise FileNotFoundError(_missing_message(name, url, sha1))
    return download(name)


def _missing_message(name, url, sha1):
    places = ", ".join(str(d) for d in search_dirs())
    return (
        f"data file {name!r} not found (looked in: {places}). Download it from {url} "
        f"(sha1 {sha1}) and put it in {cache_dir()} or in a folder named by ${ENV_VAR}."
    )


def download(name, folder=None, url=None, sha1=None, timeout=60):
    """Download registered file ``name`` into ``folder`` (default ``cache_dir()``).

    The bytes go to a temporary file in the same folder, are checked against the
    sha1, and only then renamed into place: a failed or corrupted download
    leaves nothing behind.  ``url``/``sha1`` override the registry (tests, mirrors).
    """
    reg_url, reg_sha1 = _entry(name)
    url, sha1 = url or reg_url, sha1 or reg_sha1
    timeout = check_number("timeout", timeout, minimum=0, low_open=True,
                           hint="seconds to wait for the server")
    folder = Path(folder) if folder is not None else cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    # atomic_path: the bytes land in a temp file that is renamed into place
    # only after the sha1 matched; any error below removes it.
    with atomic_path(target) as tmp:
        h = hashlib.sha1()
        with open(tmp, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    for chunk in iter(lambda: response.read(1 << 20), b""):
                        h.update(chunk)
                        out.write(chunk)
            except (urllib.error.URLError, OSError) as err:
                raise FileNotFoundError(
                    f"could not download {name!r} from {url}: {err}. "
                    + _missing_message(name, url, sha1)
                ) from err
        if h.hexdigest() != sha1:
            raise ValueError(
                f"sha1 mismatch for {name!r} downloaded from {url}: expected {sha1}, "
                f"got {h.hexdigest()}; the file was discarded"
            )
    log.info("downloaded %s to %s", name, target)
    return target
