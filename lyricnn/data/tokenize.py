"""Tokenisation: text -> list of tokens (book 6.1 语言模型, 6.3 数据集).

The book models lyrics one character at a time; the n-gram models of
``lyricnn.ngram.model`` work on any token sequence, so this module offers three ways
to cut a text:

- ``chars``: every character is a token, spaces included (the book's choice);
- ``words``: whitespace-separated words, optionally with an ``<eos>`` token
  after every line (the standard Penn Treebank convention);
- ``segment``: Chinese word segmentation with ``jieba``, an optional
  dependency (``pip install 'lyricnn[segment]'`` or ``pip install jieba``).

``load_ptb`` reads the Penn Treebank splits from the data hub's ``ptb.zip``.
No MXNet import here (only ``checks``, ``data`` and ``hub``).
"""
import logging
from lyricnn.checks import check_choice
from lyricnn.data.corpus import read_zip_member
from lyricnn.data.hub import locate

#: The token that stands for every word outside the vocabulary (PTB's own spelling).
UNK = "<unk>"
#: The end-of-sentence token: predicted and counted like any other word.
EOS = "<eos>"

PTB = "ptb.zip"
PTB_SPLITS = ("train", "valid", "test")

JIEBA_MISSING = (
    "Chinese word segmentation needs the optional package 'jieba': "
    "pip install 'lyricnn[segment]'  (or: pip install jieba)"
)


def _check_text(text):
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")


def chars(text):
    """Characters of ``text`` as a list of 1-char strings (spaces are tokens too)."""
    _check_text(text)
    return list(text)


def words(text, eos=False):
    """Whitespace-separated words of ``text``.

    With ``eos=True`` every non-blank line contributes its words followed by
    ``EOS``, so sentence ends are predicted like words (standard PTB
    evaluation). Blank lines are skipped rather than giving empty sentences.
    """
    _check_text(text)
    if not eos:
        return text.split()
    tokens = []
    for line in text.splitlines():
        line_words = line.split()
        if line_words:
            tokens.extend(line_words)
            tokens.append(EOS)
    return tokens


def segment(text):
    """Chinese words of ``text`` by ``jieba`` (precise mode), as a list of strings.

    ``jieba`` is imported here, not at module import, so lyricnn works without
    it; a missing install raises ``ImportError`` with the pip command.
    """
    _check_text(text)
    try:
        import jieba
    except ImportError:
        raise ImportError(JIEBA_MISSING) from None
    if not jieba.dt.initialized:
        # jieba logs four lines on stderr while it builds its dictionary (every process):
        # quiet for that moment only, the user's level of jieba's logger restored after.
        logger = logging.getLogger("jieba")
        level = logger.level
        logger.setLevel(logging.WARNING)
        try:
            jieba.initialize()
        finally:
            logger.setLevel(level)
    return jieba.lcut(text)


TOKENIZERS = {"char": chars, "word": words, "jieba": segment}


def get_tokenizer(mode="char"):
    """The tokenizer function for ``mode``: ``'char'``, ``'word'`` or ``'jieba'``."""
    return TOKENIZERS[check_choice("mode", mode, sorted(TOKENIZERS))]


def tokenize(text, mode="char"):
    """Cut ``text`` into a list of tokens with the tokenizer named by ``mode``."""
    _check_text(text)
    return get_tokenizer(mode)(text)


def read_ptb_text(split="train", path=None):
    """Raw text of one PTB split, read from ``ptb.zip`` (``ptb/ptb.<split>.txt``).

    ``path`` overrides the data hub: a ``ptb.zip`` file or a folder holding one.
    ``data.read_text`` can't be used: the archive has three ``.txt`` members;
    ``read_zip_member`` reports a corrupt archive as such.
    """
    check_choice("split", split, PTB_SPLITS)
    archive = locate(PTB, path=path)
    raw = read_zip_member(archive, f"ptb/ptb.{split}.txt")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{archive}: ptb/ptb.{split}.txt is not UTF-8 text ({err}); "
                         "is it the right archive?") from None


def load_ptb(split="train", path=None):
    """Word tokens of one Penn Treebank split, ``EOS`` after every sentence.

    Returns a list of str. The corpus is already lower-cased with rare words as
    ``<unk>`` (10,000 types in train including ``<eos>``); train has 929,589
    tokens, valid 73,760 and test 82,430.
    """
    return words(read_ptb_text(split, path), eos=True)
