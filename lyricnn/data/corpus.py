"""Corpus loading and the character index (book 6.3.1).

The book builds ``idx_to_char = list(set(corpus_chars))``: the order of a set
of strings depends on ``PYTHONHASHSEED``, so indices change from one process to
the next and a saved model decodes garbage.  lyricnn numbers tokens in order of
first appearance, which depends only on the text.

No MXNet import here (only ``hub``, ``checks`` and ``fileio``): the n-gram
models and the tokenisers read corpora through this module.
"""
import json
import os
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from lyricnn.checks import check_choice, check_int
from lyricnn.fileio import atomic_write_text
from lyricnn.data.hub import locate
from lyricnn.memory import available_memory

JAY_LYRICS = "jaychou_lyrics.txt.zip"

# The largest corpus read into memory.  The book's pipeline holds a corpus as a
# str (up to 4 bytes per character) and then as a Python list with one int per
# character (8-byte pointer plus a 28-byte int object beyond the small-int
# cache): about 40 bytes per character, so 1 GiB of text is already ~40 GB of
# lists.  Anything larger is a mistake or a zip bomb (a zip member's declared
# size is checked before inflating it), and is refused up front.
MAX_CORPUS_BYTES = 1 << 30

# Local-file-header magic: a file starting with it is a zip even when it is
# too damaged (truncated) for ``zipfile.is_zipfile`` to recognise it.
_ZIP_MAGIC = b"PK\x03\x04"

class Vocab:
    """A token <-> index table in first-appearance order.

    ``idx_to_token``: list of tokens; ``token_to_idx``: dict token -> index.
    """

    def __init__(self, idx_to_token):
        self.idx_to_token = list(idx_to_token)
        try:
            self.token_to_idx = {t: i for i, t in enumerate(self.idx_to_token)}
        except TypeError:
            raise _unhashable_error("idx_to_token", self.idx_to_token) from None
        if len(self.token_to_idx) != len(self.idx_to_token):
            duplicate = next(t for i, t in enumerate(self.idx_to_token)
                             if self.token_to_idx[t] != i)
            raise ValueError(f"idx_to_token must not contain duplicates, got {duplicate!r} "
                             "twice; build it with Vocab.from_tokens")

    @classmethod
    def from_tokens(cls, tokens):
        """Index every distinct token of ``tokens`` by its first appearance."""
        tokens = list(tokens)
        try:
            return cls(dict.fromkeys(tokens))
        except TypeError:
            raise _unhashable_error("tokens", tokens) from None

    def __len__(self):
        return len(self.idx_to_token)

    def __contains__(self, token):
        return token in self.token_to_idx

    def __eq__(self, other):
        return isinstance(other, Vocab) and self.idx_to_token == other.idx_to_token

    def index(self, token):
        """Index of one token; ``ValueError`` naming it when it is unknown."""
        try:
            return self.token_to_idx[token]
        except KeyError:
            raise ValueError(f"token {token!r} is not in the vocabulary") from None

    def to_indices(self, tokens):
        return [self.index(t) for t in tokens]

    def to_tokens(self, indices):
        return [self.idx_to_token[int(i)] for i in indices]

    def to_json(self):
        return json.dumps({"idx_to_token": self.idx_to_token}, ensure_ascii=False)

    @classmethod
    def from_json(cls, text):
        """Inverse of ``to_json``; ``ValueError`` saying what is wrong with ``text``."""
        data = json.loads(text)  # json.JSONDecodeError is a ValueError
        tokens = data.get("idx_to_token") if isinstance(data, dict) else None
        if not isinstance(tokens, list):
            raise ValueError('a vocabulary must be a JSON object {"idx_to_token": [tokens...]}, '
                             f"got {text[:80]!r}")
        return cls(tokens)

    def save(self, path):
        """Write the vocabulary as JSON, atomically (``fileio.atomic_write_text``)."""
        atomic_write_text(path, self.to_json())

    @classmethod
    def load(cls, path):
        try:
            return cls.from_json(Path(path).read_text(encoding="utf-8"))
        except ValueError as err:  # also UnicodeDecodeError, JSONDecodeError
            raise ValueError(f"{path}: not a vocabulary file: {err}") from None


#: The splits of a ``Corpus``.
SPLITS = ("train", "valid", "test")


