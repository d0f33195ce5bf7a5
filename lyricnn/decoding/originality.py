"""How much of a generated text is copied verbatim from the training text.

A suffix array of the training text (``pydivsufsort``) answers "does this
token sequence occur in the corpus, and where?" in ``O(length * log N)``; every
quantity below is derived from one pass of such searches over the candidate.
Tokens are integer ids (characters for a character model, words for a word
model); "occurs" means occurs contiguously in the corpus, never across its end.
For a candidate ``x`` of ``m`` ids and ``0 <= j, i < m``:

* ``ms[j]`` (``longest_match_from``), the matching statistic: the length of the
  longest prefix of ``x[j:]`` that occurs in the corpus; ``j + ms[j]`` is the
  ``r`` that infini-gram's ``creativity`` query returns for position ``j``
  (Liu et al. 2024, "Infini-gram: Scaling unbounded n-gram language models to a
  trillion tokens"; Lu et al. 2024, "AI as Humanity's Salieri").
* ``e[i]`` (``match_ending_at``): the length of the longest substring ending at
  ``i`` (``x[i-e[i]+1 .. i]``) that occurs in the corpus (Merrill et al. 2024
  call it the non-novel suffix length); ``e[i] = 0`` when ``x[i]`` is unseen.
* ``duplication[i] = 1 + e[i]`` (``duplication_scores``): RAVEN's pointwise
  duplication score, the size of the smallest n-gram ending at token ``i`` that
  is novel (McCoy et al. 2023, "How much do language models copy from their
  training data?", TACL 11); when all of ``x[:i+1]`` occurs no novel n-gram
  ends at ``i`` and the score still reads ``1 + e[i] = i + 2``.
* ``novelty[n]`` (``novelty_curve``): the fraction of the ``m - n + 1``
  n-grams of ``x`` (every position, repeats counted) that do not occur in the
  corpus, for ``n = 1 .. max_n`` (RAVEN's n-gram novelty); ``None`` for
  ``n > m``; an n-gram at ``j`` is novel exactly when ``ms[j] < n``.
* a copied span (``copied_spans``): a substring ``x[start:end]`` that occurs in
  the corpus and cannot be extended by one token on either side and still
  occur (a maximal match; spans may overlap); listed when ``end - start >=
  min_len``, with one corpus ``offset`` where it occurs and the bounds of the
  corpus line(s) around it.
* the longest copy (``longest_copy``): the longest copied span, ``max_j ms[j]``
  (RAVEN reports it as the longest duplicated passage; 0 for a text with no
  seen token).
* the human baseline (``human_baseline``): the novelty curve of held-out human
  text against the training text, the reference RAVEN compares generated text
  with (a model copying no more than people do sits on or above it).

At decode time ``extends_copy_beyond`` and ``allowed_mask`` tell which next ids
would make the copy ending at the new token longer than ``limit`` tokens: the
ones that follow an occurrence of the last ``limit`` context tokens.

Layout: the corpus ids are mapped, order-preserving, onto ``0 .. V-1`` (``V``
distinct ids) and stored big-endian in 1, 2 or 4 bytes per token, so comparing
two token strings is comparing two ``bytes`` (C speed, and exactly the order
``divsufsort`` sorts suffixes in); memory is that text plus a 4-byte suffix
array entry per token (8 bytes beyond 2**31 tokens). No MXNet import.
"""
import bisect

import numpy as np
from pydivsufsort import divsufsort

from lyricnn.checks import check_int, is_integer

__all__ = ["OriginalityIndex", "human_baseline", "shown"]

#: Floats hold every integer below 2**53 exactly: integral float ids above are refused.
_FLOAT_EXACT = 2**53


