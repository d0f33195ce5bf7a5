"""The book's notebook code for sections 6.7 (GRU) and 6.8 (LSTM), as readers type it.

Like ``book_notebook.py`` for the plain RNN: d2lzh ships the training loop but
not these, so benchmarks and tests define them here and run them through d2lzh
as the reference.

The GRU candidate is ``nd.dot(R * H, W_hh)``, the book's formula
``(R ⊙ H) W_hh`` and its later notebook; the first release's notebook (the one
whose printed perplexities the README quotes) had ``R * nd.dot(H, W_hh)``,
kept here as ``gru_v1`` for comparison.
"""
from mxnet import nd


def _make_get_params(vocab_size, num_hiddens, ctx, num_gates):
    num_inputs, num_outputs = vocab_size, vocab_size

    def get_params():
        def _one(shape):
            return nd.random.normal(scale=0.01, shape=shape, ctx=ctx)

        def _three():
            return (_one((num_inputs, num_hiddens)),
                    _one((num_hiddens, num_hiddens)),
                    nd.zeros(num_hiddens, ctx=ctx))

        params = [p for _ in range(num_gates) for p in _three()]
        W_hq = _one((num_hiddens, num_outputs))
        b_q = nd.zeros(num_outputs, ctx=ctx)
        params += [W_hq, b_q]
        for param in params:
            param.attach_grad()
        return params
    return get_params


def make_gru_get_params(vocab_size, num_hiddens, ctx):
    """The GRU notebook's ``get_params``: 3 gates x ``(W_x*, W_h*, b_*)`` then ``W_hq, b_q``."""
    return _make_get_params(vocab_size, num_hiddens, ctx, 3)


def make_lstm_get_params(vocab_size, num_hiddens, ctx):
    """The LSTM notebook's ``get_params``: 4 gates x ``(W_x*, W_h*, b_*)`` then ``W_hq, b_q``."""
    return _make_get_params(vocab_size, num_hiddens, ctx, 4)


def init_gru_state(batch_size, num_hiddens, ctx):
    return (nd.zeros(shape=(batch_size, num_hiddens), ctx=ctx), )


def gru(inputs, state, params):
    W_xz, W_hz, b_z, W_xr, W_hr, b_r, W_xh, W_hh, b_h, W_hq, b_q = params
    H, = state
    outputs = []
    for X in inputs:
        Z = nd.sigmoid(nd.dot(X, W_xz) + nd.dot(H, W_hz) + b_z)
        R = nd.sigmoid(nd.dot(X, W_xr) + nd.dot(H, W_hr) + b_r)
        H_tilda = nd.tanh(nd.dot(X, W_xh) + nd.dot(R * H, W_hh) + b_h)
        H = Z * H + (1 - Z) * H_tilda
        Y = nd.dot(H, W_hq) + b_q
        outputs.append(Y)
    return outputs, (H,)


def gru_v1(inputs, state, params):
    W_xz, W_hz, b_z, W_xr, W_hr, b_r, W_xh, W_hh, b_h, W_hq, b_q = params
    H, = state
    outputs = []
    for X in inputs:
        Z = nd.sigmoid(nd.dot(X, W_xz) + nd.dot(H, W_hz) + b_z)
        R = nd.sigmoid(nd.dot(X, W_xr) + nd.dot(H, W_hr) + b_r)
        H_tilda = nd.tanh(nd.dot(X, W_xh) + R * nd.dot(H, W_hh) + b_h)
        H = Z * H + (1 - Z) * H_tilda
        Y = nd.dot(H, W_hq) + b_q
        outputs.append(Y)
    return outputs, (H,)


def init_lstm_state(batch_size, num_hiddens, ctx):
    return (nd.zeros(shape=(batch_size, num_hiddens), ctx=ctx),
            nd.zeros(shape=(batch_size, num_hiddens), ctx=ctx))


def lstm(inputs, state, params):
    [W_xi, W_hi, b_i, W_xf, W_hf, b_f, W_xo, W_ho, b_o, W_xc, W_hc, b_c,
     W_hq, b_q] = params
    (H, C) = state
    outputs = []
    for X in inputs:
        I = nd.sigmoid(nd.dot(X, W_xi) + nd.dot(H, W_hi) + b_i)
        F = nd.sigmoid(nd.dot(X, W_xf) + nd.dot(H, W_hf) + b_f)
        O = nd.sigmoid(nd.dot(X, W_xo) + nd.dot(H, W_ho) + b_o)
        C_tilda = nd.tanh(nd.dot(X, W_xc) + nd.dot(H, W_hc) + b_c)
        C = F * C + I * C_tilda
        H = O * C.tanh()
        Y = nd.dot(H, W_hq) + b_q
        outputs.append(Y)
    return outputs, (H, C)
