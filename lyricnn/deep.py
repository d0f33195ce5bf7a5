"""Deep recurrent networks from scratch: ``L`` stacked RNN, GRU or LSTM layers (book 6.9).

Layer 1 reads the one-hot characters; layer ``l > 1`` reads layer ``l − 1``'s
hidden state of the same step; the output layer reads the top layer's:
``H_t^(l) = cell(H_t^(l−1), H_{t−1}^(l))`` with ``H_t^(0) = X_t`` and
``Y_t = H_t^(L) W_hq + b_q``.

Layouts (with ``L = 1`` they are exactly the single-layer models' layouts, so
``deep_gru`` with one layer computes ``gru``):

* ``params``: each layer's arrays in the single-layer order, bottom layer
  first, then ``[W_hq, b_q]``.  Per layer: RNN ``[W_xh, W_hh, b_h]`` (3),
  GRU ``[W_xz, W_hz, b_z, W_xr, W_hr, b_r, W_xh, W_hh, b_h]`` (9), LSTM
  ``[W_xi, W_hi, b_i, W_xf, W_hf, b_f, W_xo, W_ho, b_o, W_xc, W_hc, b_c]`` (12);
  ``W_x*`` is ``(V, h)`` in layer 1 and ``(h, h)`` above.
* ``state``: a flat tuple, layer by layer from the bottom, each layer's state
  tensors in the single-layer order, all ``(batch, h)``: ``(H_1, …, H_L)``
  for RNN and GRU, ``(H_1, C_1, H_2, C_2, …, H_L, C_L)`` for LSTM.

The number of layers is read from ``params``; the training loop's
``get_params()`` and ``init_rnn_state(batch_size, num_hiddens, ctx)`` must
know it, so both are built for a given ``L``::

    get_params = d2l.deep_params_getter("gru", vocab_size, num_hiddens, 2, ctx)
    init_state = d2l.deep_state_initializer("gru", 2)
    d2l.train_and_predict_rnn(d2l.deep_gru, get_params, init_state, num_hiddens, ...)

As for the single-layer cells, ``deep_rnn/deep_gru/deep_lstm`` are the book
form (one-hot inputs, ``dot`` per weight and step) and the ``*_sequence``
functions the fast form, registered in ``lyricnn.scratch.SEQUENCE_FORMS``.
In the fast form layer 1's input projections are one row gather and every
higher layer's are one matrix product over all steps of the layer below.
"""
import functools
from dataclasses import dataclass
from typing import Callable

from mxnet import nd

from . import gated
from .scratch import SEQUENCE_FORMS, linear, split_steps


# ------------------------------------------------------------- the plain RNN layer

def _rnn_step(X, state, layer_params):
    """One plain RNN step (book 6.4): ``H = tanh(X W_xh + H W_hh + b_h)``; returns ``(H,)``."""
    W_xh, W_hh, b_h = layer_params
    H, = state
    return (nd.tanh(nd.dot(X, W_xh) + nd.dot(H, W_hh) + b_h),)


def _rnn_input_weights(layer_params):
    """``W_xh (d, h)``."""
    return layer_params[0]  # W_xh


def _rnn_recurrence(XW, state, layer_params):
    """A plain RNN layer over ``XW = X W_xh: (num_steps, batch, h)`` -> ``(hiddens, (H,))``."""
    _, W_hh, b_h = layer_params
    H, = state
    W_hh_T = W_hh.T
    hiddens = []
    for XW_t in split_steps(XW):
        H = nd.Activation(XW_t + nd.FullyConnected(H, W_hh_T, b_h, num_hidden=W_hh.shape[1]),
                          act_type="tanh")
        hiddens.append(H)
    return hiddens, (H,)


# ------------------------------------------------------------------ cell registry

