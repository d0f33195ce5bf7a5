"""The three recurrent cells of chapter 6, each recurrence written once.

A cell reads inputs that are *already projected*, ``XW = X W_x``, so that one
function serves every caller:

* the book's forms (``rnn``, ``gru``, ``lstm``, ``deep_*``) project one-hot
  ``X`` with ``nd.dot`` and call the step, one time step at a time (``unrolled``);
* the fast training form projects every step at once, as a row gather
  (``one_hot(x) · W_x`` is row ``x`` of ``W_x``), then calls the same step
  (``sequence``);
* deeper layers project the layer below with one product over all steps.

The recurrences, in the book's notation (6.4.1, 6.7.1, 6.8.1):

* RNN:  ``H = tanh(X W_xh + H W_hh + b_h)``
* GRU:  ``Z = σ(X W_xz + H W_hz + b_z)``, ``R = σ(X W_xr + H W_hr + b_r)``,
  ``H̃ = tanh(X W_xh + (R ⊙ H) W_hh + b_h)``, ``H = Z ⊙ H + (1 − Z) ⊙ H̃``
* LSTM: ``I, F, O = σ(X W_x* + H W_h* + b_*)``, ``C̃ = tanh(X W_xc + H W_hc + b_c)``,
  ``C = F ⊙ C + I ⊙ C̃``, ``H = O ⊙ tanh(C)``

Parameters are the book's plain NDArrays. A layer is one ``[W_x, W_h, b]``
triple per gate, gates in the book's order (RNN ``h``; GRU ``z, r, h``; LSTM
``i, f, o, c``), with ``W_x (d, h)``, ``W_h (h, h)``, ``b (h,)``; a model is
its layers, bottom first, then the output layer ``[W_hq (h, V), b_q (V,)]``.
The state is a flat tuple, layer by layer: ``(H_1, …, H_L)``, or
``(H_1, C_1, …, H_L, C_L)`` for the LSTM, each ``(batch, h)``.

**The fused kernel.** MXNet's ``RNN`` operator runs a whole sequence, every
layer, forward and backward, in one oneDNN call. Its ``rnn_tanh`` and ``lstm``
modes compute exactly the RNN and LSTM equations above, so ``sequence`` hands
the RNN and the LSTM to it (``lyricnn.models.fused``) unless ``fused=False``; tests
check that both routes give the same outputs and gradients (compared in float64,
``tests/float_error.py``) as the
book's code. Its ``gru`` mode applies the reset gate after the hidden product,
``R ⊙ (H W_hh + b)``, which is not the book's GRU, so the GRU always runs
``gru_step``.
"""
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

from mxnet import nd

from lyricnn.memory import available_memory
from lyricnn.checks import FLOAT32_EXACT, check_int
from lyricnn.context import resolve_ctx
from lyricnn.models import fused as fused_kernel


# --------------------------------------------------------------- the recurrences

def rnn_step(XW, state, hidden):
    """One RNN step: ``H = tanh(X W_xh + H W_hh + b_h)``.

    ``XW: (batch, h)`` is ``X W_xh``; ``state = (H,)``; ``hidden = (W_hh.T, b_h)``
    from ``RNN.hidden_weights``. Returns ``(H,)``.
    """
    W_hh_T, b_h = hidden
    H, = state
    # FullyConnected(H, W.T, b) is H W + b in one oneDNN call (dot + add is two).
    return (nd.Activation(XW + nd.FullyConnected(H, W_hh_T, b_h, num_hidden=W_hh_T.shape[0]),
                          act_type="tanh"),)


def gru_step(XW, state, hidden):
    """One GRU step (book 6.7.1). ``XW: (batch, 3h)`` is ``X [W_xz | W_xr | W_xh]``.

    ``hidden = ([W_hz | W_hr].T, [b_z | b_r], W_hh.T, b_h)``. Returns ``(H,)``.
    ``H = H̃ + Z ⊙ (H − H̃)`` is the book's ``Z ⊙ H + (1 − Z) ⊙ H̃`` in fewer operations.
    """
    W_hzr_T, b_zr, W_hh_T, b_h = hidden
    H, = state
    h = W_hh_T.shape[0]
    XW_zr = nd.slice_axis(XW, axis=1, begin=0, end=2 * h)      # (batch, 2h)
    XW_h = nd.slice_axis(XW, axis=1, begin=2 * h, end=3 * h)   # (batch, h)
    ZR = nd.Activation(XW_zr + nd.FullyConnected(H, W_hzr_T, b_zr, num_hidden=2 * h),
                       act_type="sigmoid")
    Z, R = nd.split(ZR, num_outputs=2, axis=1)  # (batch, h) each
    H_tilda = nd.Activation(XW_h + nd.FullyConnected(R * H, W_hh_T, b_h, num_hidden=h),
                            act_type="tanh")
    return (H_tilda + Z * (H - H_tilda),)


