"""Gated recurrent cells from scratch: the GRU (book 6.7) and the LSTM (book 6.8).

Parameters are plain NDArrays in the book's order, the state a tuple:

* GRU  ``[W_xz, W_hz, b_z, W_xr, W_hr, b_r, W_xh, W_hh, b_h, W_hq, b_q]``,
  state ``(H,)``;
* LSTM ``[W_xi, W_hi, b_i, W_xf, W_hf, b_f, W_xo, W_ho, b_o, W_xc, W_hc, b_c,
  W_hq, b_q]``, state ``(H, C)``;

with ``W_x* (V, h)``, ``W_h* (h, h)``, ``b_* (h,)``, ``W_hq (h, V)``,
``b_q (V,)`` and ``H, C: (batch, h)``.

The recurrences are ``lyricnn.models.cells.gru_step`` and ``lstm_step``. As for the
plain RNN, ``gru``/``lstm`` are the book's forms (a list of one-hot ``(batch,
V)`` arrays in, one output per step out) and ``gru_sequence``/``lstm_sequence``
the fast forms (indices ``(batch, num_steps)`` in, logits ``(num_steps * batch,
V)`` out), which ``train_and_predict_rnn`` and ``predict_rnn`` use for them.
"""
from lyricnn.models import cells


def get_gru_params(vocab_size, num_hiddens, ctx=None):
    """Fresh GRU parameters with gradients attached, in the book's order (6.7.2)."""
    return cells.init_params(cells.GRU, vocab_size, num_hiddens, 1, ctx)


def init_gru_state(batch_size, num_hiddens, ctx):
    """The initial state ``(H,)``, ``H = zeros((batch_size, num_hiddens))`` (book 6.7.2)."""
    return cells.GRU.zero_state(1, batch_size, num_hiddens, ctx)


def gru(inputs, state, params):
    """The book's GRU (6.7.2): ``inputs`` a list of ``(batch, V)`` -> ``(outputs, (H,))``.

    ``outputs`` is a list of ``(batch, V)`` logits ``Y = H W_hq + b_q``, one per step.
    """
    return cells.unrolled(cells.GRU, inputs, state, params)


def gru_sequence(X, state, params):
    """Fast ``gru``: ``X: (batch, num_steps)`` -> ``(logits (num_steps*batch, V), (H,))``."""
    return cells.sequence(cells.GRU, X, state, params)


def get_lstm_params(vocab_size, num_hiddens, ctx=None):
    """Fresh LSTM parameters with gradients attached, in the book's order (6.8.2)."""
    return cells.init_params(cells.LSTM, vocab_size, num_hiddens, 1, ctx)


def init_lstm_state(batch_size, num_hiddens, ctx):
    """The initial state ``(H, C)``, both ``zeros((batch_size, num_hiddens))`` (book 6.8.2)."""
    return cells.LSTM.zero_state(1, batch_size, num_hiddens, ctx)


def lstm(inputs, state, params):
    """The book's LSTM (6.8.2): ``inputs`` a list of ``(batch, V)`` -> ``(outputs, (H, C))``.

    Only ``H`` reaches the output layer; the memory cell ``C`` does not.
    """
    return cells.unrolled(cells.LSTM, inputs, state, params)


def lstm_sequence(X, state, params):
    """Fast ``lstm``: ``X: (batch, num_steps)`` -> ``(logits (num_steps*batch, V), (H, C))``."""
    return cells.sequence(cells.LSTM, X, state, params)
