"""N-gram language models (book 6.1: 语言模型, n元语法).

The seed defines a language model through the chain rule
``P(w1..wT) = prod_t P(wt | w1..wt-1)`` and makes it tractable with the order-n
Markov assumption: ``wt`` depends only on the ``n - 1`` tokens before it. The
first tokens of a text have fewer predecessors and use the shorter contexts,
exactly as the tutorial's trigram example ``P(w1) P(w2|w1) P(w3|w1,w2) P(w4|w2,w3)``.

Estimators (``NGramLM(order, smoothing)``):

- ``"mle"``: the tutorial's relative frequencies, ``P(w) = count(w) / N`` and
  ``P(w | h) = count(h w) / count(h)``. An unseen n-gram has probability 0, so
  a text containing one has log-probability ``-inf`` and perplexity ``inf``.
- ``"add-k"``: ``(count(h w) + k) / (count(h) + k V)``.
- ``"kneser-ney"``: interpolated modified Kneser-Ney (Chen & Goodman 1998),
  three discounts per order, continuation counts below the top order, and a
  uniform distribution over the vocabulary (``<unk>`` included) at the bottom.
  A context shorter than ``n - 1`` (the first tokens of a text) gets the
  lower-order distribution that the model itself interpolates with.

MLE and add-k never back off: the estimate is the one of the longest context
available, even when that context was never seen (MLE: 0, add-k: ``1/V``).
For word corpora the sentence end is an ordinary ``<eos>`` token, predicted and
counted like a word; contexts run across it (standard PTB evaluation).

``count(h)`` is the number of times ``h`` is *followed by a token*, i.e.
``sum_w count(h w)``. It equals the tutorial's ``count(w1 w2)`` except when the text
ends with ``h``; the sum is what makes every ``P(. | h)`` sum to 1.

Tokens are integer-encoded through a ``Vocab`` in first-appearance order with
``<unk>`` at index 0; tokens not seen in training map to ``<unk>``.
"""
import logging
import math

import numpy as np

from lyricnn.checks import check_choice, check_int, check_number
from lyricnn.metrics import perplexity as _perplexity
from lyricnn.data.tokenize import UNK, chars
from lyricnn.ngram.counts import NGramCounts, NO_CONTEXT, SMOOTHINGS, _take

log = logging.getLogger(__name__)
STRATEGIES = ("greedy", "sample")

# The longest ``generate`` request.  Each token costs one pass over the
# vocabulary at every order (PTB: 10,000 words, order 5), so a million tokens
# already take a long time (measured: docs/RESULTS.md, "Design measurements");
# more is almost surely a typo (issue 12: --length 99999999999999 ran until
# killed).
MAX_GENERATE_LENGTH = 1_000_000


def kn_discounts(n1, n2, n3, n4):
    """Discounts ``(D1, D2, D3+)`` of modified Kneser-Ney from counts-of-counts.

    ``n_i`` is the number of distinct n-grams (of one order) seen exactly ``i``
    times. Chen & Goodman (1998): ``Y = n1 / (n1 + 2 n2)`` and
    ``D_i = i - (i + 1) Y n_{i+1} / n_i``.

    On real corpora every ``n_i > 0`` and the formulas give ``0 < D_i < i``.
    Tiny or oddly shaped count distributions break them: ``n_{i+1} = 0``
    would give ``D_i = i`` (every n-gram seen ``i`` times loses all its mass),
    ``n_i = 0`` divides by zero, and a large ``n_{i+1}`` makes ``D_i``
    negative. Fallbacks keep every ``D_i`` in ``(0, i)``, so a seen n-gram
    always keeps some mass and some always reaches the lower order:
    ``Y = 0.5`` unless ``n1, n2 > 0``; a ``D_i`` that needs a zero ``n_i`` or
    ``n_{i+1}``, or falls outside ``(0, i)``, takes the previous discount
    (``D1`` takes ``Y``).
    """
    y = n1 / (n1 + 2 * n2) if n1 > 0 and n2 > 0 else 0.5
    discounts, previous = [], y
    for i, (n_i, n_next) in enumerate(((n1, n2), (n2, n3), (n3, n4)), start=1):
        d = i - (i + 1) * y * n_next / n_i if n_i > 0 and n_next > 0 else previous
        if not 0 < d < i:
            d = previous
        discounts.append(d)
        previous = d
    return tuple(discounts)