def lstm_step(XW, state, hidden):
    """One LSTM step (book 6.8.1). ``XW: (batch, 4h)`` is ``X [W_xi | W_xf | W_xo | W_xc]``.

    ``state = (H, C)``; ``hidden = ([W_hi | W_hf | W_ho | W_hc].T, [b_i | b_f | b_o | b_c])``.
    Returns ``(H, C)``.
    """
    W_h_T, b = hidden
    H, C = state
    # All four gates' hidden products and biases in one call; one split separates them.
    G = XW + nd.FullyConnected(H, W_h_T, b, num_hidden=W_h_T.shape[0])  # (batch, 4h)
    I, F, O, C_tilda = nd.split(G, num_outputs=4, axis=1)
    I, F, O = (nd.Activation(g, act_type="sigmoid") for g in (I, F, O))
    C = F * C + I * nd.Activation(C_tilda, act_type="tanh")
    return O * nd.Activation(C, act_type="tanh"), C


# ------------------------------------------------------------------ cell objects

def _concat(arrays, dim):
    return arrays[0] if len(arrays) == 1 else nd.concat(*arrays, dim=dim)


@dataclass(frozen=True)
class Cell:
    """What stacking, the book's loop, the fast loop and checkpoints need of one cell kind.

    ``gates``: the book's gate letters, in parameter order; ``step``: the
    recurrence; ``num_states``: 1 (``H``) or 2 (``H, C``); ``fused_mode``: the
    MXNet ``RNN`` operator mode computing the same equations (``None``: none
    does), and ``fused_order``: the book's gates in that operator's order;
    ``shared_gates``: how many leading gates share one hidden product (default
    all; the GRU's candidate needs ``R`` first, so only ``z, r`` share).
    """

    name: str
    gates: str
    step: Callable
    num_states: int
    fused_mode: Optional[str] = None
    fused_order: Tuple[int, ...] = ()
    shared_gates: Optional[int] = None

    @property
    def params_per_layer(self):
        return 3 * len(self.gates)

    def param_names(self):
        """One layer's names in the book's order, e.g. ``['W_xz', 'W_hz', 'b_z', …]``."""
        return [n for g in self.gates for n in (f"W_x{g}", f"W_h{g}", f"b_{g}")]

    def input_weights(self, layer):
        """``W_x (d, gates·h)``: the gates' input weights side by side, book order."""
        return _concat(layer[0::3], dim=1)

    def hidden_weights(self, layer):
        """The layer's hidden weights as ``step`` reads them, prepared once per sequence.

        ``FullyConnected`` wants ``(out, in)`` weights; the gates whose hidden
        products do not depend on each other share one product.
        """
        W_h, b = layer[1::3], layer[2::3]
        k = self.shared_gates or len(self.gates)
        later = tuple(a for i in range(k, len(self.gates)) for a in (W_h[i].T, b[i]))
        return (_concat(W_h[:k], 1).T, _concat(b[:k], 0)) + later

    def zero_state(self, num_layers, batch_size, num_hiddens, ctx):
        batch_size = check_int("batch_size", batch_size, 1, FLOAT32_EXACT,
                               hint="the number of sequences")
        num_hiddens = check_int("num_hiddens", num_hiddens, 1, FLOAT32_EXACT,
                                hint="the book uses 256")
        ctx = resolve_ctx(ctx)
        return tuple(nd.zeros((batch_size, num_hiddens), ctx=ctx)
                     for _ in range(num_layers * self.num_states))


RNN = Cell("rnn", "h", rnn_step, 1, fused_mode="rnn_tanh", fused_order=(0,))
GRU = Cell("gru", "zrh", gru_step, 1, shared_gates=2)
LSTM = Cell("lstm", "ifoc", lstm_step, 2, fused_mode="lstm", fused_order=(0, 1, 3, 2))
CELLS = {"rnn": RNN, "gru": GRU, "lstm": LSTM}