@dataclass(frozen=True)
class CellSpec:
    """What stacking needs to know about one kind of recurrent layer.

    ``step(X, layer_state, layer_params) -> layer_state`` is the book form of
    one step; ``input_weights(layer_params) -> W_x (d, k·h)`` and
    ``recurrence(XW (num_steps, batch, k·h), layer_state, layer_params) ->
    (hiddens, layer_state)`` the fast form, ``XW = X W_x`` without the biases,
    which the recurrence adds.  ``layer_state[0]`` is ``H``.
    """

    name: str
    num_layer_params: int
    num_states: int
    layer_params: Callable
    step: Callable
    input_weights: Callable
    recurrence: Callable


CELLS = {
    "rnn": CellSpec("rnn", 3, 1, gated.gate_params, _rnn_step, _rnn_input_weights,
                    _rnn_recurrence),
    "gru": CellSpec("gru", gated.GRU_LAYER_PARAMS, 1, gated.gru_layer_params,
                    lambda X, state, p: (gated.gru_step(X, state[0], p),),
                    gated.gru_input_weights, gated.gru_recurrence),
    "lstm": CellSpec("lstm", gated.LSTM_LAYER_PARAMS, 2, gated.lstm_layer_params,
                     lambda X, state, p: gated.lstm_step(X, state[0], state[1], p),
                     gated.lstm_input_weights, gated.lstm_recurrence),
}


def _split_params(spec, params):
    """``params`` -> (list of per-layer lists, ``[W_hq, b_q]``)."""
    n = len(params) - 2
    if n < spec.num_layer_params or n % spec.num_layer_params:
        raise ValueError(
            f"params must hold {spec.num_layer_params} arrays per {spec.name} layer plus "
            f"[W_hq, b_q], got {len(params)} arrays")
    k = spec.num_layer_params
    return [params[i:i + k] for i in range(0, n, k)], params[n:]


def _split_state(spec, state, num_layers):
    """Flat ``state`` -> list of per-layer tuples."""
    k = spec.num_states
    if len(state) != num_layers * k:
        raise ValueError(
            f"state must hold {k} array(s) per layer for a {num_layers}-layer {spec.name}, "
            f"{num_layers * k} in all, got {len(state)}")
    return [tuple(state[i:i + k]) for i in range(0, len(state), k)]


def _deep_book(spec, inputs, state, params):
    """Book form: step by step, each step through every layer, with ``nd.dot``."""
    layers, (W_hq, b_q) = _split_params(spec, params)
    states = _split_state(spec, state, len(layers))
    outputs = []
    for X in inputs:
        for l, p in enumerate(layers):
            states[l] = spec.step(X, states[l], p)
            X = states[l][0]  # this layer's H is the next layer's input
        outputs.append(nd.dot(X, W_hq) + b_q)
    return outputs, tuple(s for layer_state in states for s in layer_state)


def _deep_sequence(spec, X, state, params):
    """Fast form: layer by layer, each over all steps; logits ``(num_steps*batch, V)``."""
    layers, (W_hq, b_q) = _split_params(spec, params)
    states = _split_state(spec, state, len(layers))
    batch_size, num_steps = X.shape
    new_state = []
    for l, p in enumerate(layers):
        W_x = spec.input_weights(p)
        if l == 0:
            XW = gated.gather_inputs(X, W_x)
        else:  # every step of the layer below in one product
            XW = linear(below, W_x).reshape((num_steps, batch_size, -1))
        hiddens, layer_state = spec.recurrence(XW, states[l], p)
        below = nd.concat(*hiddens, dim=0)  # (num_steps * batch, h), time-major
        new_state.extend(layer_state)
    return linear(below, W_hq, b_q), tuple(new_state)


# ---------------------------------------------------------------- the public cells

def deep_rnn(inputs, state, params):
    """Book form of an ``L``-layer RNN: one-hot ``inputs`` list -> ``(outputs, state)``."""
    return _deep_book(CELLS["rnn"], inputs, state, params)


def deep_gru(inputs, state, params):
    """Book form of an ``L``-layer GRU: one-hot ``inputs`` list -> ``(outputs, state)``."""
    return _deep_book(CELLS["gru"], inputs, state, params)


