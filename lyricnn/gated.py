"""Gated recurrent cells from scratch: the GRU (book 6.7) and the LSTM (book 6.8).

Parameters are plain NDArrays in the book's order, the state a tuple:

* GRU  ``[W_xz, W_hz, b_z, W_xr, W_hr, b_r, W_xh, W_hh, b_h, W_hq, b_q]``,
  state ``(H,)``;
* LSTM ``[W_xi, W_hi, b_i, W_xf, W_hf, b_f, W_xo, W_ho, b_o, W_xc, W_hc, b_c,
  W_hq, b_q]``, state ``(H, C)``;

with ``W_x* (V, h)``, ``W_h* (h, h)``, ``b_* (h,)``, ``W_hq (h, V)``,
``b_q (V,)`` and ``H, C: (batch, h)``.

As for the plain RNN (``lyricnn.scratch``) each cell comes in two forms that
compute the same numbers:

* ``gru(inputs, state, params)`` / ``lstm(...)``: the book's, on a list of
  one-hot ``(batch, V)`` arrays, one ``dot`` per weight and step;
* ``gru_sequence(X, state, params)`` / ``lstm_sequence(...)``: indices
  ``X: (batch, num_steps)`` -> logits ``(num_steps * batch, V)`` time-major.
  The gates' input weights are concatenated so that one row gather gives every
  gate's input projection for every step; per step, the hidden products that do
  not depend on each other share one ``FullyConnected``, which also adds their
  biases (GRU: ``Z`` and ``R``; LSTM: all four); the output layer is one
  product over all steps.

Importing this module registers the fast forms in
``lyricnn.scratch.SEQUENCE_FORMS``, so ``train_and_predict_rnn`` and
``predict_rnn`` use them for ``gru`` and ``lstm``.

The per-layer pieces (``*_layer_params``, ``*_step``, ``*_input_weights``,
``*_recurrence``) are what ``lyricnn.deep`` stacks into multi-layer models.
"""
from mxnet import nd

from .scratch import SEQUENCE_FORMS, linear, split_steps

GRU_LAYER_PARAMS = 9    # [W_xz, W_hz, b_z, W_xr, W_hr, b_r, W_xh, W_hh, b_h]
LSTM_LAYER_PARAMS = 12  # [W_xi, W_hi, b_i, W_xf, W_hf, b_f, W_xo, W_ho, b_o, W_xc, W_hc, b_c]


def _normal(shape, ctx):
    return nd.random.normal(scale=0.01, shape=shape, ctx=ctx)


def gate_params(num_inputs, num_hiddens, ctx=None):
    """One gate's ``[W_x (num_inputs, h), W_h (h, h), b (h,)]``: N(0, 0.01²) weights, zero bias.

    The book's ``_three()`` (6.7.2).
    """
    return [_normal((num_inputs, num_hiddens), ctx), _normal((num_hiddens, num_hiddens), ctx),
            nd.zeros(num_hiddens, ctx=ctx)]


def output_params(num_hiddens, vocab_size, ctx=None):
    """The output layer ``[W_hq (h, V), b_q (V,)]``."""
    return [_normal((num_hiddens, vocab_size), ctx), nd.zeros(vocab_size, ctx=ctx)]


def attach_grads(params):
    """``attach_grad()`` on every array; returns ``params``."""
    for p in params:
        p.attach_grad()
    return params


def gather_inputs(X, W_x):
    """``one_hot(X.T) · W_x`` for every step at once, as a row gather.

    ``X: (batch, num_steps)`` -> ``(num_steps, batch, W_x.shape[1])``.  The
    biases are added later, inside the per-step ``FullyConnected``: broadcasting
    them over this whole array would cost a slow reduction in the backward pass.
    """
    return nd.Embedding(X.T, W_x, input_dim=W_x.shape[0], output_dim=W_x.shape[1])