def state_initializer(cell, num_layers):
    """``init_state(batch_size, num_hiddens, ctx)``: the zero state of ``num_layers`` layers."""
    def init_state(batch_size, num_hiddens, ctx):
        return cell.zero_state(num_layers, batch_size, num_hiddens, ctx)
    return init_state


def get_cell(name):
    """``'rnn'``, ``'gru'`` or ``'lstm'`` -> its ``Cell``."""
    if name not in CELLS:
        raise ValueError(f"cell must be one of {sorted(CELLS)}, got {name!r}")
    return CELLS[name]


# -------------------------------------------------------------- params and state

def _normal(shape, ctx):
    return nd.random.normal(scale=0.01, shape=shape, ctx=ctx)


def init_params(cell, vocab_size, num_hiddens, num_layers=1, ctx=None):
    """Fresh parameters, gradients attached: weights ~ N(0, 0.01²), biases zero (the book's).

    Drawn gate by gate, ``W_x, W_h`` then the zero bias, layer by layer, then
    ``W_hq``: the order the book's ``get_params``/``_three()`` draw in, so the
    same seed gives the book's initial values.
    """
    vocab_size = check_int("vocab_size", vocab_size)
    num_hiddens = check_int("num_hiddens", num_hiddens)
    num_layers = check_int("num_layers", num_layers)
    ctx = resolve_ctx(ctx)
    count = sum(len(cell.gates) * ((vocab_size if l == 0 else num_hiddens) + num_hiddens + 1)
                * num_hiddens for l in range(num_layers)) + (num_hiddens + 1) * vocab_size
    have = available_memory()
    if have is not None and 8 * count > have:   # the weights and their gradients, float32
        raise ValueError(f"vocab_size={vocab_size}, num_hiddens={num_hiddens} make {count:,} "
                         f"weights, {8 * count / 2**30:.1f} GiB with their gradients, more than "
                         f"the {have / 2**30:.1f} GiB available; use a smaller num_hiddens")
    params = []
    for l in range(num_layers):
        d = vocab_size if l == 0 else num_hiddens
        for _ in cell.gates:
            params += [_normal((d, num_hiddens), ctx), _normal((num_hiddens, num_hiddens), ctx),
                       nd.zeros(num_hiddens, ctx=ctx)]
    params += [_normal((num_hiddens, vocab_size), ctx), nd.zeros(vocab_size, ctx=ctx)]
    for p in params:
        p.attach_grad()
    return params


def split_params(cell, params):
    """``params`` -> (list of per-layer lists, ``[W_hq, b_q]``); ``ValueError`` on a bad count."""
    k, n = cell.params_per_layer, len(params) - 2
    if n < k or n % k:
        raise ValueError(f"params must hold {k} arrays per {cell.name} layer plus [W_hq, b_q], "
                         f"got {len(params)} arrays")
    return [list(params[i:i + k]) for i in range(0, n, k)], list(params[n:])


def split_state(cell, state, num_layers):
    """Flat ``state`` -> list of per-layer tuples; ``ValueError`` on a bad count."""
    k = cell.num_states
    if len(state) != num_layers * k:
        raise ValueError(f"state must hold {k} array(s) per layer for a {num_layers}-layer "
                         f"{cell.name}, {num_layers * k} in all, got {len(state)}")
    return [tuple(state[i:i + k]) for i in range(0, len(state), k)]


# ---------------------------------------------------------------- the two loops

def _check_state(state, inputs, num_hiddens):
    """``ValueError`` unless every state array is ``(batch, num_hiddens)`` for the batch of
    ``inputs`` (a shape read per call: nothing next to the step it guards)."""
    batch = inputs[0].shape[0] if len(inputs) else None
    for s in state:
        if len(s.shape) != 2 or s.shape[1] != num_hiddens or (batch and s.shape[0] != batch):
            raise ValueError(f"state has an array of shape {s.shape}, but the parameters have "
                             f"{num_hiddens} hidden units and the inputs a batch of {batch}: "
                             f"build it with init_rnn_state({batch}, {num_hiddens}, ctx)")


