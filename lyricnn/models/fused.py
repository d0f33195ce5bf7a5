"""MXNet's fused RNN operator over inputs that are already projected.

``nd.RNN`` / ``F.RNN`` runs a whole sequence through every layer, forward and
backward, in one oneDNN call, instead of a handful of operators per step and
layer. It multiplies layer 1's input by its own input weight; the one-hot
input of a character model would make that a ``(T·batch, V) x (V, gates·h)``
product whose result is just a column lookup. So both callers look the
columns up first (``Embedding``, whose gradient lands in the real weight) and
hand the kernel an identity as layer 1's input weight:

* the scratch RNN and LSTM (``lyricnn.models.cells.sequence``), from the book's
  parameter lists (``scratch_layers``);
* the Gluon ``RNNModel`` (``lyricnn.models.gluon``), from a Gluon layer's
  parameters.

On the book's scratch RNN (forward + backward of one minibatch) the fused
kernel is clearly faster than the book's per-step code (measured:
``docs/RESULTS.md``, "Design measurements"; the whole-epoch figures are in
its "Speed" section).
"""
from mxnet import nd

#: Gate rows per hidden unit of each kernel mode.
GATES = {"rnn_relu": 1, "rnn_tanh": 1, "gru": 3, "lstm": 4}
#: Use the kernel when layer 1's width (gates x hidden) <= this x the vocabulary.
MAX_WIDTH_RATIO = 0.8


def worth_it(width, vocab_size):
    """Whether the kernel's identity product beats the step-by-step alternative.

    The identity costs a ``(T·batch, width) x (width, width)`` product forward
    and two backward, so it pays only when ``width`` is clearly below the
    vocabulary it replaces. At vocabulary 1027 (one minibatch, forward +
    backward) the kernel won for the scratch RNN at width 256 and the scratch
    LSTM at width 512 and lost for the scratch LSTM at width 1024; for the
    Gluon layers (whose alternative is the one-hot product) it won for the RNN
    and the GRU (width 768) and lost slightly for the LSTM (1024) per training
    step (measured: docs/RESULTS.md, "Design measurements").
    """
    return width <= MAX_WIDTH_RATIO * vocab_size


def run(F, X, states, weights, biases, *, mode, num_hiddens, num_layers, dropout=0.0,
        locked=False, **lstm_clip):
    """The recurrent stack through MXNet's fused kernel: the one wrapper of it in lyricnn.

    ``F`` is ``mxnet.nd`` or ``mxnet.sym`` (a hybrid block's ``F``).
    ``X: (T, batch, in)``: layer 1's input. ``states``: ``[H]`` or, for the
    LSTM, ``[H, C]``, each ``(layers, batch, h)``. ``weights``: the kernel's
    weights in its order ``[W_i2h¹, W_h2h¹, W_i2h², W_h2h², …]``, each ``(gates·h,
    in)`` with the gates in the kernel's order (LSTM ``i, f, g, o``; GRU ``r, z,
    n``); a caller that has already projected layer 1's input passes
    ``identity(F, biases[0])`` as ``W_i2h¹``. ``biases``: ``[b_i2h¹, b_h2h¹,
    b_i2h², …]``, each ``(gates·h,)``. ``dropout``: the probability of dropping
    each output of every layer but the last (in training); ``locked``: one mask per
    sequence and unit, the same at every step (variational dropout, AWD-LSTM's
    ``dropouth``), instead of a fresh one per position. Returns ``(Y (T, batch,
    h), new states)``.

    One kernel call per layer, with ``F.Dropout`` between them, instead of one
    call for the whole stack:

    * correctness: MXNet's oneDNN kernel (the one it runs on CPU unless
      ``MXNET_USE_MKLDNN_RNN=0``) ignores its ``p``: oneDNN's RNN primitive has
      no dropout, and a 2-layer LSTM with ``p=0.5`` gives the outputs of
      ``p=0`` in training (checked on MXNet 1.9.1; the native kernel does drop).
      With ``dropout=0`` the outputs and gradients equal the one-call stack's
      to float rounding (max difference 1e-6, LSTM/GRU/tanh RNN, 3 layers);
    * speed: for a stack whose layers have equal widths MXNet copies both
      layers' weights into one 2-layer oneDNN blob every forward (``DNNL_VERBOSE``:
      a ``concat`` of 2 x (2600 x 650) weights, 8-21 ms a minibatch as logged, on top
      of the reorders both ways have); a layer alone skips it. So the dropout
      between layers costs nothing net: the tied 2 x 650 word LM (batch 20,
      35 steps, dropout 0.5), both ways alternating in one process, 16
      pairs of 3 minibatches: per-layer (with the dropout) 1.02x the one-call
      stack (without it), median of the pairs (Intel Xeon with AVX-512, 2
      vCPUs, shared with another busy process, 2026-12-06).
    """
    if num_layers == 1:
        return _kernel(F, X, states, weights, biases, mode, num_hiddens, 1, lstm_clip)
    Y, per_layer = X, []
    for l in range(num_layers):
        if l > 0 and dropout > 0:
            Y = F.Dropout(Y, p=dropout, axes=(0,)) if locked else F.Dropout(Y, p=dropout)
        layer_states = [F.slice_axis(s, axis=0, begin=l, end=l + 1) for s in states]
        Y, out = _kernel(F, Y, layer_states, weights[2 * l:2 * l + 2], biases[2 * l:2 * l + 2],
                         mode, num_hiddens, 1, lstm_clip)
        per_layer.append(out)
    return Y, [F.concat(*[out[k] for out in per_layer], dim=0) for k in range(len(states))]


