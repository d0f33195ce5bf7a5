"""N-gram counting (book 6.1) and its memory bound: ``NGramCounts`` holds every level's
counts, context totals and continuation counts as sorted integer arrays;
``check_order`` refuses an order the text or the memory cannot hold."""
import itertools
import logging

import numpy as np

from lyricnn.checks import check_int
from lyricnn.data.corpus import Vocab
from lyricnn.data.tokenize import UNK
from lyricnn.memory import available_memory

log = logging.getLogger(__name__)

SMOOTHINGS = ("mle", "add-k", "kneser-ney")

# Context id marking "this position has fewer than k-1 predecessors": the
# order-k estimate does not apply there and the shorter context is used.
NO_CONTEXT = -2
# Context or n-gram id marking "never seen in training".
UNSEEN = -1

# Memory that counting an order-n model takes, per training token and per
# order: level k holds up to N - k + 1 distinct k-grams (near N at high
# orders, where almost every k-gram is new), each with an int64 key, count and
# continuation count and float64 per-context totals and Kneser-Ney tables,
# plus np.unique's temporaries.  Measured peak on PTB train (929,589 tokens):
# 30 bytes at order 5, 43 at order 8 (levels fill up with the order); 64 leaves
# headroom.  NGramCounts refuses an order whose estimate exceeds the memory
# available, instead of running until the machine kills it (issue 12: order
# 10,000,000 grew past 1.4 GB before being killed).
BYTES_PER_TOKEN_AND_ORDER = 64


def counting_bytes(num_tokens, order):
    """Estimated peak bytes of counting ``order`` levels of ``num_tokens`` tokens."""
    positions = order * num_tokens - order * (order - 1) // 2  # sum of N - k + 1, k = 1..order
    return BYTES_PER_TOKEN_AND_ORDER * positions


def check_order(order, num_tokens):
    """``order`` as an int if an order-``order`` model of ``num_tokens`` tokens can be counted.

    Two limits, both checked before any counting: ``order <= num_tokens`` (an
    order above the text length has not one full n-gram to count, so its top
    order would be empty), and ``counting_bytes(num_tokens, order)`` within the
    memory available now.  ``ValueError`` names order, the limit and why.
    """
    order = check_int("order", order)
    if order > num_tokens:
        raise ValueError(
            f"order must be <= the number of training tokens ({num_tokens:,}), got {order:,}: "
            f"an order-n model needs at least n tokens to see one n-gram; use order <= "
            f"{num_tokens:,} or a longer text")
    available = available_memory()
    if available is not None and counting_bytes(num_tokens, order) > available:
        low, high = 1, order  # largest order that fits: counting_bytes grows with order
        while low < high:
            mid = (low + high + 1) // 2
            low, high = (mid, high) if counting_bytes(num_tokens, mid) <= available else (low, mid - 1)
        raise ValueError(
            f"order={order:,} needs about {counting_bytes(num_tokens, order) / 2**30:.1f} GiB to "
            f"count {num_tokens:,} tokens (~{BYTES_PER_TOKEN_AND_ORDER} bytes per token and "
            f"order), more than the {available / 2**30:.1f} GiB available; use order <= {low}")
    return order


def _take(values, index, default):
    """``values[index]`` where ``index >= 0``, else ``default``; float array like ``index``."""
    if len(values) == 0:
        return np.full(index.shape, default, dtype=np.float64)
    return np.where(index >= 0, values[np.maximum(index, 0)], default)


