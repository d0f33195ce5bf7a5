"""A recurrent neural network from scratch (book 6.4).

Parameters are plain NDArrays ``[W_xh (V, h), W_hh (h, h), b_h (h,), W_hq (h, V),
b_q (V,)]``; the state is a tuple ``(H,)`` with ``H: (batch, h)``.

Two forms of the same model:

* ``rnn(inputs, state, params)`` is the book's: ``inputs`` is a list of
  ``num_steps`` one-hot arrays ``(batch, V)`` and it returns one output per step.
* ``rnn_sequence(X, state, params)`` takes the indices ``X: (batch, num_steps)``
  and returns all logits at once, ``(num_steps * batch, V)``, time-major like
  ``nd.concat(*outputs, dim=0)``.  It computes the same numbers faster:
  ``one_hot(x) · W_xh`` is the row gather ``W_xh[x]``, the input projection of
  all steps is one gather, the output layer is one matrix product over all
  steps, and the operators are the MKL-DNN ones (``FullyConnected``,
  ``Activation``), several times faster here than ``dot``/``tanh``.

``sequence_forward(step_fn, vocab_size)`` gives the training and prediction
code one interface for both: the fast form for lyricnn's own cells, the
one-hot form for any cell a reader writes in a notebook.
"""
import functools

from mxnet import nd

from .onehot import to_onehot


def get_params(vocab_size, num_hiddens, ctx=None):
    """Fresh RNN parameters with gradients attached (book 6.4.2).

    Weights ~ N(0, 0.01²), biases zero: ``[W_xh (V, h), W_hh (h, h), b_h (h,),
    W_hq (h, V), b_q (V,)]`` on ``ctx``.
    """
    def normal(shape):
        return nd.random.normal(scale=0.01, shape=shape, ctx=ctx)

    params = [normal((vocab_size, num_hiddens)), normal((num_hiddens, num_hiddens)),
              nd.zeros(num_hiddens, ctx=ctx),
              normal((num_hiddens, vocab_size)), nd.zeros(vocab_size, ctx=ctx)]
    for p in params:
        p.attach_grad()
    return params


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
    return (nd.zeros(shape=(batch_size, num_hiddens), ctx=ctx),)


def rnn(inputs, state, params):
    """The book's RNN: ``H = tanh(X W_xh + H W_hh + b_h)``, ``Y = H W_hq + b_q``.

    ``inputs``: list of ``num_steps`` arrays ``(batch, V)``; returns
    ``(outputs, (H,))`` with ``outputs`` a list of ``(batch, V)`` arrays.
    """
    W_xh, W_hh, b_h, W_hq, b_q = params
    H, = state
    outputs = []
    for X in inputs:
        H = nd.tanh(nd.dot(X, W_xh) + nd.dot(H, W_hh) + b_h)
        outputs.append(nd.dot(H, W_hq) + b_q)
    return outputs, (H,)


def linear(X, W, b=None):
    """``X · W (+ b)`` with MKL-DNN's FullyConnected, which wants ``W`` transposed."""
    if b is None:
        return nd.FullyConnected(X, W.T, no_bias=True, num_hidden=W.shape[1])
    return nd.FullyConnected(X, W.T, b, num_hidden=W.shape[1])


def embed_inputs(X, W_xh):
    """``one_hot(X.T) · W_xh`` for every step at once, as a row gather.

    ``X: (batch, num_steps)`` -> ``(num_steps, batch, h)``.
    """
    return nd.Embedding(X.T, W_xh, input_dim=W_xh.shape[0], output_dim=W_xh.shape[1])


def split_steps(XW):
    """``(num_steps, batch, h)`` -> list of ``num_steps`` arrays ``(batch, h)``.

    One ``split`` op: its backward is a single concatenation, whereas indexing
    ``XW[t]`` would scatter 35 full-size gradients and add them up.
    """
    if XW.shape[0] == 1:
        return [XW[0]]
    return list(nd.split(XW, num_outputs=XW.shape[0], axis=0, squeeze_axis=True))


def rnn_sequence(X, state, params):
    """Fast form of ``rnn``: ``X: (batch, num_steps)`` indices -> logits ``(num_steps*batch, V)``."""
    W_xh, W_hh, b_h, W_hq, b_q = params
    H, = state
    W_hh_T = W_hh.T  # once per sequence, not once per step
    hiddens = []
    for XW_t in split_steps(embed_inputs(X, W_xh)):
        # b_h rides in the per-step product: cheaper than one broadcast add over
        # all steps, whose backward is a full-size reduction.
        H = nd.Activation(XW_t + nd.FullyConnected(H, W_hh_T, b_h, num_hidden=W_hh.shape[1]),
                          act_type="tanh")
        hiddens.append(H)
    return linear(nd.concat(*hiddens, dim=0), W_hq, b_q), (H,)


#: step function -> its fast whole-sequence form (the gated cells register here too).
SEQUENCE_FORMS = {rnn: rnn_sequence}


def sequence_forward(step_fn, vocab_size):
    """A function ``(X, state, params) -> (logits (num_steps*batch, V), state)`` for ``step_fn``.

    lyricnn's own cells map to their fast form; any other book-style step
    function is run on one-hot inputs exactly as the book does.
    """
    if step_fn in SEQUENCE_FORMS:
        return SEQUENCE_FORMS[step_fn]

    def one_hot_forward(X, state, params):
        outputs, state = step_fn(to_onehot(X, vocab_size), state, params)
        return nd.concat(*outputs, dim=0), state

    return one_hot_forward
