import contextlib
import io

import mxnet as mx
import numpy as np
import pytest
from gradcheck import check_gradients_numerically, loss_and_grads as _loss_and_grads
from mxnet import nd
from mxnet.gluon import rnn as gluon_rnn

import lyricnn as d2l
from oracle import book_notebook_gated as book
from lyricnn.book.gated import (
    get_gru_params, get_lstm_params, gru, gru_sequence, init_gru_state, init_lstm_state, lstm,
    lstm_sequence)
from lyricnn.models.onehot import to_onehot
from lyricnn.book.trainers import FAST_FORMS, scratch_lm
from lyricnn.models import cells
from lyricnn.book.scratch import params_getter

from float_error import assert_same_function

V, H = 40, 16
CELLS = {
    # name: (book-form cell, fast form, get_params, init_state, notebook cell, state tensors)
    "gru": (gru, gru_sequence, get_gru_params, init_gru_state, book.gru, 1),
    "lstm": (lstm, lstm_sequence, get_lstm_params, init_lstm_state, book.lstm, 2),
}


def _random_params(cell, vocab_size, num_hiddens, seed=0, scale=0.3, dtype="float32"):
    """Parameters large enough that every term matters (init's 0.01 would hide errors)."""
    rs = np.random.RandomState(seed)
    shapes = [p.shape for p in CELLS[cell][2](vocab_size, num_hiddens)]
    params = [nd.array(rs.normal(scale=scale, size=s), dtype=dtype) for s in shapes]
    for p in params:
        p.attach_grad()
    return params


def _random_state(cell, batch, num_hiddens, rs, dtype="float32"):
    return tuple(nd.array(rs.normal(scale=0.5, size=(batch, num_hiddens)), dtype=dtype)
                 for _ in range(CELLS[cell][5]))


def _one_hot_forward(step_fn, vocab_size):
    def forward(X, state, params):
        inputs = [x.astype(params[0].dtype) for x in to_onehot(X, vocab_size)]
        outputs, state = step_fn(inputs, state, params)
        return nd.concat(*outputs, dim=0), state
    return forward


# ------------------------------------------------------------ parameters, states

@pytest.mark.parametrize("cell,num_gates", [("gru", 3), ("lstm", 4)])
def test_get_params_shapes_init_and_grads(cell, num_gates):
    mx.random.seed(0)
    params = CELLS[cell][2](1027, 256)
    gate = [(1027, 256), (256, 256), (256,)]
    assert [p.shape for p in params] == gate * num_gates + [(256, 1027), (1027,)]
    weights, biases = params[0:-2:3] + params[1:-2:3] + params[-2:-1], params[2:-2:3] + params[-1:]
    for W in weights:
        assert abs(float(W.asnumpy().std()) - 0.01) < 0.0005
    assert not any(b.asnumpy().any() for b in biases)
    assert all(p.grad is not None for p in params)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_params_getter_and_init_state_on_a_context(cell):
    _, _, factory, init_state, _, num_states = CELLS[cell]
    ctx = mx.cpu(1)
    get = params_getter(V, H, ctx, factory=factory)
    a, b = get(), get()
    assert all(p.context == ctx for p in a)
    assert not np.array_equal(a[0].asnumpy(), b[0].asnumpy())  # fresh every call
    state = init_state(3, H, ctx)
    assert isinstance(state, tuple) and len(state) == num_states
    assert all(s.shape == (3, H) and s.context == ctx and not s.asnumpy().any() for s in state)


@pytest.mark.parametrize("factory", [get_gru_params, get_lstm_params])
@pytest.mark.parametrize("bad", [("vocab_size", 0, 8), ("num_hiddens", 10, -1),
                                 ("num_hiddens", 10, 2.0)])
def test_bad_sizes_raise_value_error_naming_them(factory, bad):
    name, vocab_size, num_hiddens = bad
    with pytest.raises(ValueError, match=name):
        factory(vocab_size, num_hiddens)


def test_book_cells_train_in_their_cells_fast_form():
    assert FAST_FORMS[gru] is cells.GRU and FAST_FORMS[lstm] is cells.LSTM
    assert scratch_lm(gru, [], None, 4, V, None)._forward.forward.args == (cells.GRU,)
    # a notebook cell runs one-hot, as in the book
    assert scratch_lm(book.gru, [], None, 4, V, None).cell is book.gru


# ------------------------------------------------- the gate equations, in NumPy

