import d2lzh
import mxnet as mx
import numpy as np
import pytest
from mxnet.gluon import rnn as gluon_rnn

import lyricnn as d2l
from oracle import book_notebook as book
from lyricnn.decoding.generate import check_decoding, choose_next

CORPUS = d2l.load_data_jay_lyrics()


def _trained_like_params(V, hidden=32, seed=0):
    """Random parameters big enough that greedy decoding is not all one character."""
    mx.random.seed(seed)
    params = d2l.get_params(V, hidden)
    for p in params:
        p[:] = mx.nd.random.normal(scale=0.5, shape=p.shape)
    return params


@pytest.mark.parametrize("cell", [d2l.rnn, book.rnn])
def test_predict_rnn_equals_d2lzh(cell):
    ci, c2i, i2c, V = CORPUS
    params = _trained_like_params(V)
    args = (30, cell, params, d2l.init_rnn_state, 32, V, None, i2c, c2i)
    ours = d2l.predict_rnn("分开", *args)
    theirs = d2lzh.predict_rnn("分开", *args)
    assert ours == theirs
    assert ours.startswith("分开") and len(ours) == 32
    assert len(set(ours[2:])) > 3  # not a degenerate comparison


def test_predict_rnn_gluon_equals_d2lzh_on_the_same_model():
    ci, c2i, i2c, V = CORPUS
    mx.random.seed(0)
    model = d2l.RNNModel(gluon_rnn.RNN(32), V)
    model.initialize(mx.init.Normal(0.5))
    ours = d2l.predict_rnn_gluon("不分开", 20, model, V, None, i2c, c2i)
    theirs = d2lzh.predict_rnn_gluon("不分开", 20, model, V, None, i2c, c2i)
    assert ours == theirs and len(ours) == 23


def test_unknown_prefix_character_is_named():
    ci, c2i, i2c, V = CORPUS
    params = d2l.get_params(V, 8)
    with pytest.raises(ValueError, match="'龘'"):
        d2l.predict_rnn("分龘", 5, d2l.rnn, params, d2l.init_rnn_state, 8, V, None, i2c, c2i)
    with pytest.raises(ValueError, match="prefix"):
        d2l.predict_rnn("", 5, d2l.rnn, params, d2l.init_rnn_state, 8, V, None, i2c, c2i)
    with pytest.raises(ValueError, match="num_chars"):
        d2l.predict_rnn("分", -1, d2l.rnn, params, d2l.init_rnn_state, 8, V, None, i2c, c2i)


def _predict(params, **kw):
    ci, c2i, i2c, V = CORPUS
    return d2l.predict_rnn("分开", 40, d2l.rnn, params, d2l.init_rnn_state, 32, V, None,
                           i2c, c2i, **kw)


def test_temperature_zero_and_top_k_one_equal_greedy():
    params = _trained_like_params(CORPUS[3], seed=1)
    greedy = _predict(params)
    assert _predict(params, strategy="sample", temperature=0) == greedy
    assert _predict(params, strategy="sample", top_k=1, seed=5) == greedy
    assert _predict(params, strategy="sample", temperature=1e-4, seed=5) == greedy


def test_sampling_is_seeded_and_varied():
    params = _trained_like_params(CORPUS[3], seed=2)
    a = _predict(params, strategy="sample", temperature=1.5, seed=7)
    assert a == _predict(params, strategy="sample", temperature=1.5, seed=7)
    assert a != _predict(params, strategy="sample", temperature=1.5, seed=8)
    assert a != _predict(params)


def test_sampled_characters_always_lie_in_the_top_k():
    rng = np.random.default_rng(0)
    for _ in range(200):
        logits = rng.normal(size=50) * 3
        k = int(rng.integers(1, 8))
        top = set(np.argsort(-logits)[:k])
        pick = choose_next(logits, "sample", temperature=2.0, top_k=k, rng=rng)
        assert pick in top


def test_sampling_follows_the_softmax():
    logits = np.log(np.array([0.6, 0.3, 0.1]))
    rng = np.random.default_rng(1)
    counts = np.bincount([choose_next(logits, "sample", rng=rng) for _ in range(5000)],
                         minlength=3) / 5000
    np.testing.assert_allclose(counts, [0.6, 0.3, 0.1], atol=0.03)


@pytest.mark.parametrize("kw,name", [(dict(strategy="beam"), "strategy"),
                                     (dict(temperature=-1), "temperature"),
                                     (dict(top_k=0), "top_k"), (dict(top_k=2.5), "top_k")])
def test_bad_decoding_options_are_named(kw, name):
    args = dict(strategy="sample", temperature=1.0, top_k=None)
    args.update(kw)
    with pytest.raises(ValueError, match=name):
        check_decoding(**args)


@pytest.mark.parametrize("kw,message", [
    (dict(temperature=float("nan")), "temperature must be a finite number >= 0, got nan"),
    (dict(seed=-1), "seed must be an integer >= 0, got -1"),
    (dict(top_k=True), "top_k"),
])
def test_misused_decoding_options_are_named_before_any_mxnet_call(kw, message):
    args = dict(strategy="sample", temperature=1.0, top_k=None)
    args.update(kw)
    with pytest.raises(ValueError, match=message):
        check_decoding(**args)


def test_numpy_integers_are_accepted_as_top_k_and_seed():
    assert check_decoding("sample", np.float32(0.5), np.int64(3), np.int64(7)) == (0.5, 3)


def test_generation_length_is_bounded_up_front():
    import lyricnn as d2l
    from lyricnn.decoding.generate import MAX_LENGTH, generate
    from lyricnn.models.build import build_lm
    lm = build_lm("rnn-scratch", 5, 4)
    idx_to_char = list("abcde")
    char_to_idx = {c: i for i, c in enumerate(idx_to_char)}
    with pytest.raises(ValueError, match=f"num_chars must be an integer between 0 and {MAX_LENGTH}"):
        generate(lm, "ab", 99999999999999, idx_to_char, char_to_idx)
    assert len(d2l.generate(lm, "ab", np.int64(3), idx_to_char, char_to_idx)) == 5
