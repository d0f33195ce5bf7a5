"""MXNet's fused RNN operator: the one wrapper of it (``run``) and its three callers.

``nd.RNN`` / ``F.RNN`` runs a whole sequence through a layer, forward and
backward, in one oneDNN call, instead of a handful of operators per step. It
reads one flat vector of the layer's weights and biases (``layer_shapes``), and
multiplies layer 1's input by its own input weight; the one-hot input of a
character model would make that a ``(T·batch, V) x (V, gates·h)`` product whose
result is just a column lookup. The callers:

* the scratch RNN and LSTM (``lyricnn.models.cells.sequence``), from the book's
  parameter lists (``scratch_layers``), and
* the Gluon ``RNNModel`` (``lyricnn.models.gluon``), from a Gluon layer's
  parameters: both look the columns up first (``Embedding``, whose gradient
  lands in the real weight), hand the kernel an identity as layer 1's input
  weight, and join each layer's four arrays into its vector (``flatten``);
* the word-level model (``lyricnn.models.word``), whose ``Stack`` keeps each
  layer's vector as one Parameter, so nothing is joined or split per minibatch.

On the book's scratch RNN (forward + backward of one minibatch) the fused
kernel is clearly faster than the book's per-step code (measured:
``docs/RESULTS.md``, "Design measurements"; the whole-epoch figures are in
its "Speed" section).
"""
import numpy as np
from mxnet import init, nd
from mxnet.gluon import nn

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


def run(F, X, states, layers, *, mode, num_hiddens, dropout=0.0, locked=False, **lstm_clip):
    """The recurrent stack through MXNet's fused kernel: the one wrapper of it in lyricnn.

    ``F`` is ``mxnet.nd`` or ``mxnet.sym`` (a hybrid block's ``F``).
    ``X: (T, batch, in)``: layer 1's input. ``states``: ``[H]`` or, for the
    LSTM, ``[H, C]``, each ``(layers, batch, h)``. ``layers``: one flat parameter
    vector per layer in the kernel's layout (``layer_shapes``: ``W_i2h, W_h2h,
    b_i2h, b_h2h``, the gates in the kernel's order, LSTM ``i, f, g, o``, GRU ``r,
    z, n``): a ``Stack``'s Parameters as they are, or four arrays joined by
    ``flatten``. ``dropout``: the probability of dropping
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
      a ``concat`` of the layers' weights every minibatch, on top of the reorders
      both ways have); a layer alone skips it. So the dropout between layers
      costs nothing net: per-layer calls with the dropout train the tied
      2 x 650 word LM as fast as the one-call stack without it (docs/RESULTS.md,
      "Design measurements").
    """
    Y, per_layer = X, []
    for l, vector in enumerate(layers):
        if l > 0 and dropout > 0:
            Y = F.Dropout(Y, p=dropout, axes=(0,)) if locked else F.Dropout(Y, p=dropout)
        layer_states = (states if len(layers) == 1 else
                        [F.slice_axis(s, axis=0, begin=l, end=l + 1) for s in states])
        out = F.RNN(Y, vector, *layer_states, state_size=num_hiddens, num_layers=1, mode=mode,
                    p=0.0, state_outputs=True, **lstm_clip)
        Y = out[0]
        per_layer.append(list(out[1:]))
    if len(layers) == 1:
        return Y, per_layer[0]
    return Y, [F.concat(*[out[k] for out in per_layer], dim=0) for k in range(len(states))]


def flatten(F, weights, biases, width):
    """One layer's ``[W_i2h, W_h2h]`` and ``[b_i2h, b_h2h]`` (``width = gates·h`` rows each)
    as the kernel's flat vector, for callers that keep them as four arrays (Gluon's layers,
    the book's parameter lists).

    Concatenated as 1-D arrays (as Gluon's layer does) MXNet copies them element by
    element; every weight and bias holds a multiple of ``width`` elements, so the same
    bytes are concatenated as ``(-1, width)`` blocks, row by row, and reshaped once
    (measured on both callers: docs/RESULTS.md, "One F.RNN wrapper"). The copy (and the
    backward's split) is what a ``Stack`` saves: docs/RESULTS.md, "Design measurements".
    """
    return F.concat(*[a.reshape((-1, width)) for a in list(weights) + list(biases)],
                    dim=0).reshape((-1,))