def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _numpy_gru(X, H, params):
    W_xz, W_hz, b_z, W_xr, W_hr, b_r, W_xh, W_hh, b_h, W_hq, b_q = params
    outputs = []
    for x in np.eye(W_xz.shape[0])[X.T]:  # one-hot (batch, V) per step
        Z = _sigmoid(x @ W_xz + H @ W_hz + b_z)
        R = _sigmoid(x @ W_xr + H @ W_hr + b_r)
        H_tilda = np.tanh(x @ W_xh + (R * H) @ W_hh + b_h)
        H = Z * H + (1 - Z) * H_tilda
        outputs.append(H @ W_hq + b_q)
    return np.concatenate(outputs), (H,)


def _numpy_lstm(X, H, C, params):
    W_xi, W_hi, b_i, W_xf, W_hf, b_f, W_xo, W_ho, b_o, W_xc, W_hc, b_c, W_hq, b_q = params
    outputs = []
    for x in np.eye(W_xi.shape[0])[X.T]:
        I = _sigmoid(x @ W_xi + H @ W_hi + b_i)
        F = _sigmoid(x @ W_xf + H @ W_hf + b_f)
        O = _sigmoid(x @ W_xo + H @ W_ho + b_o)
        C_tilda = np.tanh(x @ W_xc + H @ W_hc + b_c)
        C = F * C + I * C_tilda
        H = O * np.tanh(C)
        outputs.append(H @ W_hq + b_q)
    return np.concatenate(outputs), (H, C)


NUMPY = {"gru": _numpy_gru, "lstm": _numpy_lstm}


@pytest.mark.parametrize("form", ["book", "fast"])
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_gate_equations_match_numpy(cell, form):
    vocab_size, num_hiddens, batch, steps = 7, 4, 2, 3
    rs = np.random.RandomState(1)
    params = _random_params(cell, vocab_size, num_hiddens, seed=2, scale=0.8, dtype="float64")
    state = _random_state(cell, batch, num_hiddens, rs, dtype="float64")
    X = rs.randint(0, vocab_size, size=(batch, steps))
    forward = (_one_hot_forward(CELLS[cell][0], vocab_size) if form == "book"
               else CELLS[cell][1])
    logits, new_state = forward(nd.array(X), state, params)
    expected, expected_state = NUMPY[cell](
        X, *(s.asnumpy().astype(np.float64) for s in state),
        [p.asnumpy().astype(np.float64) for p in params])
    assert len(new_state) == len(expected_state)
    assert_same_function([logits, *new_state], [expected, *expected_state])   # float64


# ----------------------------------------------- fast form == the book's notebook

@pytest.mark.parametrize("batch,steps", [(3, 7), (1, 1), (4, 35)])
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_fast_form_equals_the_books_notebook(cell, batch, steps):
    """In float64, to float_error.ROUTE64 (derived from float64 rounding)."""
    rs = np.random.RandomState(batch * 100 + steps)
    X, Y = (nd.array(rs.randint(0, V, size=(batch, steps))) for _ in range(2))
    state = _random_state(cell, batch, H, rs, dtype="float64")
    params = _random_params(cell, V, H, seed=steps, dtype="float64")
    ref_out, ref_grads = _loss_and_grads(_one_hot_forward(CELLS[cell][4], V), X, Y, params,
                                         state)
    fast_out, fast_grads = _loss_and_grads(CELLS[cell][1], X, Y, params, state)
    assert min(np.abs(g).max() for g in ref_grads) > 1e-3  # every gradient matters
    assert fast_out[0].shape == (steps * batch, V)
    assert_same_function(fast_out + fast_grads, ref_out + ref_grads)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_book_form_is_the_notebook_cell(cell):
    rs = np.random.RandomState(5)
    X = nd.array(rs.randint(0, V, size=(2, 6)))
    state = _random_state(cell, 2, H, rs, dtype="float64")
    params = _random_params(cell, V, H, seed=5, dtype="float64")
    ours, _ = _one_hot_forward(CELLS[cell][0], V)(X, state, params)
    theirs, _ = _one_hot_forward(CELLS[cell][4], V)(X, state, params)
    assert_same_function([ours], [theirs])   # float64: fused products, another order


# -------------------------------------------------------- finite differences

@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_gradients_match_finite_differences(cell):
    vocab_size, num_hiddens, batch, steps = 5, 3, 2, 3
    rs = np.random.RandomState(7)
    params = _random_params(cell, vocab_size, num_hiddens, seed=8, scale=0.5, dtype="float64")
    state = _random_state(cell, batch, num_hiddens, rs, dtype="float64")
    X, Y = (nd.array(rs.randint(0, vocab_size, size=(batch, steps)), dtype="float64")
            for _ in range(2))
    check_gradients_numerically(CELLS[cell][1], params, state, X, Y)