def unrolled(cell, inputs, state, params):
    """The book's loop: one-hot ``inputs`` (list of ``(batch, V)``) -> ``(outputs, state)``.

    Step by step, each step through every layer: ``X W_x`` with ``nd.dot``,
    then the cell's step; ``outputs`` is a list of ``(batch, V)`` logits
    ``Y = H W_hq + b_q``, one per step.
    """
    layers, (W_hq, b_q) = split_params(cell, params)
    _check_state(state, inputs, W_hq.shape[0])
    states = split_state(cell, state, len(layers))
    W_x = [cell.input_weights(p) for p in layers]
    hidden = [cell.hidden_weights(p) for p in layers]
    outputs = []
    for X in inputs:
        for l in range(len(layers)):
            states[l] = cell.step(nd.dot(X, W_x[l]), states[l], hidden[l])
            X = states[l][0]  # this layer's H is the next layer's input
        outputs.append(nd.dot(X, W_hq) + b_q)
    return outputs, tuple(s for layer_state in states for s in layer_state)


def linear(X, W, b=None):
    """``X · W (+ b)`` as one oneDNN ``FullyConnected`` (which wants ``W`` transposed)."""
    if b is None:
        return nd.FullyConnected(X, W.T, no_bias=True, num_hidden=W.shape[1])
    return nd.FullyConnected(X, W.T, b, num_hidden=W.shape[1])


def gather(X, W_x):
    """``one_hot(X.T) · W_x`` for every step at once: ``X (batch, T)`` -> ``(T, batch, k)``.

    A row gather (``Embedding``), whose gradient lands in ``W_x`` itself.
    """
    return nd.Embedding(X.T, W_x, input_dim=W_x.shape[0], output_dim=W_x.shape[1])


def _steps(XW):
    """``(T, batch, k)`` -> list of ``T`` arrays ``(batch, k)``.

    One ``split``: its backward is one concatenation, whereas indexing ``XW[t]``
    would scatter ``T`` full-size gradients and add them up.
    """
    if XW.shape[0] == 1:
        return [XW[0]]
    return list(nd.split(XW, num_outputs=XW.shape[0], axis=0, squeeze_axis=True))


def sequence(cell, X, state, params, fused="auto"):
    """The fast form: indices ``X (batch, T)`` -> ``(logits (T·batch, V), state)``, time-major.

    The same numbers as ``unrolled`` on ``one_hot(X)`` (row ``t·batch + b`` is
    step ``t`` of sequence ``b``, as ``nd.concat(*outputs, dim=0)``), computed
    with fewer, larger operations: layer 1's input projections are one row
    gather, each higher layer's one product over all steps of the layer below,
    the output layer one product over all steps.

    ``fused``: ``True`` runs the RNN and the LSTM on MXNet's fused kernel,
    ``False`` runs ``cell.step`` step by step (always so for the GRU), and
    ``'auto'`` (the default) takes the kernel where it is measured faster
    (``lyricnn.models.fused.worth_it``: the book's RNN yes, the book's LSTM, whose
    four gates are as wide as the vocabulary, no).
    """
    layers, (W_hq, b_q) = split_params(cell, params)
    states = split_state(cell, state, len(layers))
    if fused == "auto":
        fused = fused_kernel.worth_it(len(cell.gates) * W_hq.shape[0], W_hq.shape[1])
    if fused and cell.fused_mode:
        Y, new_state = fused_kernel.scratch_layers(cell, X, states, layers)
    else:
        Y, new_state = _python_layers(cell, X, states, layers)
    return linear(Y, W_hq, b_q), new_state


def _python_layers(cell, X, states, layers):
    """Every layer through ``cell.step``; returns the top layer's ``(T·batch, h)`` and the state."""
    batch_size, num_steps = X.shape
    new_state, below = [], None   # below: the previous layer's (T·batch, h) outputs
    for l, p in enumerate(layers):
        if l == 0:
            XW = gather(X, cell.input_weights(p))
        else:  # every step of the layer below in one product
            XW = linear(below, cell.input_weights(p)).reshape((num_steps, batch_size, -1))
        hidden, layer_state, hiddens = cell.hidden_weights(p), states[l], []
        for XW_t in _steps(XW):
            layer_state = cell.step(XW_t, layer_state, hidden)
            hiddens.append(layer_state[0])
        below = nd.concat(*hiddens, dim=0)  # (T·batch, h), time-major
        new_state.extend(layer_state)
    return below, tuple(new_state)


__all__ = ["Cell", "RNN", "GRU", "LSTM", "CELLS", "get_cell", "rnn_step", "gru_step",
           "lstm_step", "init_params", "state_initializer", "split_params", "split_state", "unrolled", "sequence",
           "gather", "linear"]
