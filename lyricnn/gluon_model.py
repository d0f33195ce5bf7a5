"""The concise Gluon language model (book 6.5).

Note: ``gluon.rnn.RNN`` uses ReLU by default (``activation='relu'``), while the
scratch model uses tanh; the book keeps Gluon's default and so does lyricnn.
"""
from mxnet import ndarray
from mxnet.gluon import nn
from mxnet.gluon import rnn as gluon_rnn

# Rows of a fused layer's first input weight per hidden unit: one per gate.
_GATES = {"rnn_relu": 1, "rnn_tanh": 1, "gru": 3, "lstm": 4}
# 'auto' looks inputs up when gates * hidden <= this ratio * vocab_size.
_GATHER_MAX_WIDTH_RATIO = 0.8


class RNNModel(nn.HybridBlock):
    """Any Gluon recurrent layer followed by a dense output layer.

    ``inputs: (batch, num_steps)`` indices are one-hot encoded time-major as
    ``(num_steps, batch, vocab_size)``; the output is ``(num_steps * batch,
    vocab_size)``, row ``t * batch + b`` for step ``t`` of sequence ``b``.
    ``state`` is what ``begin_state`` returns: a list of one array
    ``(layers, batch, hidden)``, or two for an LSTM.

    The Dense layer must see ``(num_steps * batch, hidden)``: given the 3-D
    output it would flatten it to ``(num_steps, batch * hidden)`` and fail with
    a shape error as soon as ``batch > 1``.

    ``gather_inputs`` (keyword only): multiplying the first layer's input
    weight ``W: (gates * hidden, vocab_size)`` by a one-hot vector just reads
    one column of ``W``. With ``'auto'`` (the default) the model reads those
    columns by index (an ``Embedding`` lookup on ``W``, whose gradient
    lands in ``W`` itself) and hands the fused kernel an identity input weight
    instead, whenever that is clearly less work: a unidirectional fused
    ``rnn.RNN`` / ``GRU`` / ``LSTM`` whose ``gates * hidden <= 0.8 *
    vocab_size``. Same parameters, same outputs (to float rounding), same
    checkpoints; on 1027 characters a training step of ``rnn.RNN(256)`` takes
    ~30 % less time and of ``rnn.GRU(256)`` ~10 % less, while ``rnn.LSTM(256)``
    (1024 gate rows) keeps the one-hot input. ``False`` always feeds one-hot vectors to the
    layer, as the book does; ``True`` insists on the lookup.
    """

    def __init__(self, rnn_layer, vocab_size, *, gather_inputs="auto", **kwargs):
        super().__init__(**kwargs)
        if gather_inputs not in ("auto", True, False):
            raise ValueError(f"gather_inputs must be 'auto', True or False, got {gather_inputs!r}")
        with self.name_scope():
            self.rnn = rnn_layer
            self.dense = nn.Dense(vocab_size)
        self.vocab_size = vocab_size
        can_gather = _can_gather(rnn_layer, vocab_size)
        if gather_inputs is True and not can_gather:
            raise ValueError("gather_inputs=True needs a unidirectional gluon.rnn.RNN/GRU/LSTM "
                             "layer (TNC layout, no projection) with input_size 0 or "
                             f"vocab_size={vocab_size}; pass gather_inputs='auto' or False")
        if gather_inputs == "auto":
            # The lookup trades a (gates*hidden x vocab) GEMM for a (gates*hidden)^2 one
            # plus a gather. Measured per training step at vocab 1027, hidden 256:
            # RNN (256) -30 %, GRU (768) -10 %, LSTM (1024) +4 %; hence the margin.
            gather_inputs = (can_gather and _GATES[rnn_layer._mode] * rnn_layer._hidden_size
                             <= _GATHER_MAX_WIDTH_RATIO * vocab_size)
        self._gather = gather_inputs
        if self._gather:
            _fix_input_size(rnn_layer, vocab_size)

    def hybrid_forward(self, F, inputs, state):
        if not isinstance(state, (list, tuple)):
            state = [state]
        if self._gather:
            Y, state = self._gathered_rnn(F, inputs, list(state))
        else:
            Y, state = self.rnn(F.one_hot(F.transpose(inputs), self.vocab_size), state)
        # (num_steps, batch, hidden) -> (num_steps * batch, hidden)
        return self.dense(Y.reshape((-3, 0))), state

    def _gathered_rnn(self, F, inputs, state):
        """The fused layer on ``W[:, x_t]`` columns instead of one-hot ``x_t``."""
        layer = self.rnn
        width = _GATES[layer._mode] * layer._hidden_size
        if F is ndarray:
            ctx = inputs.context
            _check_state_shapes(layer, state, inputs.shape[0])
            params = {name: p.data(ctx) for name, p in layer._reg_params.items()}
            identity = ndarray.eye(width, ctx=ctx)
        else:
            params = {name: p.var() for name, p in layer._reg_params.items()}
            identity = F.eye(width)
        # (num_steps, batch) indices -> (num_steps, batch, gates * hidden) columns of W.
        columns = F.Embedding(F.transpose(inputs), F.transpose(params["l0_i2h_weight"]),
                              input_dim=self.vocab_size, output_dim=width)
        params["l0_i2h_weight"] = identity
        # The layer's own kernel call, so every other option (layers, dropout,
        # LSTM clipping) means exactly what it means in the layer.
        return layer._forward_kernel(F, columns, state, None, **params)

    def begin_state(self, *args, **kwargs):
        """The recurrent layer's zero state, e.g. ``begin_state(batch_size=32, ctx=ctx)``."""
        return self.rnn.begin_state(*args, **kwargs)


def _can_gather(layer, vocab_size):
    """A layer whose first input weight the model may read by index."""
    if not isinstance(layer, (gluon_rnn.RNN, gluon_rnn.GRU, gluon_rnn.LSTM)):
        return False
    return (layer._mode in _GATES and layer._dir == 1 and layer._layout == "TNC"
            and layer._projection_size is None and not layer._use_sequence_length
            and layer._input_size in (0, vocab_size))


def _fix_input_size(layer, vocab_size):
    """Give the first input weight its shape now: the lookup path never runs
    the layer's own shape inference. A layer initialised before it was
    wrapped finishes its deferred initialisation here."""
    weight = layer.l0_i2h_weight
    weight.shape = (weight.shape[0], vocab_size)
    layer._input_size = vocab_size
    if weight._deferred_init:
        weight._finish_deferred_init()


def _check_state_shapes(layer, state, batch_size):
    """The check the layer itself makes, with the same message."""
    for s, info in zip(state, layer.state_info(batch_size)):
        if s.shape != info["shape"]:
            raise ValueError(f"Invalid recurrent state shape. Expecting {info['shape']}, "
                             f"got {s.shape}.")
