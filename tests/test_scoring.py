"""lyricnn.decoding.score: log P(text[1:] | text[0]) under a trained RNN, against brute force."""
import math

import mxnet as mx
import numpy as np
import pytest
from mxnet import init, nd
from mxnet.gluon import rnn as grnn

from lyricnn.models import cells
from lyricnn.decoding import score as scoring
from lyricnn.data.corpus import Vocab
from lyricnn.models.gluon import RNNModel
from lyricnn.ngram.model import rank
from lyricnn.book.scratch import init_rnn_state
from lyricnn.models.interface import GluonLM, ScratchLM

from float_error import ROUTE64, U64

VOCAB = Vocab.from_tokens("我想要你的微笑 分开ab")
V, H = len(VOCAB), 12
C2I = VOCAB.token_to_idx
TEXT = "我想要你的微笑 分开 我想你的微笑ab我"


# The models run in float64: scoring's results are compared with other orders of the
# same sums (chunks, one step per call, NumPy) to float_error.ROUTE64.

def scratch_lm(seed=0, scale=0.4):
    """A scratch RNN with weights large enough that every character's probability differs."""
    rs = np.random.RandomState(seed)
    params = [nd.array(rs.normal(scale=scale, size=s), dtype="float64")
              for s in [(V, H), (H, H), (H,), (H, V), (V,)]]
    for p in params:
        p.attach_grad()

    def init_state64(*args):
        return tuple(s.astype("float64") for s in init_rnn_state(*args))
    return ScratchLM(cells.RNN, params, init_state64, H, V, mx.cpu())   # the fast form


def gluon_lm(layer=grnn.GRU, seed=0, scale=0.3):
    """Looking its inputs up (RNNModel's one-hot path makes float32 one-hot vectors)."""
    mx.random.seed(seed)
    model = RNNModel(layer(H, num_layers=2), V, gather_inputs=True)
    model.initialize(init=init.Normal(scale))
    model.cast("float64")
    return GluonLM(model, V, mx.cpu())


def brute_force_scratch(lm, text):
    """The book's RNN by hand in float64: H = tanh(x W_xh + H W_hh + b_h), softmax(H W_hq + b_q)."""
    W_xh, W_hh, b_h, W_hq, b_q = (p.asnumpy().astype(np.float64) for p in lm.params)
    h = np.zeros(H)
    total = 0.0
    for prev, nxt in zip(text, text[1:]):
        h = np.tanh(W_xh[C2I[prev]] + h @ W_hh + b_h)
        logits = h @ W_hq + b_q
        total += logits[C2I[nxt]] - np.log(np.exp(logits - logits.max()).sum()) - logits.max()
    return total


def step_by_step(lm, text):
    """One character per forward call, carrying the state; per-step log-softmax in float64."""
    state = lm.begin_state(1)
    total = 0.0
    for prev, nxt in zip(text, text[1:]):
        logits, state = lm.forward(nd.array([[C2I[prev]]]), state)
        z = logits.asnumpy()[0].astype(np.float64)
        total += z[C2I[nxt]] - (z.max() + np.log(np.exp(z - z.max()).sum()))
    return total


def test_log_prob_equals_the_hand_computed_rnn():
    lm = scratch_lm()
    expected = brute_force_scratch(lm, TEXT)
    assert expected < -5  # far from 0: a wrong index or sign would show
    assert scoring.log_prob(lm, TEXT, C2I) == pytest.approx(expected, rel=ROUTE64)


@pytest.mark.parametrize("make", [scratch_lm, gluon_lm, lambda: gluon_lm(grnn.LSTM)],
                         ids=["scratch", "gluon-gru", "gluon-lstm"])
def test_log_prob_equals_per_step_softmax(make):
    lm = make()
    assert scoring.log_prob(lm, TEXT, C2I) == pytest.approx(step_by_step(lm, TEXT),
                                                            rel=ROUTE64)


def test_chunks_carry_the_state(monkeypatch):
    lm = gluon_lm()
    whole = scoring.token_log_probs(lm, TEXT, C2I)
    monkeypatch.setattr(scoring, "CHUNK", 3)
    np.testing.assert_allclose(scoring.token_log_probs(lm, TEXT, C2I), whole, rtol=ROUTE64)
    assert whole.shape == (len(TEXT) - 1,)


def test_chain_rule_prefixes_and_normalisation():
    lm = scratch_lm(seed=3)
    per_token = scoring.token_log_probs(lm, TEXT, C2I)
    # A prefix's score is the first terms of the whole text's.
    np.testing.assert_allclose(scoring.token_log_probs(lm, TEXT[:6], C2I), per_token[:5],
                               rtol=ROUTE64)
    # P(prefix + c) summed over every next character c is P(prefix).
    prefix = TEXT[:5]
    ext = [scoring.log_prob(lm, prefix + c, C2I) for c in VOCAB.idx_to_token]
    assert np.logaddexp.reduce(ext) == pytest.approx(scoring.log_prob(lm, prefix, C2I),
                                                     abs=ROUTE64)


def test_perplexity_of_is_exp_of_the_mean_negative_log_prob():
    lm = scratch_lm()
    logp = scoring.log_prob(lm, TEXT, C2I)
    # The same float64 log-probabilities: their mean and sum / n differ by a rounding or
    # two, which exp turns into a relative 4 u |mean| (+ its own).
    mean = -logp / (len(TEXT) - 1)
    assert scoring.perplexity_of(lm, TEXT, C2I) == pytest.approx(
        math.exp(mean), rel=4 * U64 * (abs(mean) + 1))
    # An untrained model is close to uniform: perplexity near the vocabulary size. Not a
    # rounding bound: with every logit within z of 0, -log p lies within 2 z of log V, so
    # the perplexity within a factor exp(+-2 z) of V.
    uniform = gluon_lm(scale=1e-4)
    z = max(np.abs(uniform(nd.array([[C2I[c] for c in TEXT]]),
                           uniform.begin_state(1))[0].asnumpy()).max(), 1e-300)
    assert scoring.perplexity_of(uniform, TEXT, C2I) == pytest.approx(V, rel=math.expm1(2 * z))


def test_unknown_characters_are_named():
    lm = scratch_lm()
    with pytest.raises(ValueError, match="'☃z'"):
        scoring.log_prob(lm, "我☃想z☃", C2I)
    with pytest.raises(ValueError, match="at least 2 characters"):
        scoring.perplexity_of(lm, "我", C2I)


def test_rank_orders_by_log_prob():
    # Output bias makes 'a' far more likely than anything else after any character.
    lm = scratch_lm(scale=0.01)
    lm.params[4][:] = 0
    lm.params[4][C2I["a"]] = 8.0
    ranked = rank(["我b", "我a", "aaa", "我ab"], scoring.scorer(lm, C2I))
    assert [t for t, _ in ranked] == ["我a", "aaa", "我b", "我ab"]
    for text, value in ranked:   # the same function on the same text: the same float
        assert value == scoring.log_prob(lm, text, C2I)
    values = [v for _, v in ranked]
    assert values == sorted(values, reverse=True)
