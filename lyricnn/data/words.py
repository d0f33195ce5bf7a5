"""Word-level corpora: tokens per line plus ``<eos>``, the vocabulary from the training split.

The standard setup of Mikolov's Penn Treebank, Zaremba et al. and PyTorch's
``word_language_model``: ``word_corpus``/``load_ptb_corpus`` cut every line
into words (whitespace, or jieba for Chinese) and add ``<eos>`` at each line
end; the vocabulary comes from the training split only, in first-appearance
order (so indices depend only on the text); words of the held-out splits
outside it become ``<unk>``. Which text a run reads and how it is split is
the word task's (``lyricnn.run.task``).
"""
from collections import Counter

import numpy as np

from lyricnn.checks import check_choice, check_int
from lyricnn.data.corpus import Corpus, Vocab
from lyricnn.data.tokenize import EOS, PTB_SPLITS, UNK, read_ptb_text, segment, words

WORD_TOKENIZERS = ("whitespace", "jieba")


#: A word-level corpus is a ``lyricnn.data.corpus.Corpus`` (the name kept for the API).
WordCorpus = Corpus


def tokenize_lines(text, tokenizer="whitespace", eos=True):
    """Words of ``text``, line by line, with ``EOS`` after every non-blank line when ``eos``.

    ``'whitespace'`` splits on whitespace (PTB); ``'jieba'`` segments Chinese
    with jieba (``lyricnn.data.tokenize.segment``) and drops its whitespace tokens.
    """
    check_choice("tokenizer", tokenizer, WORD_TOKENIZERS)
    if tokenizer == "whitespace":
        return words(text, eos=eos)
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    tokens = []
    for line in text.splitlines():
        line_words = [w for w in segment(line) if w.strip()]
        if line_words:
            tokens.extend(line_words)
            if eos:
                tokens.append(EOS)
    return tokens


def _build_vocab(tokens, max_vocab, unk):
    """First-appearance vocabulary of ``tokens``; with ``max_vocab`` only the most frequent
    types are kept (ties by first appearance), ``<unk>`` counted among them."""
    vocab = Vocab.from_tokens(tokens)
    if unk and UNK not in vocab:
        vocab = Vocab(vocab.idx_to_token + [UNK])
    if max_vocab is not None and len(vocab) > max_vocab:
        if UNK not in vocab:
            raise ValueError(f"max_vocab={max_vocab} would drop words from a vocabulary of "
                             f"{len(vocab)} without {UNK!r} to stand for them; pass unk=True")
        counts = Counter(tokens)
        first = vocab.token_to_idx
        # UNK always stays; the rest by descending count, ties by first appearance.
        others = sorted((t for t in vocab.idx_to_token if t != UNK),
                        key=lambda t: (-counts[t], first[t]))[:max_vocab - 1]
        keep = set(others) | {UNK}
        vocab = Vocab([t for t in vocab.idx_to_token if t in keep])
    return vocab


def _index(name, tokens, vocab):
    """Indices of ``tokens``; unknown words become ``<unk>`` if the vocabulary has it."""
    table = vocab.token_to_idx
    unk = table.get(UNK)
    if unk is None:
        for position, t in enumerate(tokens):
            if t not in table:
                raise ValueError(f"{name} has the word {t!r} (token {position}) that is not in "
                                 f"the training vocabulary, which has no {UNK!r}; pass unk=True "
                                 "or add the word to the training text")
        return [table[t] for t in tokens]
    return [table.get(t, unk) for t in tokens]


def word_corpus(train_text, valid_text=None, test_text=None, tokenizer="whitespace", eos=True,
                max_vocab=None, unk=True):
    """A ``WordCorpus`` from raw texts (str), the vocabulary from ``train_text`` only.

    ``eos``: an ``<eos>`` token after every non-blank line (Mikolov's PTB).
    ``unk``: add ``<unk>`` to the vocabulary (at the end) when the training text
    lacks it; words of valid/test outside the vocabulary then become ``<unk>``.
    With ``unk=False`` and no ``<unk>`` in the training text such a word is a
    ``ValueError`` naming it. ``max_vocab``: keep the ``max_vocab`` most frequent
    types (``<unk>`` included; the others become ``<unk>``, in train too).
    """
    check_choice("tokenizer", tokenizer, WORD_TOKENIZERS)
    check_choice("eos", eos, (True, False))
    check_choice("unk", unk, (True, False))
    if max_vocab is not None:
        max_vocab = check_int("max_vocab", max_vocab, minimum=2,
                              hint="a language model needs at least 2 types; None keeps all")
    splits = {"train_text": train_text, "valid_text": valid_text, "test_text": test_text}
    tokens = {}
    for name, text in splits.items():
        if text is None:
            continue
        if not isinstance(text, str):
            raise TypeError(f"{name} must be a str, got {type(text).__name__}")
        tokens[name] = tokenize_lines(text, tokenizer, eos)
        if not tokens[name]:
            raise ValueError(f"{name} has no words ({len(text)} characters of whitespace or "
                             "nothing); pass a text with words in it")
    vocab = _build_vocab(tokens["train_text"], max_vocab, unk)
    if len(vocab) < 2:
        raise ValueError(f"the training vocabulary has {len(vocab)} type "
                         f"({vocab.idx_to_token!r}); a language model needs at least 2: "
                         "use a longer text, eos=True or unk=True")
    indexed = {name: _index(name, toks, vocab) for name, toks in tokens.items()}
    return Corpus(vocab, indexed["train_text"], indexed.get("valid_text"),
                      indexed.get("test_text"), tokenizer)


def load_ptb_corpus(path=None):
    """Word-level Penn Treebank from the data hub's ``ptb.zip`` (``path``: that file or
    its folder): 10,000 types including ``<unk>`` and ``<eos>``, train/valid/test."""
    texts = {split: read_ptb_text(split, path) for split in PTB_SPLITS}
    return word_corpus(texts["train"], texts["valid"], texts["test"], "whitespace", eos=True)


def frequency_sorted(corpus):
    """``corpus`` with its vocabulary in descending order of training count (ties by the
    earlier index) and every split's indices renumbered: an adaptive softmax's clusters are
    ranges of word ranks (``lyricnn.models.adaptive``)."""
    counts = np.bincount(np.asarray(corpus.train, dtype=np.int64), minlength=len(corpus.vocab))
    order = np.argsort(-counts, kind="stable")           # order[rank] = old index
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))                  # rank[old index] = new index

    def renumber(split):
        return None if split is None else rank[np.asarray(split, dtype=np.int64)].tolist()
    return Corpus(Vocab([corpus.vocab.idx_to_token[i] for i in order]), renumber(corpus.train),
                  renumber(corpus.valid), renumber(corpus.test), corpus.tokenizer)
