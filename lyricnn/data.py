"""Corpus loading and the character index (book 6.3.1).

The book builds ``idx_to_char = list(set(corpus_chars))``: the order of a set
of strings depends on ``PYTHONHASHSEED``, so indices change from one process to
the next and a saved model decodes garbage.  lyricnn numbers tokens in order of
first appearance, which depends only on the text.
"""
import json
import os
import tempfile
import zipfile
from pathlib import Path

from .hub import locate

JAY_LYRICS = "jaychou_lyrics.txt.zip"


class Vocab:
    """A token <-> index table in first-appearance order.

    ``idx_to_token``: list of tokens; ``token_to_idx``: dict token -> index.
    """

    def __init__(self, idx_to_token):
        self.idx_to_token = list(idx_to_token)
        self.token_to_idx = {t: i for i, t in enumerate(self.idx_to_token)}
        if len(self.token_to_idx) != len(self.idx_to_token):
            raise ValueError("idx_to_token must not contain duplicates")

    @classmethod
    def from_tokens(cls, tokens):
        """Index every distinct token of ``tokens`` by its first appearance."""
        return cls(dict.fromkeys(tokens))

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
        return cls(json.loads(text)["idx_to_token"])

    def save(self, path):
        """Write the vocabulary as JSON, atomically (temp file, then rename)."""
        atomic_write_text(path, self.to_json())

    @classmethod
    def load(cls, path):
        return cls.from_json(Path(path).read_text(encoding="utf-8"))


def atomic_write_text(path, text):
    """Write ``text`` to ``path`` through a temp file in the same folder."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def read_text(path):
    """Read a UTF-8 ``.txt`` file, or the text member of a ``.zip`` file.

    A zip must hold one ``.txt`` member, or one named like the archive
    (``jaychou_lyrics.txt.zip`` -> ``jaychou_lyrics.txt``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"corpus file {str(path)!r} does not exist")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zin:
            members = [n for n in zin.namelist() if n.endswith(".txt")]
            wanted = path.name[: -len(".zip")] if path.name.endswith(".zip") else None
            if wanted in members:
                members = [wanted]
            if len(members) != 1:
                raise ValueError(
                    f"{path}: expected exactly one .txt member, found {members}; "
                    "pass the extracted .txt file instead"
                )
            raw = zin.read(members[0])
    else:
        raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text: {err}") from None


def load_corpus_chars(path=None, num_chars=10000):
    """The book's preprocessing: read, newlines to spaces, keep ``num_chars``.

    ``path=None`` uses the Jay Chou lyrics from the data hub; ``num_chars=None``
    keeps the whole text.
    """
    if num_chars is not None and (not isinstance(num_chars, int) or num_chars < 1):
        raise ValueError(f"num_chars must be a positive int or None, got {num_chars!r}")
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