class NGramCounts:
    """Counts of every k-gram, k = 1..order, of one token sequence.

    Level ``k`` is a sorted int64 array ``keys[k]`` of shape ``(G_k,)`` (one
    entry per distinct k-gram) with ``counts[k]`` beside it. A k-gram's key is
    ``prefix_id * V + w``: the index of its (k-1)-gram prefix in level k-1 times
    the vocabulary size, plus its last token's index. So keys stay below
    ``G_{k-1} * V <= N * V`` for any order (``V**k`` would overflow int64 at
    k = 5 on PTB; ``N * V`` stays far below 2**63), the context of a k-gram
    is ``key // V``, and a batch of look-ups is one ``np.searchsorted`` per
    level. Level 0 is the empty n-gram, seen ``N`` times. Counting is
    ``np.unique`` on arrays; the only per-token Python work is encoding the
    tokens to ids.

    ``continuation[k]`` (k < order) holds Kneser-Ney's continuation counts
    ``N1+(. g)``: the number of distinct tokens seen before the k-gram ``g``.
    The start of the text counts as one more distinct predecessor, so every
    k-gram seen in training has a continuation count of at least 1.
    """

    def __init__(self, tokens, order):
        tokens = list(tokens)
        self.order = check_order(order, len(tokens))
        # <unk> first, then first-appearance order (never set order); an
        # unhashable token is a ValueError naming its type.
        self.vocab = Vocab.from_tokens(itertools.chain([UNK], tokens))
        self.unk_id = self.vocab.token_to_idx[UNK]
        ids = self.encode(tokens)
        self.num_tokens = len(ids)
        self.keys = [np.zeros(1, dtype=np.int64)]
        self.counts = [np.array([self.num_tokens], dtype=np.int64)]
        self.continuation = []
        starts_prev = np.zeros(len(ids), dtype=np.int64)  # id of the 0-gram at each position
        for k in range(1, self.order + 1):
            starts = self._count_level(k, ids, starts_prev)
            self.continuation.append(self._continuation(starts, starts_prev, k - 1))
            starts_prev = starts
        self.continuation.append(None)  # the top order has no (order+1)-grams

    @property
    def vocab_size(self):
        return len(self.vocab)

    def encode(self, tokens):
        """Token list -> int64 array of vocabulary indices, unknown -> ``<unk>``."""
        get, unk = self.vocab.token_to_idx.get, self.unk_id
        try:
            return np.fromiter((get(t, unk) for t in tokens), dtype=np.int64, count=len(tokens))
        except TypeError:  # dict.get of an unhashable token
            bad = next(t for t in tokens if getattr(t, "__hash__", None) is None)
            raise ValueError(f"tokens must be hashable (str, int, tuple...), got a "
                             f"{type(bad).__name__}: {bad!r:.60}") from None

    def _count_level(self, k, ids, starts_prev):
        """Fill ``keys[k]``/``counts[k]``; return each position's k-gram id, shape (N-k+1,)."""
        m = max(len(ids) - k + 1, 0)  # number of k-gram occurrences
        raw = starts_prev[:m] * self.vocab_size + ids[k - 1:k - 1 + m]
        keys, starts, counts = np.unique(raw, return_inverse=True, return_counts=True)
        self.keys.append(keys.astype(np.int64))
        self.counts.append(counts.astype(np.int64))
        return starts.reshape(-1).astype(np.int64)

    def _continuation(self, starts, starts_prev, k):
        """Continuation counts of level ``k`` from the (k+1)-gram ids by position."""
        if k == 0:
            return None
        # One occurrence per distinct (k+1)-gram: its suffix is the k-gram one
        # position later, and each distinct (k+1)-gram adds one distinct
        # predecessor to that suffix.
        occurrence = np.empty(len(self.keys[k + 1]), dtype=np.int64)
        occurrence[starts] = np.arange(len(starts))
        suffixes = starts_prev[occurrence + 1]
        cont = np.bincount(suffixes, minlength=len(self.keys[k])).astype(np.int64)
        if len(starts_prev):
            cont[starts_prev[0]] += 1  # the k-gram opening the text
        return cont

    def find(self, k, context_ids, word_ids):
        """Ids of the k-grams ``(context, word)`` in level ``k``, shape like the inputs.

        ``context_ids`` are (k-1)-gram ids; ``UNSEEN`` and ``NO_CONTEXT`` pass
        through, and a k-gram absent from training gives ``UNSEEN``.
        """
        keys = self.keys[k]
        query = context_ids * self.vocab_size + word_ids
        if len(keys) == 0:
            found = np.zeros(query.shape, dtype=bool)
            pos = np.zeros(query.shape, dtype=np.int64)
        else:
            pos = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
            found = keys[pos] == query
        ids = np.where(found & (context_ids >= 0), pos, UNSEEN)
        return np.where(context_ids == NO_CONTEXT, NO_CONTEXT, ids)

    def context_ids(self, ids):
        """Per order k, the id of the (k-1)-gram before each position of ``ids``.

        Returns a list indexed by k = 0..order (entry 0 unused) of int64 arrays
        of shape ``(len(ids),)``: ``UNSEEN`` if that context never occurred,
        ``NO_CONTEXT`` at positions ``i < k - 1``.
        """
        ids = np.asarray(ids, dtype=np.int64)
        contexts = [None, np.zeros(len(ids), dtype=np.int64)]
        for k in range(2, self.order + 1):
            ending_here = self.find(k - 1, contexts[k - 1], ids)
            shifted = np.full(len(ids), NO_CONTEXT, dtype=np.int64)
            shifted[1:] = ending_here[:-1]
            contexts.append(shifted)
        return contexts

    def ngram_id(self, ngram):
        """Id of a token tuple in its level, or ``UNSEEN``."""
        gid = np.zeros(1, dtype=np.int64)
        for k, token_id in enumerate(self.encode(ngram), start=1):
            gid = self.find(k, gid, np.array([token_id]))
        return int(gid[0])

    def count(self, ngram):
        """How many times the token tuple ``ngram`` (length 0..order) occurs."""
        ngram = tuple(ngram)
        if len(ngram) > self.order:
            raise ValueError(f"ngram has {len(ngram)} tokens; this model counts up to {self.order}")
        if any(t not in self.vocab for t in ngram):
            return 0
        gid = self.ngram_id(ngram)
        return 0 if gid < 0 else int(self.counts[len(ngram)][gid])

    def decode(self, k, gram_id):
        """Token tuple of k-gram ``gram_id`` (walks the prefix ids down to level 1)."""
        tokens = []
        for level in range(k, 0, -1):
            key = int(self.keys[level][gram_id])
            gram_id, token_id = divmod(key, self.vocab_size)
            tokens.append(self.vocab.idx_to_token[token_id])
        return tuple(reversed(tokens))

    def most_common(self, n, num=10):
        """The ``num`` most frequent n-grams as ``[(tokens_tuple, count), ...]``.

        Ties keep the order of the n-gram keys (a stable sort), so the result
        is deterministic.
        """
        n = check_int("n", n, minimum=1, maximum=self.order)
        num = check_int("num", num, minimum=0)
        ranked = np.argsort(-self.counts[n], kind="stable")[:num]
        return [(self.decode(n, int(g)), int(self.counts[n][g])) for g in ranked]