def check_sizes(vocab_size, num_hiddens):
    """Raise ``ValueError`` naming ``vocab_size`` or ``num_hiddens`` unless positive ints."""
    for name, value in (("vocab_size", vocab_size), ("num_hiddens", num_hiddens)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


# ---------------------------------------------------------------------------- GRU

def gru_layer_params(num_inputs, num_hiddens, ctx=None):
    """One GRU layer: update gate, reset gate, candidate (9 arrays, no gradients yet)."""
    return [p for _ in range(3) for p in gate_params(num_inputs, num_hiddens, ctx)]


def get_gru_params(vocab_size, num_hiddens, ctx=None):
    """Fresh GRU parameters with gradients attached, in the book's order (6.7.2)."""
    check_sizes(vocab_size, num_hiddens)
    return attach_grads(gru_layer_params(vocab_size, num_hiddens, ctx)
                        + output_params(num_hiddens, vocab_size, ctx))


def init_gru_state(batch_size, num_hiddens, ctx):
    """The initial state ``(H,)``, ``H = zeros((batch_size, num_hiddens))`` (book 6.7.2)."""
    return (nd.zeros(shape=(batch_size, num_hiddens), ctx=ctx),)


def gru_step(X, H, layer_params):
    """One GRU step in the book's notation (6.7.1); ``X: (batch, d)``, ``H: (batch, h)`` -> ``H``.

    ``Z = σ(X W_xz + H W_hz + b_z)``, ``R = σ(X W_xr + H W_hr + b_r)``,
    ``H̃ = tanh(X W_xh + (R ⊙ H) W_hh + b_h)``, ``H = Z ⊙ H + (1 − Z) ⊙ H̃``.

    That is the book's formula and later notebook; the first release's notebook
    had ``R ⊙ (H W_hh)``, and Gluon's ``rnn.GRU`` computes ``R ⊙ (H W_hh + b)``.
    """
    W_xz, W_hz, b_z, W_xr, W_hr, b_r, W_xh, W_hh, b_h = layer_params
    Z = nd.sigmoid(nd.dot(X, W_xz) + nd.dot(H, W_hz) + b_z)
    R = nd.sigmoid(nd.dot(X, W_xr) + nd.dot(H, W_hr) + b_r)
    H_tilda = nd.tanh(nd.dot(X, W_xh) + nd.dot(R * H, W_hh) + b_h)
    return Z * H + (1 - Z) * H_tilda


def gru(inputs, state, params):
    """The book's GRU (6.7.2): ``inputs`` a list of ``(batch, V)`` -> ``(outputs, (H,))``.

    ``outputs`` is a list of ``(batch, V)`` logits ``Y = H W_hq + b_q``, one per step.
    """
    layer, (W_hq, b_q) = params[:GRU_LAYER_PARAMS], params[GRU_LAYER_PARAMS:]
    H, = state
    outputs = []
    for X in inputs:
        H = gru_step(X, H, layer)
        outputs.append(nd.dot(H, W_hq) + b_q)
    return outputs, (H,)


def gru_input_weights(layer_params):
    """``W_x (d, 3h)``: the gates' input weights side by side, columns ``[z | r | h̃]``."""
    W_xz, _, _, W_xr, _, _, W_xh, _, _ = layer_params
    return nd.concat(W_xz, W_xr, W_xh, dim=1)


def gru_recurrence(XW, state, layer_params):
    """Run a GRU layer over precomputed input projections.

    ``XW: (num_steps, batch, 3h)`` is ``X W_x`` for ``gru_input_weights``
    (biases not yet added); returns ``(hiddens, (H,))`` with ``hiddens`` a list
    of ``num_steps`` arrays ``(batch, h)``.  Per step: one product for both
    gates' ``H [W_hz | W_hr] + [b_z | b_r]`` (``W_hh`` needs ``R`` first, so it
    gets a second one), one sigmoid for both gates, and
    ``H = H̃ + Z ⊙ (H − H̃)``, the book's update in fewer operations.
    """
    _, W_hz, b_z, _, W_hr, b_r, _, W_hh, b_h = layer_params
    H, = state
    h = W_hh.shape[1]
    # Once per sequence: FullyConnected wants (out, in) weights.
    W_hzr_T, b_zr = nd.concat(W_hz, W_hr, dim=1).T, nd.concat(b_z, b_r, dim=0)
    W_hh_T = W_hh.T
    XW_zr = nd.slice_axis(XW, axis=2, begin=0, end=2 * h)
    XW_h = nd.slice_axis(XW, axis=2, begin=2 * h, end=3 * h)
    hiddens = []
    for XW_zr_t, XW_h_t in zip(split_steps(XW_zr), split_steps(XW_h)):
        ZR = nd.Activation(XW_zr_t + nd.FullyConnected(H, W_hzr_T, b_zr, num_hidden=2 * h),
                           act_type="sigmoid")
        Z, R = nd.split(ZR, num_outputs=2, axis=1)
        H_tilda = nd.Activation(XW_h_t + nd.FullyConnected(R * H, W_hh_T, b_h, num_hidden=h),
                                act_type="tanh")
        H = H_tilda + Z * (H - H_tilda)
        hiddens.append(H)
    return hiddens, (H,)


def gru_sequence(X, state, params):
    """Fast ``gru``: ``X: (batch, num_steps)`` -> ``(logits (num_steps*batch, V), (H,))``."""
    layer, (W_hq, b_q) = params[:GRU_LAYER_PARAMS], params[GRU_LAYER_PARAMS:]
    hiddens, state = gru_recurrence(gather_inputs(X, gru_input_weights(layer)), state, layer)
    return linear(nd.concat(*hiddens, dim=0), W_hq, b_q), state


# --------------------------------------------------------------------------- LSTM

def lstm_layer_params(num_inputs, num_hiddens, ctx=None):
    """One LSTM layer: input, forget, output gates and candidate cell (12 arrays)."""
    return [p for _ in range(4) for p in gate_params(num_inputs, num_hiddens, ctx)]


def get_lstm_params(vocab_size, num_hiddens, ctx=None):
    """Fresh LSTM parameters with gradients attached, in the book's order (6.8.2)."""
    check_sizes(vocab_size, num_hiddens)
    return attach_grads(lstm_layer_params(vocab_size, num_hiddens, ctx)
                        + output_params(num_hiddens, vocab_size, ctx))


def init_lstm_state(batch_size, num_hiddens, ctx):
    """The initial state ``(H, C)``, both ``zeros((batch_size, num_hiddens))`` (book 6.8.2)."""
    return (nd.zeros(shape=(batch_size, num_hiddens), ctx=ctx),
            nd.zeros(shape=(batch_size, num_hiddens), ctx=ctx))


def lstm_step(X, H, C, layer_params):
    """One LSTM step in the book's notation (6.8.1); returns ``(H, C)``, each ``(batch, h)``.

    ``I, F, O = σ(X W_x* + H W_h* + b_*)``, ``C̃ = tanh(X W_xc + H W_hc + b_c)``,
    ``C = F ⊙ C + I ⊙ C̃``, ``H = O ⊙ tanh(C)``.
    """
    W_xi, W_hi, b_i, W_xf, W_hf, b_f, W_xo, W_ho, b_o, W_xc, W_hc, b_c = layer_params
    I = nd.sigmoid(nd.dot(X, W_xi) + nd.dot(H, W_hi) + b_i)
    F = nd.sigmoid(nd.dot(X, W_xf) + nd.dot(H, W_hf) + b_f)
    O = nd.sigmoid(nd.dot(X, W_xo) + nd.dot(H, W_ho) + b_o)
    C_tilda = nd.tanh(nd.dot(X, W_xc) + nd.dot(H, W_hc) + b_c)
    C = F * C + I * C_tilda
    return O * C.tanh(), C


def lstm(inputs, state, params):
    """The book's LSTM (6.8.2): ``inputs`` a list of ``(batch, V)`` -> ``(outputs, (H, C))``.

    Only ``H`` reaches the output layer; the memory cell ``C`` does not.
    """
    layer, (W_hq, b_q) = params[:LSTM_LAYER_PARAMS], params[LSTM_LAYER_PARAMS:]
    H, C = state
    outputs = []
    for X in inputs:
        H, C = lstm_step(X, H, C, layer)
        outputs.append(nd.dot(H, W_hq) + b_q)
    return outputs, (H, C)


def lstm_input_weights(layer_params):
    """``W_x (d, 4h)``: the gates' input weights side by side, columns ``[i | f | o | c̃]``."""
    return nd.concat(*layer_params[0::3], dim=1)


def lstm_recurrence(XW, state, layer_params):
    """Run an LSTM layer over precomputed input projections ``XW: (num_steps, batch, 4h)``.

    ``XW`` is ``X W_x`` for ``lstm_input_weights``; returns ``(hiddens, (H, C))``.
    Per step, all four hidden products and biases are one ``FullyConnected``
    with ``[W_hi | W_hf | W_ho | W_hc]``; one ``split`` (whose backward is a
    single concatenation) separates the gates.
    """
    H, C = state
    h = H.shape[1]
    W_h_T = nd.concat(*layer_params[1::3], dim=1).T  # once per sequence
    b = nd.concat(*layer_params[2::3], dim=0)
    hiddens = []
    for XW_t in split_steps(XW):
        G = XW_t + nd.FullyConnected(H, W_h_T, b, num_hidden=4 * h)
        I, F, O, C_tilda = nd.split(G, num_outputs=4, axis=1)
        I, F, O = (nd.Activation(g, act_type="sigmoid") for g in (I, F, O))
        C = F * C + I * nd.Activation(C_tilda, act_type="tanh")
        H = O * nd.Activation(C, act_type="tanh")
        hiddens.append(H)
    return hiddens, (H, C)


def lstm_sequence(X, state, params):
    """Fast ``lstm``: ``X: (batch, num_steps)`` -> ``(logits (num_steps*batch, V), (H, C))``."""
    layer, (W_hq, b_q) = params[:LSTM_LAYER_PARAMS], params[LSTM_LAYER_PARAMS:]
    hiddens, state = lstm_recurrence(gather_inputs(X, lstm_input_weights(layer)), state, layer)
    return linear(nd.concat(*hiddens, dim=0), W_hq, b_q), state


SEQUENCE_FORMS[gru] = gru_sequence
SEQUENCE_FORMS[lstm] = lstm_sequence