def _as_ids(name, ids):
    """``ids`` as a 1-D int64 array of non-negative token ids (may be empty).

    Integral floats are accepted (the book's batches are float32); bools,
    strings, other floats and nested sequences raise ``ValueError``.
    """
    if isinstance(ids, (str, bytes)):
        raise ValueError(f"{name} must be a sequence of token ids, got a string; map it to ids "
                         "first (e.g. [char_to_idx[c] for c in text])")
    if hasattr(ids, "asnumpy"):  # an MXNet NDArray, without importing MXNet
        ids = ids.asnumpy()
    elif not hasattr(ids, "__len__"):  # an iterator or a scalar
        if is_integer(ids):
            raise ValueError(f"{name} must be a 1-D sequence of token ids, got the single "
                             f"integer {ids!r}; wrap it in a list: [{ids!r}]")
        try:
            ids = list(ids)
        except TypeError:
            raise ValueError(f"{name} must be a 1-D sequence of token ids, got "
                             f"{ids!r:.60} ({type(ids).__name__})") from None
    try:
        arr = np.asarray(ids)
    except ValueError:  # ragged nesting (NumPy >= 1.24 refuses it)
        raise ValueError(f"{name} must be a 1-D sequence of token ids, got nested sequences "
                         "of different lengths; pass one text at a time") from None
    if arr.ndim == 1 and arr.size == 0:
        return np.zeros(0, np.int64)  # an empty list is float64 to NumPy: still no ids
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence of token ids, got shape {arr.shape}; "
                         "pass one text at a time (flatten or index a batch row)")
    if arr.dtype.kind == "f":
        if not (np.isfinite(arr).all() and (arr == np.round(arr)).all()
                and np.abs(arr).max() < _FLOAT_EXACT):
            raise ValueError(f"{name} must hold integer token ids, got non-integer floats "
                             f"(first values {arr[:5].tolist()}); round or cast the ids")
    elif arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer token ids, got dtype {arr.dtype} (first "
                         f"values {arr[:5].tolist()}); pass ints")
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name} must hold token ids >= 0, found {arr.min()!r}; ids index a "
                         "vocabulary (Vocab.to_indices gives them)")
    if arr.dtype.kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name} holds ids above 2**63 - 1, found {arr.max()!r}")
    return arr.astype(np.int64)


def _as_breaks(line_breaks):
    """``line_breaks`` as a sorted int64 array of ids (empty for None)."""
    if line_breaks is None:
        return np.zeros(0, np.int64)
    if is_integer(line_breaks):
        raise ValueError(f"line_breaks must be a set of ids that end a line, got the single "
                         f"integer {line_breaks!r}; wrap it: {{{line_breaks!r}}}")
    try:
        items = list(line_breaks)
    except TypeError:
        raise ValueError(f"line_breaks must be a set of ids that end a line, got "
                         f"{line_breaks!r:.60} ({type(line_breaks).__name__}); e.g. "
                         "{char_to_idx[' ']}") from None
    return np.unique([check_int("line_breaks item", i, minimum=0,
                                hint="pass ids, e.g. {char_to_idx['\\n']}") for i in items]
                     ).astype(np.int64)


def _compact(ids):
    """``(codes, vocab)``: ``ids`` (N,) mapped order-preserving onto ``0 .. V-1``, and the
    sorted distinct ids (V,) so that ``vocab[codes] == ids``."""
    top = int(ids.max())
    if top < 4 * len(ids) + 65536:  # a lookup table is O(N + top), cheaper than sorting
        present = np.zeros(top + 1, bool)
        present[ids] = True
        rank = np.cumsum(present) - 1
        return rank[ids], np.flatnonzero(present)
    vocab, codes = np.unique(ids, return_inverse=True)
    return codes.reshape(-1), vocab


def _width(vocab_size):
    """Bytes per token for codes ``0 .. vocab_size-1``: 1, 2 or 4."""
    return 1 if vocab_size <= 2**8 else 2 if vocab_size <= 2**16 else 4