def layer_shapes(mode, num_hiddens, input_size):
    """``[(name, shape), …]`` of one layer's parameters in the order of the kernel's flat
    vector, under Gluon's (and PyTorch's) names."""
    width = GATES[mode] * num_hiddens
    return [("i2h_weight", (width, input_size)), ("h2h_weight", (width, num_hiddens)),
            ("i2h_bias", (width,)), ("h2h_bias", (width,))]


def split(vector, shapes):
    """``{name: array}``: a flat layer vector (an NDArray) cut into its ``layer_shapes``
    (views of ``vector``'s memory)."""
    sizes = [int(np.prod(shape)) for _, shape in shapes]
    if sum(sizes) != vector.size:
        raise ValueError(f"a layer vector of {vector.size} values does not hold the shapes "
                         f"{[s for _, s in shapes]} ({sum(sizes)} values)")
    pieces, start = {}, 0
    for (name, shape), size in zip(shapes, sizes):
        pieces[name] = vector[start:start + size].reshape(shape)
        start += size
    return pieces


@init.register
class _KernelLayout(init.Initializer):
    """Initialises a ``Stack`` layer's flat vector as Gluon initialises its layer's four
    Parameters: each weight drawn by the model's initializer (``net.initialize(init)``'s)
    under the piece's name (``…_l0_i2h_weight``: an initializer that dispatches on
    ``*weight`` sees a weight), in Gluon's order, so a seed gives the same values as
    ``gluon.rnn.LSTM`` did; each bias zero (the Gluon layer's ``*_bias_initializer``).
    Registered, with its shapes as its arguments, so that ``dumps()`` (what a Parameter's
    symbol records) rebuilds it."""

    def __init__(self, shapes):
        shapes = [(name, tuple(shape)) for name, shape in shapes]   # JSON gives lists
        super().__init__(shapes=shapes)
        self.shapes = shapes

    def _init_weight(self, desc, arr):
        prefix = str(desc)[:-len("flat")]                  # '..._l0_flat' -> '..._l0_'
        pieces = []
        for name, shape in self.shapes:
            piece = nd.zeros(shape, ctx=arr.context, dtype=arr.dtype)
            if name.endswith("weight"):
                desc.global_init(init.InitDesc(prefix + name), piece)
            pieces.append(piece.reshape((-1,)))
        arr[:] = nd.concat(*pieces, dim=0)