@dataclass(repr=False)  # the default repr would print every index of Penn Treebank
class Corpus:
    """A text as token indices: ``vocab`` built from ``train``; ``train``, ``valid`` and
    ``test`` lists of indices (``None`` for a split the corpus lacks); ``tokenizer``
    the name of what cut the text (``'char'``, ``'whitespace'`` or ``'jieba'``)."""

    vocab: Vocab
    train: List[int]
    valid: Optional[List[int]] = None
    test: Optional[List[int]] = None
    tokenizer: str = "char"

    def split(self, name):
        """The indices of split ``name``; ``ValueError`` when the corpus has no such split."""
        check_choice("split", name, SPLITS)
        indices = getattr(self, name)
        if indices is None:
            raise ValueError(f"the corpus has no {name} split; build it with "
                             f"word_corpus(..., {name}_text=...)")
        return indices

    @property
    def vocab_size(self):
        return len(self.vocab)

    def __repr__(self):
        sizes = ", ".join(f"{name} {len(getattr(self, name)):,}" for name in SPLITS
                          if getattr(self, name) is not None)
        return f"Corpus({self.vocab_size:,} types, {self.tokenizer} tokens: {sizes})"


def _unhashable_error(name, tokens):
    """``ValueError`` naming the first token that cannot be a dict key, and its type."""
    for token in tokens:
        try:
            hash(token)
        except TypeError:
            return ValueError(
                f"{name} must be hashable tokens (str, int, tuple...), got a "
                f"{type(token).__name__}: {token!r:.60}; pass a flat sequence of tokens, "
                "e.g. a str or a list of str")
    return ValueError(f"{name} must be hashable tokens")


def _check_corpus_file(path):
    """Refuse anything but a readable regular file, saying what ``path`` is instead.

    A FIFO would block ``read_bytes`` forever and ``/dev/zero`` never ends, so
    the kind is checked before opening.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise FileNotFoundError(f"corpus file {str(path)!r} is a symlink to "
                                    f"{os.readlink(path)!r}, which does not exist") from None
        raise FileNotFoundError(f"corpus file {str(path)!r} does not exist") from None
    except NotADirectoryError:
        raise FileNotFoundError(f"corpus file {str(path)!r} does not exist "
                                "(a part of the path is a file, not a folder)") from None
    kinds = [(stat.S_ISDIR, "a folder, not a file; pass the .txt or .zip file inside it"),
             (stat.S_ISFIFO, "a named pipe (FIFO), not a regular file; save the text to a "
                             "file and pass that"),
             (stat.S_ISCHR, "a character device (like /dev/null), not a regular file; pass "
                            "a .txt or .zip file"),
             (stat.S_ISBLK, "a block device, not a regular file; pass a .txt or .zip file"),
             (stat.S_ISSOCK, "a socket, not a regular file; pass a .txt or .zip file")]
    for test, what in kinds:
        if test(st.st_mode):
            raise ValueError(f"corpus path {str(path)!r} is {what}")
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"corpus path {str(path)!r} is not a regular file")
    _check_size(path, st.st_size)
    if not os.access(path, os.R_OK):
        raise PermissionError(f"corpus file {str(path)!r} is not readable (permission "
                              "denied); fix its permissions or copy it somewhere readable")


#: Memory a training run holds per byte of corpus file: the file's bytes and its text
#: (up to 4 bytes a character), the characters' indices as Python ints in a list (8-byte
#: pointers, 28-byte ints), a float32 copy for the samplers, the training and held-out
#: splits: about 40 bytes per character, so 40 per byte bounds it for any UTF-8 text.
MEMORY_PER_CORPUS_BYTE = 40
#: Share of the available memory a corpus may take.
CORPUS_MEMORY_SHARE = 0.5


def _check_size(what, size):
    if size > MAX_CORPUS_BYTES:
        raise ValueError(
            f"corpus {what} is {size:,} bytes; lyricnn reads at most {MAX_CORPUS_BYTES:,} "
            "bytes (a corpus is held in memory at ~40 bytes per character); use a smaller "
            "part of it")
    need, have = MEMORY_PER_CORPUS_BYTE * size, available_memory()
    if have is not None and need > CORPUS_MEMORY_SHARE * have:
        raise ValueError(
            f"corpus {what} is {size / 2**20:,.0f} MiB; training holds about "
            f"{MEMORY_PER_CORPUS_BYTE} bytes per character of it in memory, "
            f"{need / 2**30:.1f} GiB, more than the {CORPUS_MEMORY_SHARE * have / 2**30:.1f} "
            "GiB this machine can spare; use a smaller part of it")


def _corrupt_zip(path, err):
    return ValueError(f"{path} is a corrupt zip file ({err}); replace it with an intact "
                      "copy (download it again) or pass the extracted .txt file")


def read_zip_member(path, member=None):
    """Bytes of one member of zip ``path``; ``member=None`` picks the text member.

    Without ``member`` the zip must hold one ``.txt`` member, or one named like
    the archive (``jaychou_lyrics.txt.zip`` -> ``jaychou_lyrics.txt``).  A
    damaged archive (bad CRC, truncated, bad compressed data) raises
    ``ValueError`` saying it is corrupt, never a ``zipfile`` traceback.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zin:
            if member is None:
                members = [n for n in zin.namelist() if n.endswith(".txt")]
                wanted = path.name[: -len(".zip")] if path.name.endswith(".zip") else None
                if wanted in members:
                    members = [wanted]
                if len(members) != 1:
                    raise ValueError(
                        f"{path}: expected exactly one .txt member, found {members}; "
                        "pass the extracted .txt file instead")
                member = members[0]
            try:
                info = zin.getinfo(member)
            except KeyError:
                raise ValueError(f"{path} has no member {member!r}; is it the right "
                                 "archive?") from None
            _check_size(f"{path}:{member}", info.file_size)
            return zin.read(info)
    except (zipfile.BadZipFile, zlib.error, EOFError) as err:
        raise _corrupt_zip(path, err) from None
    except RuntimeError as err:  # zipfile's "File ... is encrypted, password required"
        raise ValueError(f"{path}: {err}; lyricnn reads unencrypted zips only") from None
    except NotImplementedError as err:  # an unsupported compression method
        raise ValueError(f"{path}: {err}; re-pack it with deflate or pass the extracted "
                         ".txt file") from None