def deep_lstm(inputs, state, params):
    """Book form of an ``L``-layer LSTM: one-hot ``inputs`` list -> ``(outputs, state)``."""
    return _deep_book(CELLS["lstm"], inputs, state, params)


def deep_rnn_sequence(X, state, params):
    """Fast ``deep_rnn``: ``X: (batch, num_steps)`` -> ``(logits (num_steps*batch, V), state)``."""
    return _deep_sequence(CELLS["rnn"], X, state, params)


def deep_gru_sequence(X, state, params):
    """Fast ``deep_gru``: ``X: (batch, num_steps)`` -> ``(logits (num_steps*batch, V), state)``."""
    return _deep_sequence(CELLS["gru"], X, state, params)


def deep_lstm_sequence(X, state, params):
    """Fast ``deep_lstm``: ``X: (batch, num_steps)`` -> ``(logits (num_steps*batch, V), state)``."""
    return _deep_sequence(CELLS["lstm"], X, state, params)


SEQUENCE_FORMS[deep_rnn] = deep_rnn_sequence
SEQUENCE_FORMS[deep_gru] = deep_gru_sequence
SEQUENCE_FORMS[deep_lstm] = deep_lstm_sequence

_BY_FUNCTION = {deep_rnn: "rnn", deep_gru: "gru", deep_lstm: "lstm"}


# ------------------------------------------------------- parameters and states

def cell_spec(cell):
    """The ``CellSpec`` for ``'rnn'``, ``'gru'``, ``'lstm'`` or ``deep_rnn/deep_gru/deep_lstm``."""
    name = _BY_FUNCTION.get(cell, cell) if callable(cell) else cell
    if name not in CELLS:
        raise ValueError(f"cell must be one of {sorted(CELLS)} or deep_rnn/deep_gru/deep_lstm, "
                         f"got {cell!r}")
    return CELLS[name]


def _check_num_layers(num_layers):
    if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
        raise ValueError(f"num_layers must be an integer >= 1, got {num_layers!r}")


def get_deep_params(cell, vocab_size, num_hiddens, num_layers, ctx=None):
    """Fresh parameters of an ``num_layers``-layer ``cell``, gradients attached (layout above).

    Weights ~ N(0, 0.01²), biases zero, as the book initialises each layer.
    """
    spec = cell_spec(cell)
    _check_num_layers(num_layers)
    gated.check_sizes(vocab_size, num_hiddens)
    params = []
    for l in range(num_layers):
        params += spec.layer_params(vocab_size if l == 0 else num_hiddens, num_hiddens, ctx)
    return gated.attach_grads(params + gated.output_params(num_hiddens, vocab_size, ctx))


def deep_params_getter(cell, vocab_size, num_hiddens, num_layers, ctx=None):
    """The zero-argument ``get_params()`` the book's training function calls, for ``L`` layers."""
    cell_spec(cell)
    _check_num_layers(num_layers)
    return functools.partial(get_deep_params, cell, vocab_size, num_hiddens, num_layers, ctx)


def deep_state_initializer(cell, num_layers):
    """``init_state(batch_size, num_hiddens, ctx)`` giving the zero state of ``num_layers`` layers.

    The flat tuple of ``num_layers × (1 for RNN/GRU, 2 for LSTM)`` arrays
    ``zeros((batch_size, num_hiddens))`` described above.
    """
    spec = cell_spec(cell)
    _check_num_layers(num_layers)

    def init_state(batch_size, num_hiddens, ctx):
        return tuple(nd.zeros(shape=(batch_size, num_hiddens), ctx=ctx)
                     for _ in range(num_layers * spec.num_states))

    init_state.__name__ = f"init_deep_{spec.name}_state"
    init_state.__doc__ = (f"Zero state of a {num_layers}-layer {spec.name}: "
                          f"{num_layers * spec.num_states} arrays (batch_size, num_hiddens).")
    return init_state
