"""Probability of a text under a trained RNN language model (book 6.1 and 6.4.4).

A language model gives ``P(w1..wT) = P(w1) prod_t P(wt | w1..wt-1)``.  The
RNNs of chapter 6 have no distribution for the first character (they start
from a zero state and always read one character before predicting), so these
functions score the rest of a text given its first character:

    log P(text[1:] | text[0]) = sum_{t>=1} log softmax(logits_t)[text[t]]

with the hidden state carried along the whole text, exactly as generation
feeds a prefix.  ``perplexity_of`` is ``exp(-mean)`` over those ``T - 1``
characters, the quantity the training log reports per epoch.

``lm`` is any ``lyricnn.models.interface.LanguageModel``; ``scorer``
turns one into the callable ``lyricnn.ngram.model.rank`` takes.
"""
import numpy as np
from mxnet import nd

from lyricnn.metrics import perplexity

#: Characters fed per forward call: bounds memory and the unrolled graph on long texts.
CHUNK = 256


def text_indices(text, char_to_idx):
    """``text`` as a list of indices; ``ValueError`` naming every unknown character."""
    if not isinstance(text, str) or len(text) < 2:
        raise ValueError(
            f"text must be a string of at least 2 characters (the first one is the "
            f"condition, the others are scored), got {text!r}")
    missing = [c for c in dict.fromkeys(text) if c not in char_to_idx]
    if missing:
        raise ValueError(f"text {text!r} contains character(s) {''.join(missing)!r} that "
                         "are not in the model's vocabulary")
    return [char_to_idx[c] for c in text]


def _log_softmax(logits):
    """Row-wise ``log softmax`` in float64: ``(T, V)`` -> ``(T, V)``."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def token_log_probs(lm, text, char_to_idx):
    """``log P(text[t] | text[:t])`` for ``t = 1 .. T-1``: float64 array of shape ``(T - 1,)``.

    The text is read as one sequence (batch 1) in chunks of ``CHUNK``
    characters, carrying the state, so the result does not depend on ``CHUNK``.
    """
    indices = text_indices(text, char_to_idx)
    state = lm.begin_state(1)
    out = []
    for i in range(0, len(indices) - 1, CHUNK):
        inputs = indices[i:min(i + CHUNK, len(indices) - 1)]
        targets = indices[i + 1:i + 1 + len(inputs)]
        # X: (1, n); logits: (n * 1, V), row t is step t (time-major, batch 1).
        logits, state = lm(nd.array([inputs], ctx=lm.ctx), state)
        out.append(_log_softmax(logits.asnumpy())[np.arange(len(targets)), targets])
    return np.concatenate(out)


def log_prob(lm, text, char_to_idx):
    """Natural-log probability of ``text[1:]`` given ``text[0]`` under ``lm`` (a float <= 0)."""
    return float(np.sum(token_log_probs(lm, text, char_to_idx)))


def perplexity_of(lm, text, char_to_idx):
    """``exp(-log_prob / (T - 1))``: the model's perplexity on ``text[1:]`` given ``text[0]``."""
    return perplexity(-float(np.mean(token_log_probs(lm, text, char_to_idx))))


def scorer(lm, char_to_idx):
    """``text -> log_prob(lm, text, char_to_idx)``, for ``lyricnn.ngram.model.rank``."""
    return lambda text: log_prob(lm, text, char_to_idx)