def read_text(path):
    """Read a UTF-8 ``.txt`` file, or the text member of a ``.zip`` file.

    A zip must hold one ``.txt`` member, or one named like the archive
    (``jaychou_lyrics.txt.zip`` -> ``jaychou_lyrics.txt``).  A leading UTF-8
    byte-order mark (Windows Notepad writes one) is dropped: it is not text.
    ``ValueError`` for a folder, FIFO or device, a corrupt zip, text that is not
    UTF-8, and an empty corpus; ``FileNotFoundError`` for a missing file.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or a path, got {path!r} ({type(path).__name__})")
    path = Path(path)
    _check_corpus_file(path)
    with open(path, "rb") as f:
        magic = f.read(len(_ZIP_MAGIC))
    if zipfile.is_zipfile(path):
        raw = read_zip_member(path)
    elif magic == _ZIP_MAGIC:
        raise _corrupt_zip(path, "truncated: no central directory")
    else:
        raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")  # -sig: drops one leading BOM, if any
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text ({err}); re-save it as UTF-8, e.g. "
                         f"iconv -f GB18030 -t UTF-8 {path.name} > utf8.txt") from None
    if not text:
        what = "holds only a byte-order mark" if raw else "is empty (0 bytes)"
        raise ValueError(f"the corpus is empty: {path} {what}; pass a file with text in it")
    return text


def load_corpus_chars(path=None, num_chars=10000):
    """The book's preprocessing: read, newlines to spaces, keep ``num_chars``.

    ``path=None`` uses the Jay Chou lyrics from the data hub; ``num_chars=None``
    keeps the whole text.
    """
    if num_chars is not None:
        num_chars = check_int("num_chars", num_chars, hint="pass None for the whole text")
    text = read_text(locate(JAY_LYRICS) if path is None else path)
    text = text.replace("\n", " ").replace("\r", " ")
    return text if num_chars is None else text[:num_chars]


def load_data_jay_lyrics(path=None, num_chars=10000):
    """Load the lyrics as in d2lzh (book 6.3.1), with a deterministic index.

    Returns ``(corpus_indices, char_to_idx, idx_to_char, vocab_size)``:
    ``corpus_indices`` a list of ints, one per character.
    """
    corpus_chars = load_corpus_chars(path, num_chars)
    vocab = Vocab.from_tokens(corpus_chars)
    corpus_indices = [vocab.token_to_idx[c] for c in corpus_chars]
    return corpus_indices, vocab.token_to_idx, vocab.idx_to_token, len(vocab)
