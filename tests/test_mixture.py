"""lyricnn.models.mixture: a language model interpolated with a Kneser-Ney n-gram."""
import numpy as np
import pytest
from mxnet import nd

import lyricnn as d2l
from lyricnn.decoding.engine import Decoder, Options, Vocabulary
from lyricnn.models.mixture import NGramMixture
from lyricnn.ngram.model import NGramLM

TEXT = "想要有直升机想要和你飞到宇宙去想要和你融化在一起融化在宇宙里"


@pytest.fixture(scope="module")
def parts():
    """A GRU over the whole text's characters; a 3-gram fitted on all but its last 3 (so
    three of the model's characters are unseen by the n-gram and share its <unk>)."""
    idx_to_token = list(dict.fromkeys(TEXT + "甲乙丙"))
    d2l.set_seed(1)
    lm = d2l.build_lm("gru", len(idx_to_token), 8)
    return lm, NGramLM(3, "kneser-ney").fit(list(TEXT)), idx_to_token


def forward(model, tokens, batch=1):
    X = nd.array([tokens] * batch)
    logits, _ = model(X, model.begin_state(batch))
    return logits.asnumpy().astype(np.float64)                   # (T * batch, V)


def test_the_mixture_is_a_distribution_and_its_definition(parts):
    lm, ngram, idx_to_token = parts
    c2i = {c: i for i, c in enumerate(idx_to_token)}
    tokens = [c2i[c] for c in "想要和你飞"]
    mix = NGramMixture(lm, ngram, idx_to_token, 0.3)
    log_mix = forward(mix, tokens)
    got = np.exp(log_mix)
    # The log-probabilities come back as float32: each rounded by at most |log p| * 2**-24,
    # so each probability is off by that factor at most, and so is every sum of them.
    rtol = np.abs(log_mix).max() * 2.0**-24
    # Each row sums to 1 (the n-gram's <unk> mass shared by the 3 characters it never saw).
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=rtol)
    z = forward(lm, tokens)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    for t in range(len(tokens)):
        context = "想要和你飞"[max(0, t - 1):t + 1]
        unk = ngram.prob("<unk>", context)
        q = np.array([ngram.prob(c, context) if c in ngram.vocab.token_to_idx else unk / 3
                      for c in idx_to_token])
        np.testing.assert_allclose(got[t], 0.3 * p[t] + 0.7 * q, rtol=rtol + 1e-12)


def test_weight_one_is_the_model_alone(parts):
    lm, ngram, idx_to_token = parts
    z = forward(lm, [0, 1, 2])
    own = z - z.max(axis=1, keepdims=True)
    own -= np.log(np.exp(own).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(forward(NGramMixture(lm, ngram, idx_to_token, 1.0), [0, 1, 2]),
                               own, rtol=1e-6, atol=1e-6)


def test_the_state_carries_the_history_across_calls_and_rows(parts):
    lm, ngram, idx_to_token = parts
    mix = NGramMixture(lm, ngram, idx_to_token, 0.5)
    whole = forward(mix, [0, 1, 2, 3])
    state = mix.begin_state(1)
    first, state = mix(nd.array([[0, 1]]), state)
    second, state = mix(nd.array([[2, 3]]), state)
    np.testing.assert_allclose(np.concatenate([first.asnumpy(), second.asnumpy()]), whole,
                               rtol=1e-5, atol=1e-6)
    two = mix.join_states([mix.begin_state(1), mix.begin_state(2)])
    assert two[1].shape == (3, 2) and mix.take_state(two, [2, 0])[1].shape == (2, 2)


def test_the_decoding_engine_reads_it(parts):
    lm, ngram, idx_to_token = parts
    mix = NGramMixture(lm, ngram, idx_to_token, 0.5)
    decoder = Decoder(mix, Vocabulary(idx_to_token))
    out = decoder.generate([0, 1], Options(max_tokens=12, temperature=0.8), n=3, seed=2)
    alone = decoder.generate([0, 1], Options(max_tokens=12, temperature=0.8), seed=out[1].seed)
    assert len(out) == 3 and all(len(c.tokens) == 12 for c in out)
    assert alone[0].tokens == out[1].tokens


def test_a_bad_weight_is_named(parts):
    lm, ngram, idx_to_token = parts
    with pytest.raises(ValueError, match="weight"):
        NGramMixture(lm, ngram, idx_to_token, 0)