# ----------------------------------------------------------- training runs

# Perplexity after 8 epochs (hidden 64, the book's lr/clipping/steps/batch,
# the default 10000-character corpus) measured for seeds 0, 1, 2:
#   scratch GRU 304.0 303.7 304.1   scratch LSTM 303.6 304.1 303.6
#   Gluon GRU   309.1 309.1 309.1   Gluon LSTM   303.5 307.0 306.8
# after about 645-660 in epoch 1.  The bounds leave ~10% margin.
EPOCHS, HIDDEN, FINAL_BOUND = 8, 64, 340


@pytest.fixture(scope="module")
def lyrics(lyrics_zip):
    return d2l.load_data_jay_lyrics(lyrics_zip)


def _common(lyrics, ctx):
    corpus_indices, char_to_idx, idx_to_char, vocab_size = lyrics
    return dict(num_hiddens=HIDDEN, vocab_size=vocab_size, ctx=ctx,
                corpus_indices=corpus_indices, idx_to_char=idx_to_char,
                char_to_idx=char_to_idx, num_epochs=EPOCHS, num_steps=35, lr=1e2,
                clipping_theta=1e-2, batch_size=32, pred_period=EPOCHS, pred_len=10,
                prefixes=["分开"])


def _assert_learned(history, printed):
    assert history.epoch == list(range(1, EPOCHS + 1))
    assert history.perplexity[-1] < FINAL_BOUND
    assert history.perplexity[-1] < 0.6 * history.perplexity[0]
    assert f"epoch {EPOCHS}, perplexity" in printed and " - 分开" in printed


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_scratch_training_lowers_perplexity_on_cpu1(cell, lyrics):
    step_fn, _, factory, init_state, _, _ = CELLS[cell]
    ctx = mx.cpu(1)
    common = _common(lyrics, ctx)
    trained = []

    def get_params():  # the book's zero-argument call; keep the trained arrays
        trained.append(params_getter(common["vocab_size"], HIDDEN, ctx, factory=factory)())
        return trained[-1]

    d2l.set_seed(0)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        history = d2l.train_and_predict_rnn(step_fn, get_params, init_state, is_random_iter=False,
                                            **common)
    _assert_learned(history, out.getvalue())
    assert all(p.context == ctx for p in trained[0])
    text = d2l.predict_rnn("不分开", 12, step_fn, trained[0], init_state, HIDDEN,
                           common["vocab_size"], ctx, common["idx_to_char"],
                           common["char_to_idx"])
    assert text.startswith("不分开") and len(text) == 3 + 12


@pytest.mark.slow
@pytest.mark.parametrize("layer", [gluon_rnn.GRU, gluon_rnn.LSTM])
def test_gluon_training_lowers_perplexity_on_cpu1(layer, lyrics):
    ctx = mx.cpu(1)
    common = _common(lyrics, ctx)
    d2l.set_seed(0)
    model = d2l.RNNModel(layer(HIDDEN), common["vocab_size"])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        history = d2l.train_and_predict_rnn_gluon(model, **common)
    _assert_learned(history, out.getvalue())
    assert all(p.data(ctx).context == ctx for p in model.collect_params().values())
    text = d2l.predict_rnn_gluon("不分开", 12, model, common["vocab_size"], ctx,
                                 common["idx_to_char"], common["char_to_idx"])
    assert text.startswith("不分开") and len(text) == 3 + 12


@pytest.mark.parametrize("layer,num_states", [(gluon_rnn.GRU, 1), (gluon_rnn.LSTM, 2)])
def test_gluon_multilayer_state_and_prediction(layer, num_states, lyrics):
    corpus_indices, char_to_idx, idx_to_char, vocab_size = lyrics
    ctx = mx.cpu(1)
    model = d2l.RNNModel(layer(8, num_layers=2), vocab_size)
    model.initialize(ctx=ctx)
    state = model.begin_state(batch_size=3, ctx=ctx)
    assert isinstance(state, list) and len(state) == num_states  # LSTM: [H, C]
    assert all(s.shape == (2, 3, 8) for s in state)
    logits, new_state = model(nd.array([[1, 2, 3, 4]] * 3, ctx=ctx), state)
    assert logits.shape == (4 * 3, vocab_size) and len(new_state) == num_states
    text = d2l.predict_rnn_gluon("分开", 5, model, vocab_size, ctx, idx_to_char, char_to_idx)
    assert text.startswith("分开") and len(text) == 2 + 5
