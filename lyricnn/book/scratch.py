"""A recurrent neural network from scratch (book 6.4).

Parameters are plain NDArrays ``[W_xh (V, h), W_hh (h, h), b_h (h,), W_hq (h, V),
b_q (V,)]``; the state is a tuple ``(H,)`` with ``H: (batch, h)``.

Two forms of the same model, both running ``lyricnn.models.cells.rnn_step``:

* ``rnn(inputs, state, params)`` is the book's: ``inputs`` is a list of
  ``num_steps`` one-hot arrays ``(batch, V)`` and it returns one output per step;
* ``rnn_sequence(X, state, params)`` takes the indices ``X: (batch, num_steps)``
  and returns all logits at once, ``(num_steps * batch, V)``, time-major like
  ``nd.concat(*outputs, dim=0)``: the same numbers, computed faster
  (``lyricnn.models.cells.sequence``).

``train_and_predict_rnn`` and ``predict_rnn`` run ``rnn`` through
``rnn_sequence`` (the mapping is ``lyricnn.book.trainers.FAST_FORMS``).
"""
import functools

from lyricnn.models import cells


def get_params(vocab_size, num_hiddens, ctx=None):
    """Fresh RNN parameters with gradients attached (book 6.4.2).

    Weights ~ N(0, 0.01²), biases zero, drawn in the book's order.
    """
    return cells.init_params(cells.RNN, vocab_size, num_hiddens, 1, ctx)


def params_getter(vocab_size, num_hiddens, ctx=None, factory=get_params):
    """A zero-argument ``get_params()`` as the book's training function calls it.

    The book defines ``get_params`` in the notebook as a closure over global
    ``num_inputs, num_hiddens, ctx``; this builds the same callable explicitly::

        get_params = d2l.params_getter(vocab_size, 256, ctx)
        d2l.train_and_predict_rnn(d2l.rnn, get_params, d2l.init_rnn_state, ...)
    """
    return functools.partial(factory, vocab_size, num_hiddens, ctx)


def init_rnn_state(batch_size, num_hiddens, ctx):
    """The initial state ``(H,)``, ``H = zeros((batch_size, num_hiddens))`` (book 6.4.2)."""
    return cells.RNN.zero_state(1, batch_size, num_hiddens, ctx)


def rnn(inputs, state, params):
    """The book's RNN: ``H = tanh(X W_xh + H W_hh + b_h)``, ``Y = H W_hq + b_q``.

    ``inputs``: list of ``num_steps`` arrays ``(batch, V)``; returns
    ``(outputs, (H,))`` with ``outputs`` a list of ``(batch, V)`` arrays.
    The step is ``lyricnn.models.cells.rnn_step``; the loop ``lyricnn.models.cells.unrolled``.
    """
    return cells.unrolled(cells.RNN, inputs, state, params)


def rnn_sequence(X, state, params):
    """Fast ``rnn``: ``X: (batch, num_steps)`` indices -> ``(logits (num_steps*batch, V), (H,))``."""
    return cells.sequence(cells.RNN, X, state, params)