def _kernel(F, X, states, weights, biases, mode, num_hiddens, num_layers, lstm_clip):
    """One ``F.RNN`` call (no dropout: see ``run``).

    The kernel reads one flat parameter vector. Concatenated as 1-D arrays (as
    Gluon's layer does) MXNet copies it element by element; every weight and
    bias holds a multiple of ``gates·h`` elements, so the same bytes are
    concatenated as ``(-1, gates·h)`` blocks, row by row, and reshaped once
    (measured on both callers: docs/RESULTS.md, "One F.RNN wrapper").
    """
    width = GATES[mode] * num_hiddens
    flat = F.concat(*[a.reshape((-1, width)) for a in list(weights) + list(biases)], dim=0)
    out = F.RNN(X, flat.reshape((-1,)), *states, state_size=num_hiddens, num_layers=num_layers,
                mode=mode, p=0.0, state_outputs=True, **lstm_clip)
    return out[0], list(out[1:])


def identity(F, bias):
    """The ``(width, width)`` identity, ``width = bias.shape[0]``, as layer 1's input weight
    of inputs already projected.

    The kernel still multiplies by it (a ``(T·batch, width) x (width, width)``
    product), far cheaper than the ``(V, width)`` one-hot product it replaces
    whenever ``width < V``. Made from an input rather than by ``nd.eye``, so that
    ``lyricnn.models.tracing`` can record it (a record holds no value for an array
    made from nothing); its gradient is zero.
    """
    return F.diag(F.ones_like(bias))


def _concat(arrays, dim):
    return arrays[0] if len(arrays) == 1 else nd.concat(*arrays, dim=dim)


def scratch_layers(cell, X, states, layers):
    """The scratch cell's layers through the kernel: ``(Y (T·batch, h), flat state)``.

    ``X: (batch, T)`` indices; ``states``: per-layer state tuples; ``layers``:
    per-layer book parameter lists (``lyricnn.models.cells``). The book's RNN bias
    ``b_h`` is the kernel's input bias and its hidden bias is zero; the LSTM's
    gates are reordered from the book's ``i, f, o, c`` to the kernel's ``i, f, g, o``.
    """
    h = layers[0][1].shape[0]                      # W_h: (h, h)
    width = len(cell.gates) * h

    def kernel_order(arrays):
        return [arrays[i] for i in cell.fused_order]

    weights, biases = [], []
    for l, p in enumerate(layers):
        if l > 0:                                  # (width, h): layer l's input weight
            weights.append(_concat(kernel_order(p[0::3]), 1).T)
        weights.append(_concat(kernel_order(p[1::3]), 1).T)   # (width, h)
        b = _concat(kernel_order(p[2::3]), 0)
        biases += [b, nd.zeros_like(b)]
    W_x1 = _concat(kernel_order(layers[0][0::3]), 1)           # (V, width)
    XW = nd.Embedding(X.T, W_x1, input_dim=W_x1.shape[0], output_dim=width)  # (T, batch, width)
    # Flat per-layer states -> the kernel's (layers, batch, h) arrays, one per kind (H, C).
    kinds = [nd.stack(*[s[k] for s in states], axis=0) for k in range(cell.num_states)]
    Y, out = run(nd, XW, kinds, [identity(nd, biases[0])] + weights, biases,
                 mode=cell.fused_mode, num_hiddens=h, num_layers=len(layers))
    per_layer = [[o[l] for o in out] for l in range(len(layers))]
    return Y.reshape((-3, 0)), tuple(s for layer_state in per_layer for s in layer_state)