class NGramLM:
    """An order-n language model over any tokens (book 6.1 n元语法).

    ``order``: n >= 1 (1 = unigram, 2 = bigram, ...). ``smoothing``: one of
    ``SMOOTHINGS``. ``k``: the pseudo-count of add-k smoothing (> 0).
    ``tokenizer``: callable str -> list of tokens, applied whenever a ``str``
    is passed where tokens are expected (default: characters, as the book).
    Any other sequence is taken as tokens as-is.
    """

    def __init__(self, order, smoothing="mle", k=1.0, tokenizer=chars):
        # The order's upper bound depends on the training text: fit checks it
        # (check_order) before counting anything.
        order = check_int("order", order)
        check_choice("smoothing", smoothing, SMOOTHINGS)
        k = check_number("k", k, minimum=0, low_open=True)
        if not callable(tokenizer):
            raise ValueError(f"tokenizer must be callable, got {tokenizer!r}")
        self.order, self.smoothing, self.k = order, smoothing, k
        self.tokenizer = tokenizer
        self.counts = None  # NGramCounts, set by fit
        self._tables = None  # per order: dict of per-context arrays, set by fit

    def __repr__(self):
        fitted = ""
        if self.counts is not None:
            fitted = f", V={self.vocab_size}, N={self.counts.num_tokens}"
        return f"NGramLM(order={self.order}, smoothing={self.smoothing!r}{fitted})"

    # -- training ---------------------------------------------------------

    def fit(self, tokens):
        """Count the n-grams of ``tokens`` (a str is tokenized) and build the tables.

        Everything a query needs is precomputed here, per order k and per
        context h: the total ``count(h)``, and for Kneser-Ney the discounted
        count of every n-gram and the back-off weight of every context.
        Returns ``self``.
        """
        tokens = self._as_tokens(tokens, "tokens")
        self.counts = NGramCounts(tokens, self.order)
        self._tables = [None] + [self._level_tables(k) for k in range(1, self.order + 1)]
        log.info("fitted %r: distinct n-grams per order %s", self,
                 [len(keys) for keys in self.counts.keys[1:]])
        return self

    def _model_counts(self, k):
        """Counts that order k uses: raw, except KN's lower orders (continuation)."""
        if self.smoothing == "kneser-ney" and k < self.order:
            return self.counts.continuation[k]
        return self.counts.counts[k]

    def _level_tables(self, k):
        """Per-context arrays of order k (contexts = (k-1)-grams) as a dict."""
        counts = self._model_counts(k)
        context_of = self.counts.keys[k] // self.vocab_size
        num_contexts = len(self.counts.keys[k - 1])
        # astype: bincount of an empty array returns ints; totals are always float64.
        total = np.bincount(context_of, weights=counts, minlength=num_contexts).astype(np.float64)
        inv_total = np.divide(1.0, total, out=np.zeros_like(total), where=total > 0)
        tables = {"counts": counts, "total": total, "inv_total": inv_total}
        if self.smoothing == "kneser-ney":
            tables.update(self._kn_tables(counts, context_of, total, inv_total))
        return tables

    @staticmethod
    def _kn_tables(counts, context_of, total, inv_total):
        """Discounted counts ``c - D(c)`` and back-off weights ``gamma(h)``.

        ``gamma(h) = (D1 N1(h.) + D2 N2(h.) + D3+ N3+(h.)) / count(h)`` is the
        mass removed by discounting; a context never followed by anything
        (``count(h) = 0``) passes all its mass down (``gamma = 1``).
        """
        n1, n2, n3, n4 = np.bincount(np.minimum(counts, 5), minlength=6)[1:5]
        d = kn_discounts(int(n1), int(n2), int(n3), int(n4))
        discount = np.array((0.0,) + d)[np.minimum(counts, 3)]
        removed = np.bincount(context_of, weights=discount, minlength=len(total)).astype(np.float64)
        gamma = np.where(total > 0, removed * inv_total, 1.0)
        return {"discounts": d, "discounted": counts - discount, "gamma": gamma}

    # -- probabilities ----------------------------------------------------

    @property
    def vocab(self):
        self._check_fitted()
        return self.counts.vocab

    @property
    def vocab_size(self):
        return len(self.vocab)

    def discounts(self, n):
        """``(D1, D2, D3+)`` that Kneser-Ney uses for its ``n``-grams (1 <= n <= order)."""
        self._check_fitted()
        if self.smoothing != "kneser-ney":
            raise ValueError("discounts exist for smoothing='kneser-ney' only, "
                             f"not {self.smoothing!r}")
        n = check_int("n", n, minimum=1, maximum=self.order)
        return self._tables[n]["discounts"]

    def count(self, ngram):
        """Training count of an n-gram (a str is tokenized); ``count(())`` is N."""
        self._check_fitted()
        if isinstance(ngram, str):
            ngram = self.tokenizer(ngram)
        return self.counts.count(ngram)

    def prob(self, token, context=()):
        """``P(token | context)`` under the order-n Markov assumption.

        Only the last ``order - 1`` tokens of ``context`` matter; a shorter
        context uses the correspondingly lower order.
        """
        word = np.array([self._token_id(token)], dtype=np.int64)
        return float(self._cond_probs(self._next_contexts(context, 1), word)[0])

    def probs(self, context=()):
        """``P(. | context)`` over the whole vocabulary: float64 array of shape (V,).

        Index ``i`` is ``vocab.idx_to_token[i]``.
        """
        words = np.arange(self.vocab_size, dtype=np.int64)
        return self._cond_probs(self._next_contexts(context, len(words)), words)

    def _next_contexts(self, context, size):
        """Context ids (as ``NGramCounts.context_ids``) of the token after ``context``,
        repeated ``size`` times."""
        self._check_fitted()
        context = self._as_tokens(context, "context", allow_empty=True)
        context = context[-(self.order - 1):] if self.order > 1 else []
        # The contexts of a dummy token appended after ``context`` are those of
        # the next position.
        ids = np.append(self.counts.encode(context), 0)
        return [None if c is None else np.full(size, c[-1])
                for c in self.counts.context_ids(ids)]

    def token_log_probs(self, tokens):
        """``log P(w_t | previous n-1 tokens)`` for every token: shape (T,), natural log."""
        self._check_fitted()
        ids = self.counts.encode(self._as_tokens(tokens, "tokens"))
        p = self._cond_probs(self.counts.context_ids(ids), ids)
        with np.errstate(divide="ignore"):  # an MLE zero is a legitimate -inf
            return np.log(p)

    def log_prob(self, tokens):
        """``log P(w1..wT)`` by the chain rule (natural log; ``-inf`` if any factor is 0)."""
        return float(np.sum(self.token_log_probs(tokens)))

    def perplexity(self, tokens):
        """``exp(-log P(w1..wT) / T)``; ``inf`` if the text has probability 0."""
        return _perplexity(-np.mean(self.token_log_probs(tokens)))

    def score(self, text):
        """Log-probability of a text: the scorer to give to ``rank``."""
        return self.log_prob(text)

    def _cond_probs(self, contexts, words):
        """``P(words[i] | context i)`` for a batch; ``contexts`` from ``context_ids``."""
        if self.smoothing == "kneser-ney":
            return self._kn_probs(contexts, words)
        p = np.zeros(len(words))
        for k in range(1, self.order + 1):
            # Overwrite with each longer order that applies: the result is the
            # estimate of the longest available context (no back-off, by design).
            t = self._tables[k]
            grams = self.counts.find(k, contexts[k], words)
            count = _take(t["counts"], grams, 0.0)
            total = _take(t["total"], contexts[k], 0.0)
            if self.smoothing == "mle":
                p_k = np.divide(count, total, out=np.zeros_like(count), where=total > 0)
            else:
                p_k = (count + self.k) / (total + self.k * self.vocab_size)
            p = np.where(contexts[k] != NO_CONTEXT, p_k, p)
        return p

    def _kn_probs(self, contexts, words):
        """Interpolated modified Kneser-Ney, from the uniform distribution upwards.

        ``P_k(w|h) = (c(hw) - D(c(hw))) / c(h) + gamma(h) P_{k-1}(w|h')``, with
        ``h'`` the context minus its first token; unseen (or unavailable)
        contexts pass ``P_{k-1}`` through unchanged.
        """
        p = np.full(len(words), 1.0 / self.vocab_size)
        for k in range(1, self.order + 1):
            ctx = contexts[k]
            if not np.any(ctx >= 0):
                continue
            t = self._tables[k]
            grams = self.counts.find(k, ctx, words)
            p_k = (_take(t["discounted"], grams, 0.0) * _take(t["inv_total"], ctx, 0.0)
                   + _take(t["gamma"], ctx, 1.0) * p)
            p = np.where(ctx >= 0, p_k, p)
        return p

    # -- generation ---------------------------------------------------------

    def generate(self, prefix=(), length=20, strategy="greedy", seed=None):
        """Continue ``prefix`` by ``length`` tokens; returns prefix + new tokens (a list).

        ``strategy='greedy'`` takes the most probable token (lowest index on
        ties), so it is deterministic; ``'sample'`` draws from ``P(. | context)``
        with ``numpy.random.default_rng(seed)``, reproducible for a fixed seed.
        If a context has no probability mass at all (MLE after a context never
        followed by anything) its oldest token is dropped until one has.
        ``<unk>`` is never generated unless the training text contains it.
        """
        self._check_fitted()
        check_choice("strategy", strategy, STRATEGIES)
        length = check_int("length", length, minimum=0, maximum=MAX_GENERATE_LENGTH,
                           hint="generate in pieces for longer texts")
        if seed is not None:
            seed = check_int("seed", seed, minimum=0, hint="or None for a fresh random seed")
        tokens = self._as_tokens(prefix, "prefix", allow_empty=True)
        rng = np.random.default_rng(seed)
        # <unk> only stands for "a token not seen in training": never write it
        # out unless the corpus itself uses it (PTB does).
        drop_unk = self.count((UNK,)) == 0
        for _ in range(length):
            p = self._next_distribution(tokens)
            if drop_unk:
                p[self.counts.unk_id] = 0.0
            if strategy == "greedy":
                i = int(np.argmax(p))
            else:  # inverse CDF: no sum-to-one tolerance issues
                cdf = np.cumsum(p)
                i = int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
                i = min(i, len(p) - 1)
            tokens.append(self.vocab.idx_to_token[i])
        return tokens

    def _next_distribution(self, tokens):
        context = tokens[-(self.order - 1):] if self.order > 1 else []
        while True:
            p = self.probs(context)
            if p.sum() > 0 or not context:
                return p
            context = context[1:]

    # -- helpers ------------------------------------------------------------

    def _check_fitted(self):
        if self.counts is None:
            raise ValueError("this NGramLM is not fitted yet: call fit(tokens) first")

    def _token_id(self, token):
        return self.vocab.token_to_idx.get(token, self.counts.unk_id)

    def _as_tokens(self, tokens, name, allow_empty=False):
        if isinstance(tokens, str):
            tokens = self.tokenizer(tokens)
        try:
            tokens = list(tokens)
        except TypeError:
            raise ValueError(
                f"{name} must be a str or a sequence of tokens, got {tokens!r}") from None
        if not tokens and not allow_empty:
            raise ValueError(f"{name} must not be empty")
        return tokens


def rank(candidates, scorer):
    """Sort candidate texts most likely first (the tutorial's 福贵/富贵 example).

    ``scorer``: any callable text -> log-probability (``NGramLM.score``, or
    an RNN's scorer). Returns ``[(candidate, log_prob), ...]`` in decreasing
    log-probability; ties keep the input order. Log-probabilities of texts of
    different lengths are compared as they are (no length normalisation).
    """
    if not callable(scorer):
        raise ValueError(f"scorer must be callable, got {scorer!r}")
    candidates = list(candidates)
    if not candidates:
        raise ValueError("candidates must not be empty")
    scored = []
    for candidate in candidates:
        value = float(scorer(candidate))
        if math.isnan(value):
            raise ValueError(f"scorer returned NaN for candidate {candidate!r}")
        scored.append((candidate, value))
    return sorted(scored, key=lambda item: -item[1])