class OriginalityIndex:
    """A suffix-array index of a training text, for measuring verbatim copying.

    ``corpus_ids``: 1-D sequence of N >= 1 token ids (>= 0). ``line_breaks``:
    optional set of ids that end a line (``'\\n'``, ``' '`` for the book's
    lyrics, ``'<eos>'`` for PTB), used only to report the corpus line around a
    copy. ``max_n``: the largest n of ``novelty_curve`` and ``report`` by default.
    """

    def __init__(self, corpus_ids, line_breaks=None, max_n=10):
        corpus = _as_ids("corpus_ids", corpus_ids)
        if corpus.size == 0:
            raise ValueError("corpus_ids must hold at least one token, got an empty sequence; "
                             "index the training text (e.g. corpus_indices)")
        self.max_n = check_int("max_n", max_n, minimum=1)
        breaks = _as_breaks(line_breaks)
        codes, self._vocab = _compact(corpus)             # (N,), (V,)
        self._w = _width(len(self._vocab))
        self._dtype = np.dtype(f">u{self._w}")
        # Big-endian bytes compare like token strings (shorter prefix first), which is the
        # order divsufsort sorts the suffixes in: bisect can search the SA on bytes.
        self._buf = codes.astype(self._dtype).tobytes()   # N * w bytes
        self._text = np.frombuffer(self._buf, self._dtype)  # (N,) view, no copy
        self._n = len(codes)
        self._sa = divsufsort(codes.astype(f"u{self._w}"))  # (N,) int32 (int64 past 2**31)
        # A memoryview's items are Python ints (fast bisect keys); it needs a native format.
        self._sa = self._sa.astype(self._sa.dtype.newbyteorder("="), copy=False)
        self._sa_seq = memoryview(self._sa).cast("B").cast(self._sa.dtype.char)
        self._breaks = np.flatnonzero(np.isin(corpus, breaks))  # positions of line breaks

    def corpus_ids(self):
        """The indexed corpus as its original ids, (N,) int64 (to show a source line)."""
        return self._vocab[self._text.astype(np.int64)]

    def __len__(self):
        return self._n

    def __repr__(self):
        return (f"OriginalityIndex({self._n:,} tokens, {len(self._vocab):,} distinct ids, "
                f"{self._w} byte(s)/token)")

    # -- the suffix-array searches ---------------------------------------------------

    def _codes(self, ids):
        """Candidate ids (m,) as corpus codes, -1 for an id the corpus never holds."""
        pos = np.searchsorted(self._vocab, ids)
        seen = pos < len(self._vocab)
        seen[seen] = self._vocab[pos[seen]] == ids[seen]
        return np.where(seen, pos, -1)

    def _bytes(self, codes):
        return np.asarray(codes).astype(self._dtype).tobytes()

    def _interval(self, pattern, lo=0, hi=None, skip=0):
        """SA interval ``[lo, hi)`` of the suffixes starting with ``pattern`` (bytes of k
        codes); ``lo == hi`` if it does not occur. The search may be restricted to an
        interval whose suffixes all share their first ``skip`` tokens with ``pattern``
        (then only tokens ``skip ..`` are compared)."""
        w, buf = self._w, self._buf
        start, stop = skip * w, len(pattern)
        key = lambda s: buf[s * w + start:s * w + stop]  # the suffix, cut to k tokens
        target = pattern[start:]
        hi = self._n if hi is None else hi
        lo = bisect.bisect_left(self._sa_seq, target, lo, hi, key=key)
        if lo == hi or key(self._sa_seq[lo]) != target:
            return lo, lo
        return lo, bisect.bisect_right(self._sa_seq, target, lo, hi, key=key)

    def _matching(self, codes, cap=None):
        """``(ms, offsets)``, both (m,) int64: ``ms[j]`` as in the module docstring (capped at
        ``cap``) and a corpus offset where ``x[j:j+ms[j]]`` occurs (-1 when ``ms[j] == 0``).

        Matching statistics by two pointers: ``ms[j+1] >= ms[j] - 1``, so position j+1
        starts from the match of j minus its first token and only extends it; each
        extension narrows the SA interval by one token (two bisects on that token), so
        the whole pass is O(m) searches of O(log N) comparisons each.
        """
        m = len(codes)
        ms, offsets = np.zeros(m, np.int64), np.full(m, -1, np.int64)
        qbuf = self._bytes(np.maximum(codes, 0))
        w, k = self._w, 0
        cap = m if cap is None else cap
        for j in range(m):
            lo, hi = self._interval(qbuf[j * w:(j + k) * w]) if k else (0, self._n)
            while k < cap and j + k < m and codes[j + k] >= 0:
                nlo, nhi = self._interval(qbuf[j * w:(j + k + 1) * w], lo, hi, skip=k)
                if nlo == nhi:
                    break
                lo, hi, k = nlo, nhi, k + 1
            ms[j] = k
            if k:
                offsets[j] = self._sa_seq[lo]
            k = max(k - 1, 0)
        return ms, offsets

    def _occurs(self, codes):
        """Whether the codes (k,) occur contiguously in the corpus (False if one is -1)."""
        if (codes < 0).any():
            return False
        lo, hi = self._interval(self._bytes(codes))
        return hi > lo

    # -- quantities over a candidate text ---------------------------------------------

    def longest_match_from(self, ids):
        """``ms`` (m,) int64: the longest prefix of ``ids[j:]`` found in the corpus."""
        return self._matching(self._codes(_as_ids("ids", ids)))[0]

    def match_ending_at(self, ids):
        """``e`` (m,) int64: the longest substring ending at ``i`` found in the corpus."""
        return _ending_from_starting(self.longest_match_from(ids))

    def duplication_scores(self, ids):
        """RAVEN's pointwise duplication score (m,) int64: ``1 + e[i]``."""
        return 1 + self.match_ending_at(ids)

    def novelty_curve(self, ids, max_n=None):
        """Fraction of novel n-grams for ``n = 1 .. max_n`` (list; None where ``n > m``)."""
        max_n = self.max_n if max_n is None else check_int("max_n", max_n, minimum=1)
        codes = self._codes(_as_ids("ids", ids))
        ms = self._matching(codes, cap=max_n)[0]  # only ms < n for n <= max_n matters
        return _novelty_from_ms(ms, max_n)

    def copied_spans(self, ids, min_len):
        """Every maximal copied span of length >= ``min_len``, in order of start.

        Each is ``{start, end, length, source: {offset, line_start, line_end}}``:
        ``ids[start:end] == corpus[offset:offset+length]``, and
        ``corpus[line_start:line_end]`` is that occurrence widened to the nearest line
        breaks outside it (break tokens excluded; the corpus bounds without any).
        """
        min_len = check_int("min_len", min_len, minimum=1,
                            hint="spans shorter than 1 token are not copies")
        ms, offsets = self._matching(self._codes(_as_ids("ids", ids)))
        return self._spans(ms, offsets, min_len)

    def longest_copy(self, ids):
        """``{length, start, end, source}`` of the longest copy (first if tied);
        ``{length: 0, start: None, end: None, source: None}`` when nothing occurs."""
        return self._longest(*self._matching(self._codes(_as_ids("ids", ids))))

    def _spans(self, ms, offsets, min_len):
        ends = np.arange(len(ms)) + ms
        # Right-maximal by construction; left-maximal unless ids[j-1:] matches to the same end.
        left_max = np.ones(len(ms), bool)
        left_max[1:] = ends[:-1] < ends[1:]
        return [self._span(int(j), int(ms[j]), int(offsets[j]))
                for j in np.flatnonzero(left_max & (ms >= min_len))]

    def _longest(self, ms, offsets):
        if not ms.size or ms.max() == 0:
            return {"length": 0, "start": None, "end": None, "source": None}
        j = int(np.argmax(ms))
        return self._span(j, int(ms[j]), int(offsets[j]))

    def _span(self, start, length, offset):
        return {"start": start, "end": start + length, "length": length,
                "source": self._source(offset, length)}

    def _source(self, offset, length):
        """Where a copy of ``length`` tokens at corpus ``offset`` sits: its line bounds."""
        before = np.searchsorted(self._breaks, offset) - 1  # last break strictly before it
        after = np.searchsorted(self._breaks, offset + length)  # first break after it
        return {"offset": offset,
                "line_start": int(self._breaks[before]) + 1 if before >= 0 else 0,
                "line_end": int(self._breaks[after]) if after < len(self._breaks) else self._n}

    # -- decode-time guard ------------------------------------------------------------

    def extends_copy_beyond(self, context_ids, candidate_id, limit):
        """Whether appending ``candidate_id`` to ``context_ids`` makes the longest corpus
        match ending at it longer than ``limit``: i.e. whether the last ``limit`` context
        ids followed by the candidate occur in the corpus. One O(limit * log N) search."""
        limit = check_int("limit", limit, minimum=1,
                          hint="the longest copy allowed, in tokens (e.g. 8)")
        candidate_id = check_int("candidate_id", candidate_id, minimum=0,
                                 hint="pass one token id")
        context = _as_ids("context_ids", context_ids)
        if len(context) < limit:  # the new match is at most len(context) + 1 <= limit long
            return False
        window = np.append(context[len(context) - limit:], candidate_id)
        return self._occurs(self._codes(window))

    def allowed_mask(self, context_ids, vocab_size, limit):
        """(vocab_size,) bool: for every next id, whether it keeps the copy <= ``limit``.

        The banned ids are those following an occurrence of the last ``limit`` context
        ids in the corpus: one SA interval search, then a read of the token after each
        occurrence (O(limit * log N + occurrences)). Corpus ids >= vocab_size are ignored.
        """
        limit = check_int("limit", limit, minimum=1,
                          hint="the longest copy allowed, in tokens (e.g. 8)")
        vocab_size = check_int("vocab_size", vocab_size, minimum=1,
                               hint="the model's vocabulary size")
        context = _as_ids("context_ids", context_ids)
        mask = np.ones(vocab_size, bool)
        if len(context) < limit:
            return mask
        codes = self._codes(context[len(context) - limit:])
        if (codes < 0).any():
            return mask
        lo, hi = self._interval(self._bytes(codes))
        follow = np.asarray(self._sa[lo:hi], np.int64) + limit  # (occurrences,)
        follow = follow[follow < self._n]  # an occurrence at the corpus end has no follower
        banned = self._vocab[np.unique(self._text[follow])]
        mask[banned[banned < vocab_size]] = False
        return mask

    # -- everything at once ------------------------------------------------------------

    def default_min_span(self):
        """The shortest span ``report`` lists by default: ``max(8, max_n)`` tokens.

        Shorter matches are mostly stock phrases any fluent text shares with a corpus
        this size (the novelty curve covers them up to ``max_n``); 8 is the floor.
        """
        return max(8, self.max_n)

    def report(self, ids, min_span=None):
        """A JSON-ready summary: ``{longest_copy, copied_spans, min_span, duplication,
        novel_ngram_fraction}`` (``min_span`` defaults to ``default_min_span()``;
        ``novel_ngram_fraction`` is the novelty curve for n = 1 .. max_n)."""
        min_span = self.default_min_span() if min_span is None else check_int(
            "min_span", min_span, minimum=1, hint="the shortest copied span to list")
        ms, offsets = self._matching(self._codes(_as_ids("ids", ids)))
        longest, spans = self._longest(ms, offsets), self._spans(ms, offsets, min_span)
        return {"longest_copy": longest, "copied_spans": spans, "min_span": min_span,
                "duplication": (1 + _ending_from_starting(ms)).tolist(),
                "novel_ngram_fraction": _novelty_from_ms(ms, self.max_n)}


