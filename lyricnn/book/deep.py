"""Deep recurrent networks from scratch: ``L`` stacked RNN, GRU or LSTM layers (book 6.9).

Layer 1 reads the one-hot characters; layer ``l > 1`` reads layer ``l − 1``'s
hidden state of the same step; the output layer reads the top layer's:
``H_t^(l) = cell(H_t^(l−1), H_{t−1}^(l))`` with ``H_t^(0) = X_t`` and
``Y_t = H_t^(L) W_hq + b_q``.

Layouts (``lyricnn.models.cells``; with ``L = 1`` they are exactly the single-layer
models' layouts, so ``deep_gru`` with one layer computes ``gru``):

* ``params``: each layer's arrays in the single-layer order, bottom layer
  first, then ``[W_hq, b_q]``; ``W_x*`` is ``(V, h)`` in layer 1 and ``(h, h)`` above.
* ``state``: a flat tuple, layer by layer from the bottom: ``(H_1, …, H_L)``
  for RNN and GRU, ``(H_1, C_1, H_2, C_2, …, H_L, C_L)`` for the LSTM.

The number of layers is read from ``params``; the training loop's
``get_params()`` and ``init_rnn_state(batch_size, num_hiddens, ctx)`` must
know it, so both are built for a given ``L``::

    get_params = d2l.deep_params_getter("gru", vocab_size, num_hiddens, 2, ctx)
    init_state = d2l.deep_state_initializer("gru", 2)
    d2l.train_and_predict_rnn(d2l.deep_gru, get_params, init_state, num_hiddens, ...)

``deep_rnn/deep_gru/deep_lstm`` are the book form and the ``*_sequence``
functions the fast form, both running the single-layer cells' steps.
"""
import functools

from lyricnn.models import cells
from lyricnn.checks import check_int


def deep_rnn(inputs, state, params):
    """Book form of an ``L``-layer RNN: one-hot ``inputs`` list -> ``(outputs, state)``."""
    return cells.unrolled(cells.RNN, inputs, state, params)


def deep_gru(inputs, state, params):
    """Book form of an ``L``-layer GRU: one-hot ``inputs`` list -> ``(outputs, state)``."""
    return cells.unrolled(cells.GRU, inputs, state, params)


def deep_lstm(inputs, state, params):
    """Book form of an ``L``-layer LSTM: one-hot ``inputs`` list -> ``(outputs, state)``."""
    return cells.unrolled(cells.LSTM, inputs, state, params)


def deep_rnn_sequence(X, state, params):
    """Fast ``deep_rnn``: ``X: (batch, num_steps)`` -> ``(logits (num_steps*batch, V), state)``."""
    return cells.sequence(cells.RNN, X, state, params)


def deep_gru_sequence(X, state, params):
    """Fast ``deep_gru``: ``X: (batch, num_steps)`` -> ``(logits (num_steps*batch, V), state)``."""
    return cells.sequence(cells.GRU, X, state, params)


def deep_lstm_sequence(X, state, params):
    """Fast ``deep_lstm``: ``X: (batch, num_steps)`` -> ``(logits (num_steps*batch, V), state)``."""
    return cells.sequence(cells.LSTM, X, state, params)


def _cell(cell):
    """``'rnn'``, ``'gru'``, ``'lstm'`` or ``deep_rnn``/``deep_gru``/``deep_lstm`` -> its ``Cell``."""
    by_function = {deep_rnn: cells.RNN, deep_gru: cells.GRU, deep_lstm: cells.LSTM}
    if callable(cell) and cell in by_function:
        return by_function[cell]
    return cells.get_cell(cell)


def get_deep_params(cell, vocab_size, num_hiddens, num_layers, ctx=None):
    """Fresh parameters of a ``num_layers``-layer ``cell``, gradients attached (layout above).

    Weights ~ N(0, 0.01²), biases zero, as the book initialises each layer.
    """
    return cells.init_params(_cell(cell), vocab_size, num_hiddens, num_layers, ctx)


def deep_params_getter(cell, vocab_size, num_hiddens, num_layers, ctx=None):
    """The zero-argument ``get_params()`` the book's training function calls, for ``L`` layers."""
    _cell(cell)
    check_int("num_layers", num_layers)
    return functools.partial(get_deep_params, cell, vocab_size, num_hiddens, num_layers, ctx)


def deep_state_initializer(cell, num_layers):
    """``init_state(batch_size, num_hiddens, ctx)`` giving the zero state of ``num_layers`` layers."""
    spec = _cell(cell)
    init_state = cells.state_initializer(spec, check_int("num_layers", num_layers))
    init_state.__name__ = f"init_deep_{spec.name}_state"
    init_state.__doc__ = (f"Zero state of a {num_layers}-layer {spec.name}: "
                          f"{num_layers * spec.num_states} arrays (batch_size, num_hiddens).")
    return init_state
