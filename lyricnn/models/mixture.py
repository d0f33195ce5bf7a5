"""A language model interpolated with an n-gram model: ``λ · P_lm + (1 − λ) · P_ngram``.

Mikolov et al.'s "RNN + KN" (2011): on a small corpus the recurrent model and a
Kneser–Ney n-gram err differently, and their mixture beats both (on the lyrics'
held-out tenth: docs/RESULTS.md, "The lyrics studio"). ``NGramMixture`` is a
``LanguageModel`` whose logits are the mixture's log-probabilities (so softmax of
them is the mixture, and training's evaluator, scoring and decoding read it
unchanged); it is not trained itself: train the recurrent model, fit the n-gram on
the same training text, then mix.

The n-gram's vocabulary is its training text's plus ``<unk>``; a token of the model's
vocabulary the n-gram never saw gets an equal share of ``<unk>``'s probability, so the
n-gram's distribution over the model's vocabulary still sums to 1.
"""
import numpy as np
from mxnet import nd

from lyricnn.checks import check_number
from lyricnn.models.interface import LanguageModel


class NGramMixture(LanguageModel):
    """``lm`` (a ``LanguageModel`` over ``idx_to_token``) mixed with a fitted ``ngram``
    (``lyricnn.ngram.model.NGramLM``) at weight ``weight`` on ``lm``.

    ``logits, state = mixture(X, state)``: ``X (batch, T)`` indices, ``logits (T * batch,
    V)`` the mixture's log-probabilities; ``state`` is ``(the lm's state, history)``,
    ``history (batch, order - 1)`` the last tokens read (-1: none yet).
    """

    def __init__(self, lm, ngram, idx_to_token, weight=0.5):
        self.weight = check_number("weight", weight, 0, 1, low_open=True,
                                   hint="the share of the recurrent model, e.g. 0.5")
        if len(idx_to_token) != lm.vocab_size:
            raise ValueError(f"idx_to_token has {len(idx_to_token)} tokens, the model "
                             f"{lm.vocab_size}; pass the model's vocabulary")
        self.lm, self.ngram, self.idx_to_token = lm, ngram, list(idx_to_token)
        self.vocab_size, self.ctx = lm.vocab_size, lm.ctx
        self.width = max(ngram.order - 1, 1)
        known = ngram.vocab.token_to_idx
        unk = ngram.counts.unk_id
        # (V,) the n-gram's index of each model token; unseen ones share <unk>'s mass.
        self._index = np.array([known.get(t, unk) for t in self.idx_to_token], dtype=np.int64)
        unseen = self._index == unk
        self._share = np.where(unseen, 1.0 / max(unseen.sum(), 1), 1.0)    # (V,)

    def begin_state(self, batch_size):
        return (self.lm.begin_state(batch_size),
                nd.full((batch_size, self.width), -1, ctx=self.ctx))

    def _ngram_probs(self, context):
        """The n-gram's next-token distribution over the model's vocabulary: (V,)."""
        return self.ngram.probs([self.idx_to_token[i] for i in context])[self._index] \
            * self._share

    def forward(self, X, state):
        lm_state, history = state
        logits, lm_state = self.lm(X, lm_state)                  # (T * batch, V)
        p = np.exp(_log_softmax(logits.asnumpy()))               # (T * batch, V)
        x = X.asnumpy().astype(np.int64)                         # (batch, T)
        past = history.asnumpy().astype(np.int64)                # (batch, width)
        batch, steps = x.shape
        q = np.empty_like(p)
        for b in range(batch):
            read = [int(t) for t in past[b] if t >= 0]
            for t in range(steps):
                read.append(int(x[b, t]))
                q[t * batch + b] = self._ngram_probs(read[-(self.ngram.order - 1):]
                                                     if self.ngram.order > 1 else [])
        mixed = np.log(self.weight * p + (1 - self.weight) * q)  # (T * batch, V)
        tail = np.concatenate([past, x], axis=1)[:, -self.width:]
        return (nd.array(mixed, ctx=self.ctx),
                (lm_state, nd.array(tail, ctx=self.ctx)))

    def take_state(self, state, rows):
        lm_state, history = state
        index = nd.array(rows, ctx=self.ctx, dtype="int64")
        return (self.lm.take_state(lm_state, rows), nd.take(history, index, axis=0))

    def join_states(self, states):
        return (self.lm.join_states([s[0] for s in states]),
                nd.concat(*[s[1] for s in states], dim=0))

    def own_arrays(self, arrays):
        return self.lm.own_arrays(arrays)

    def named_parameters(self):
        return self.lm.named_parameters()


def _log_softmax(z):
    z = np.asarray(z, dtype=np.float64)
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
