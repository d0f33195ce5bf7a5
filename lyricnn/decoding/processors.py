"""Logits processors: each decoding option written once, as a function on one row.

Every function takes ``z``, the logits of one sequence's next token (a float64 NumPy
array of shape ``(V,)``, changed in place), and what it needs of the sequence. The
engine (``lyricnn.decoding.engine``) applies them in this order, vLLM's:

1. bans (banned tokens, no-repeat n-grams, the copy guard, forced tokens) -> ``-inf``
2. penalties: repetition (llama.cpp / transformers), presence and frequency (OpenAI),
   DRY (llama.cpp)
3. temperature (``scale``), then the truncations top-k, top-p (nucleus), min-p
4. selection: the argmax (greedy), or one draw from the softmax of what is left

A truncation that removes nothing leaves the draw unchanged: the draw is one uniform
number per token from the row's own generator, mapped through the cumulative
distribution, so ``top_p=1`` and ``min_p=0`` give plain sampling under the same seed,
and ``top_k=1``, ``top_p -> 0`` and ``min_p=1`` give greedy.
"""
import numpy as np

NEG_INF = -np.inf


# -- 1. bans ---------------------------------------------------------------------------

def ban(z, tokens):
    """Exclude ``tokens`` (ids)."""
    if len(tokens):
        z[list(tokens)] = NEG_INF


def force(z, token):
    """Leave only ``token`` (an acrostic's line start, a separator at the line limit)."""
    keep = z[token]
    z[:] = NEG_INF
    z[token] = keep if np.isfinite(keep) else 0.0


def no_repeat_ngram_bans(context, n):
    """The tokens that would complete an n-gram already in ``context`` (transformers'
    ``no_repeat_ngram_size``): those that followed an earlier occurrence of its last
    ``n - 1`` tokens."""
    if n < 1 or len(context) < n - 1:
        return []
    if n == 1:
        return sorted(set(context))
    tail = tuple(context[len(context) - n + 1:])
    return sorted({context[i + n - 1] for i in range(len(context) - n + 1)
                   if tuple(context[i:i + n - 1]) == tail})


# -- 2. penalties ----------------------------------------------------------------------

def repetition_penalty(z, context, penalty, last_n):
    """Divide a positive logit, multiply a negative one, by ``penalty`` for every token
    among the last ``last_n`` of ``context`` (0: all of it), as llama.cpp's
    ``repeat_penalty`` and transformers' ``repetition_penalty``."""
    if penalty == 1.0 or not len(context):
        return
    seen = np.unique(np.asarray(context[-last_n:] if last_n else context, dtype=np.int64))
    values = z[seen]
    z[seen] = np.where(values > 0, values / penalty, values * penalty)


def presence_frequency_penalty(z, generated, presence, frequency):
    """OpenAI's penalties over the tokens generated so far:
    ``z[t] -= presence * (count[t] > 0) + frequency * count[t]``."""
    if (presence == 0 and frequency == 0) or not len(generated):
        return
    tokens, counts = np.unique(np.asarray(generated, dtype=np.int64), return_counts=True)
    z[tokens] -= presence + frequency * counts


def dry_penalty(z, context, multiplier, base, allowed_length, breakers, max_match=64):
    """DRY, "don't repeat yourself" (llama.cpp, p-e-w): a token ``t`` that would extend a
    repeat of ``L`` tokens already in ``context`` (its last ``L`` tokens occurred before,
    followed by ``t``) loses ``multiplier * base ** (L - allowed_length)`` when
    ``L >= allowed_length``. A repeat never reaches back over a sequence breaker (with
    the line separator as one, a loop inside a line is penalised and a chorus line may
    come back). ``max_match`` bounds the search: a repeat that long is penalised by
    ``base ** 60`` already."""
    if multiplier == 0 or len(context) < 2:
        return
    ctx = np.asarray(context, dtype=np.int64)
    n = len(ctx)
    # The current run of tokens since the last breaker: a repeat may not extend past it.
    is_breaker = np.isin(ctx, list(breakers)) if breakers else np.zeros(n, bool)
    since = np.flatnonzero(is_breaker)
    limit = min(n - 1 - since[-1] if len(since) else n, max_match)
    if limit < 1:
        return
    # match[p]: how many tokens ending at p (p < n - 1) equal the context's last ones.
    ends = np.arange(n - 1)
    match = np.zeros(n - 1, dtype=np.int64)
    alive = np.ones(n - 1, dtype=bool)
    for length in range(1, limit + 1):
        pos = ends - (length - 1)
        ok = alive & (pos >= 0)
        ok[ok] &= (ctx[pos[ok]] == ctx[n - length]) & ~is_breaker[pos[ok]]
        match[ok] = length
        alive = ok
        if not alive.any():
            break
    best = {}
    for p in np.flatnonzero(match >= allowed_length):
        token = int(ctx[p + 1])           # what followed that earlier occurrence
        best[token] = max(best.get(token, 0), int(match[p]))
    for token, length in best.items():
        if token not in breakers:
            z[token] -= multiplier * base ** (length - allowed_length)


# -- 3. temperature and truncation --------------------------------------------------------

def softmax(z):
    """``softmax(z)`` in float64; ``-inf`` entries get probability 0."""
    p = np.exp(z - z.max())
    return p / p.sum()


def truncate(z, top_k=None, top_p=1.0, min_p=0.0):
    """Exclude what top-k, top-p and min-p exclude, in that order; the most likely token
    always stays."""
    finite = np.isfinite(z)
    if top_k is not None and top_k < finite.sum():
        kth = np.partition(z, -top_k)[-top_k]
        z[z < kth] = NEG_INF        # ties at the k-th value stay: no arbitrary order
    if top_p < 1.0:
        p = softmax(z)
        order = np.argsort(-p, kind="stable")
        before = np.cumsum(p[order]) - p[order]   # mass of the tokens ranked above
        z[order[before >= top_p]] = NEG_INF       # keeps the first; top_p -> 0 is greedy
    if min_p > 0.0:
        p = softmax(z)
        z[p < min_p * p.max()] = NEG_INF


# -- 4. selection -----------------------------------------------------------------------

def scale(z, temperature):
    """``z / temperature`` after shifting the largest logit to 0, so that a tiny temperature
    sends the others to ``-inf`` instead of making ``inf - inf``; 0 keeps ``z`` (greedy)."""
    if temperature == 0:
        return z
    with np.errstate(over="ignore", divide="ignore"):
        z[:] = (z - z.max()) / temperature
    return z


def select(z, uniform=None):
    """The argmax (``uniform`` None: greedy) or the token whose slice of the cumulative
    distribution of ``softmax(z)`` holds ``uniform`` (in [0, 1))."""
    if uniform is None or np.isfinite(z).sum() == 1:
        return int(np.argmax(z))
    cdf = np.cumsum(softmax(z))
    return int(min(np.searchsorted(cdf, uniform * cdf[-1], side="right"), len(z) - 1))


def log_softmax(z):
    """``log softmax`` of logits ``(..., V)`` in float64: the model's own log-probabilities."""
    z = np.asarray(z, dtype=np.float64)
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