def _ending_from_starting(ms):
    """``e`` (m,) from ``ms`` (m,): the two-pointer pass, vectorised.

    ``x[j..i]`` occurs iff ``j + ms[j] > i``, and ``end[j] = j + ms[j]`` never decreases
    (``ms[j+1] >= ms[j] - 1``), so the earliest such j is the number of j with
    ``end[j] <= i``: a counting pass, O(m).
    """
    m = len(ms)
    ends = np.arange(m) + ms
    first = np.cumsum(np.bincount(ends, minlength=m + 1))[:m]  # earliest start per end i
    return np.arange(m) + 1 - first


def _novelty_from_ms(ms, max_n):
    """Novel n-gram fractions for n = 1 .. max_n from ``ms`` (m,) (None where n > m)."""
    m = len(ms)
    return [float(np.mean(ms[:m - n + 1] < n)) if n <= m else None
            for n in range(1, max_n + 1)]


def human_baseline(train_ids, heldout_ids, max_n=10, index=None):
    """The novelty curve of held-out human text against the training text.

    ``index``: an ``OriginalityIndex`` of ``train_ids`` already built (then
    ``train_ids`` may be None; given both, their lengths must agree).
    """
    if index is None:
        if train_ids is None:
            raise ValueError("train_ids must be the training ids when no index is given; "
                             "pass train_ids or index=OriginalityIndex(train_ids)")
        index = OriginalityIndex(train_ids, max_n=max_n)
    elif not isinstance(index, OriginalityIndex):
        raise ValueError(f"index must be an OriginalityIndex, got {type(index).__name__}; "
                         "build it with OriginalityIndex(train_ids)")
    elif train_ids is not None and len(_as_ids("train_ids", train_ids)) != len(index):
        raise ValueError(f"index holds {len(index):,} tokens but train_ids has "
                         f"{len(train_ids):,}; pass the index of train_ids, or train_ids=None")
    return index.novelty_curve(heldout_ids, max_n=max_n)



def shown(index, report, baseline, to_text):
    """The originality fields of a candidate as the CLI's ``--json`` and the server show
    them: ``report`` (``index.report(ids)``) with each copy's source line as text
    (``to_text(ids)`` renders corpus ids) and ``baseline`` (``human_baseline``) beside
    its novelty curve as ``human_novel_ngram_fraction``."""
    corpus = index.corpus_ids()

    def line(source):
        if source is None:
            return None
        return {**source, "text": to_text(corpus[source["line_start"]:source["line_end"]])}
    return {"longest_copy": {**report["longest_copy"],
                             "source": line(report["longest_copy"]["source"])},
            "copied_spans": [{**span, "source": line(span["source"])}
                             for span in report["copied_spans"]],
            "min_span": report["min_span"], "duplication": report["duplication"],
            "novel_ngram_fraction": report["novel_ngram_fraction"],
            "human_novel_ngram_fraction": baseline}