class Stack(nn.HybridBlock):
    """``num_layers`` recurrent layers of one kernel ``mode`` whose parameters are already the
    kernel's: one Parameter per layer, ``l{l}_flat``, holding ``layer_shapes``' four arrays.

    What ``gluon.rnn.LSTM`` (or ``GRU``, ``RNN``) computes on the same values, without the
    copy that joins the layer's four Parameters into the kernel's vector at every call
    and splits the gradient again (a visible part of a 2 x 650 LSTM's forward +
    backward: docs/RESULTS.md, "Design measurements"). The word-level model's recurrent
    layers; the book's ``RNNModel`` keeps Gluon's layers, whose parameters are the
    reader's.

    ``stack(X (T, batch, input_size), state) -> (Y (T, batch, h), state)``, ``state`` as
    ``begin_state`` gives it. ``dropout`` between layers (a fresh mask per position, or
    ``locked``: one per sequence, ``run``); ``weight_drop``: DropConnect on each layer's
    hidden-to-hidden weights, one mask per call (Wan et al. 2013; AWD-LSTM's WeightDrop),
    off at evaluation.
    """

    def __init__(self, mode, num_hiddens, num_layers, input_size, *, dropout=0.0,
                 locked=False, weight_drop=0.0, lstm_clip=None, **kwargs):
        super().__init__(**kwargs)
        self.mode, self.num_hiddens, self.num_layers = mode, num_hiddens, num_layers
        self.dropout, self.locked, self.weight_drop = dropout, locked, weight_drop
        self.lstm_clip = dict(lstm_clip or {})
        self.dtype = "float32"
        self.shapes = [layer_shapes(mode, num_hiddens, input_size if l == 0 else num_hiddens)
                       for l in range(num_layers)]
        with self.name_scope():
            for l, shapes in enumerate(self.shapes):
                size = sum(int(np.prod(shape)) for _, shape in shapes)
                setattr(self, f"l{l}_flat", self.params.get(f"l{l}_flat", shape=(size,),
                                                            init=_KernelLayout(shapes)))

    def state_shapes(self, batch_size):
        """The shapes of ``begin_state``'s arrays: ``[(layers, batch, h)]``, twice for the LSTM."""
        return [(self.num_layers, batch_size, self.num_hiddens)] * (2 if self.mode == "lstm"
                                                                    else 1)

    def begin_state(self, batch_size=0, func=nd.zeros, **kwargs):
        """The zero state, e.g. ``begin_state(batch_size=20, ctx=ctx)``, in the parameters'
        dtype (the kernel needs one dtype throughout)."""
        kwargs.setdefault("dtype", self.dtype)
        return [func(name=f"{self.prefix}h0_{i}", shape=shape, **kwargs)   # Gluon's names
                for i, shape in enumerate(self.state_shapes(batch_size))]

    def cast(self, dtype):
        super().cast(dtype)
        self.dtype = dtype

    def hybrid_forward(self, F, X, state, **flat):
        if F is nd:   # the layer's own check, with Gluon's message (the kernel would assert)
            for s, shape in zip(state, self.state_shapes(X.shape[1])):
                if s.shape != shape:
                    raise ValueError(f"Invalid recurrent state shape. Expecting {shape}, "
                                     f"got {s.shape}.")
        layers = [self._dropped(F, flat[f"l{l}_flat"], l) for l in range(self.num_layers)]
        return run(F, X, list(state), layers, mode=self.mode, num_hiddens=self.num_hiddens,
                   dropout=self.dropout, locked=self.locked, **self.lstm_clip)

    def _dropped(self, F, vector, l):
        """Layer ``l``'s vector with weight drop on its ``W_h2h`` (the second piece)."""
        if not self.weight_drop:
            return vector
        (_, (width, inputs)), (_, (_, hidden)) = self.shapes[l][:2]
        # Every piece holds a multiple of ``width`` values, so the vector is (rows, width)
        # blocks: W_i2h rows [0, inputs), W_h2h the next ``hidden``, the biases 2. Sliced
        # and joined as 2-D blocks: as 1-D arrays MXNet copies element by element
        # (``flatten``), which made the recipe's step 0.87x the four-Parameter layout's.
        rows = vector.reshape((-1, width))
        end = inputs + hidden
        return F.concat(F.slice_axis(rows, axis=0, begin=0, end=inputs),
                        F.Dropout(F.slice_axis(rows, axis=0, begin=inputs, end=end),
                                  p=self.weight_drop),
                        F.slice_axis(rows, axis=0, begin=end, end=None), dim=0).reshape((-1,))


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
    weights = [identity(nd, biases[0])] + weights
    vectors = [flatten(nd, weights[2 * l:2 * l + 2], biases[2 * l:2 * l + 2], width)
               for l in range(len(layers))]
    Y, out = run(nd, XW, kinds, vectors, mode=cell.fused_mode, num_hiddens=h)
    per_layer = [[o[l] for o in out] for l in range(len(layers))]
    return Y.reshape((-3, 0)), tuple(s for layer_state in per_layer for s in layer_state)
