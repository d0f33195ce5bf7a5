"""The concise Gluon language model (book 6.5).

Note: ``gluon.rnn.RNN`` uses ReLU by default (``activation='relu'``), while the
scratch model uses tanh; the book keeps Gluon's default and so does lyricnn.
"""
from dataclasses import dataclass

from mxnet import nd
from mxnet.gluon import nn
from mxnet.gluon.parameter import DeferredInitializationError
from mxnet.gluon import rnn as gluon_rnn

from lyricnn.checks import FLOAT32_EXACT, check_int
from lyricnn.models import fused


@dataclass(frozen=True)
class LayerSpec:
    """A fused Gluon recurrent layer's configuration, as its kernel call needs it."""

    mode: str                 # 'rnn_relu', 'rnn_tanh', 'gru' or 'lstm'
    num_hiddens: int
    num_layers: int
    dropout: float
    bidirectional: bool
    layout: str
    projection_size: object   # None unless an LSTM with projection
    use_sequence_length: bool
    lstm_clip: dict           # the kernel's lstm_state_clip_* arguments

    @property
    def gates(self):
        return fused.GATES[self.mode]


def layer_spec(layer):
    """Read a ``gluon.rnn.RNN/GRU/LSTM`` layer's configuration.

    Gluon 1.x exposes none of it publicly, so this is the one place in lyricnn
    that reads private attributes of a Gluon layer (MXNet 1.9.1 is pinned;
    ``tests/test_gluon_model.py::test_layer_spec_reads_mxnet_private_attributes``
    fails loudly if a release renames them).
    """
    return LayerSpec(
        mode=layer._mode, num_hiddens=layer._hidden_size, num_layers=layer._num_layers,
        dropout=layer._dropout, bidirectional=layer._dir == 2, layout=layer._layout,
        projection_size=layer._projection_size,
        use_sequence_length=layer._use_sequence_length,
        lstm_clip={"lstm_state_clip_min": layer._lstm_state_clip_min,
                   "lstm_state_clip_max": layer._lstm_state_clip_max,
                   "lstm_state_clip_nan": layer._lstm_state_clip_nan})


def layer_arrays(F, layer, state, batch_size):
    """``{'l0_i2h_weight': array, …}``: a Gluon layer's parameters as ``F`` sees them, for
    ``run_layer``; imperative (``F is nd``) calls check ``state`` first, as the layer does."""
    params = layer_parameters(layer)
    if F is not nd:
        return {name: p.var() for name, p in params.items()}
    check_state_shapes(layer, state, batch_size)
    ctx = state[0].context
    return {name: p.data(ctx) for name, p in params.items()}


def run_layer(F, spec, X, state, w, projected=False):
    """A Gluon recurrent layer (``spec``, arrays ``w``) on ``X (T, batch, in)`` through
    ``fused.run``; ``projected``: ``X`` is already layer 1's input projection."""
    weights, biases = kernel_parameters(w, spec.num_layers)
    if projected:
        weights[0] = fused.identity(F, biases[0])
    width = spec.gates * spec.num_hiddens
    vectors = [fused.flatten(F, weights[2 * l:2 * l + 2], biases[2 * l:2 * l + 2], width)
               for l in range(spec.num_layers)]
    return fused.run(F, X, state, vectors, mode=spec.mode, num_hiddens=spec.num_hiddens,
                     dropout=spec.dropout, **spec.lstm_clip)


def kernel_parameters(w, num_layers):
    """``(weights, biases)`` of a Gluon layer's arrays ``w`` (``layer_parameters``' names) in
    the order of ``fused.run``: layer by layer, ``i2h`` then ``h2h``."""
    order = [(l, g) for l in range(num_layers) for g in ("i2h", "h2h")]
    return ([w[f"l{l}_{g}_weight"] for l, g in order], [w[f"l{l}_{g}_bias"] for l, g in order])


def check_state_shapes(layer, state, batch_size):
    """The check a Gluon recurrent ``layer`` makes of its ``state``, with the same message
    (the kernel lyricnn calls instead would fail with a shape assertion)."""
    for s, info in zip(state, layer.state_info(batch_size)):
        if s.shape != info["shape"]:
            raise ValueError(f"Invalid recurrent state shape. Expecting {info['shape']}, "
                             f"got {s.shape}.")


def layer_parameters(layer):
    """``{'l0_i2h_weight': Parameter, …}``: a layer's own parameters by structural name."""
    return {name[len(layer.prefix):]: p for name, p in layer.params.items()}


def check_recurrent_layer(layer):
    """``ValueError`` unless ``layer`` is a recurrent Gluon block ``RNNModel`` can run: one with
    ``begin_state`` (a ``Dense`` would fail at the first step), and for Gluon's own
    ``rnn.RNN/GRU/LSTM`` the time-major layout and at least one hidden unit, which the
    model's reshape of the output to ``(num_steps * batch, hidden)`` needs."""
    if not isinstance(layer, nn.Block) or not callable(getattr(layer, "begin_state", None)):
        raise ValueError(f"rnn_layer must be a Gluon recurrent layer such as rnn.RNN(256), "
                         f"got {layer!r:.60} ({type(layer).__name__})")
    if isinstance(layer, (gluon_rnn.RNN, gluon_rnn.GRU, gluon_rnn.LSTM)):
        spec = layer_spec(layer)
        if spec.layout != "TNC":
            raise ValueError(f"rnn_layer must use layout='TNC' (the default; RNNModel feeds it "
                             f"(num_steps, batch, ...) inputs), got layout={spec.layout!r}")
        if spec.num_hiddens < 1:
            raise ValueError(f"rnn_layer's hidden_size must be >= 1, got {spec.num_hiddens}; "
                             "e.g. rnn.RNN(256)")


def _can_gather(layer):
    if not isinstance(layer, (gluon_rnn.RNN, gluon_rnn.GRU, gluon_rnn.LSTM)):
        return False
    spec = layer_spec(layer)
    return (not spec.bidirectional and spec.layout == "TNC" and spec.projection_size is None
            and not spec.use_sequence_length)


class RNNModel(nn.HybridBlock):
    """Any Gluon recurrent layer followed by a dense output layer (book 6.5).

    ``inputs: (batch, num_steps)`` indices; the output is ``(num_steps *
    batch, vocab_size)``, row ``t * batch + b`` for step ``t`` of sequence
    ``b``. ``state`` is what ``begin_state`` returns: a list of one array
    ``(layers, batch, hidden)``, or two for an LSTM.

    The Dense layer must see ``(num_steps * batch, hidden)``: given the 3-D
    output it would flatten it to ``(num_steps, batch * hidden)`` and fail with
    a shape error as soon as ``batch > 1``.

    ``gather_inputs`` (keyword only): the book one-hot encodes the inputs,
    ``(num_steps, batch, vocab_size)``, and the layer multiplies them by its
    first input weight ``W: (gates * hidden, vocab_size)``, which just reads
    one column of ``W`` per character. With ``'auto'`` (the default) the model
    reads those columns by index (an ``Embedding`` lookup on ``Wᵀ``, whose
    gradient lands in ``W`` itself) and runs MXNet's fused kernel on them
    (``lyricnn.models.fused``) whenever that is clearly less work: a unidirectional
    ``rnn.RNN``/``GRU``/``LSTM`` with ``gates * hidden <= 0.8 * vocab_size``.
    Same parameters, same outputs (to float rounding), same checkpoints.
    ``False`` always feeds one-hot vectors to the layer, as the book does;
    ``True`` insists on the lookup.
    """

    def __init__(self, rnn_layer, vocab_size, *, gather_inputs="auto", **kwargs):
        check_recurrent_layer(rnn_layer)
        vocab_size = check_int("vocab_size", vocab_size, 1, FLOAT32_EXACT,
                               hint="the number of distinct tokens")
        super().__init__(**kwargs)
        if gather_inputs not in ("auto", True, False):
            raise ValueError(f"gather_inputs must be 'auto', True or False, got {gather_inputs!r}")
        with self.name_scope():
            self.rnn = rnn_layer
            self.dense = nn.Dense(vocab_size)
        self.vocab_size = vocab_size
        can_gather = _can_gather(rnn_layer)
        if gather_inputs is True and not can_gather:
            raise ValueError("gather_inputs=True needs a unidirectional gluon.rnn.RNN/GRU/LSTM "
                             "layer (TNC layout, no projection, no sequence lengths); pass "
                             "gather_inputs='auto' or False")
        self._spec = layer_spec(rnn_layer) if can_gather else None
        if gather_inputs == "auto":
            gather_inputs = can_gather and fused.worth_it(
                self._spec.gates * self._spec.num_hiddens, vocab_size)
        self._gather = gather_inputs
        if self._gather:
            self._fix_input_size()

    def _fix_input_size(self):
        """Give layer 1's input weight its full shape now: the lookup path never
        runs the layer's own shape inference."""
        weight = layer_parameters(self.rnn)["l0_i2h_weight"]
        rows, cols = weight.shape
        if cols not in (0, self.vocab_size):
            raise ValueError(f"the recurrent layer's input_size is {cols}, but the model "
                             f"reads one-hot vectors of vocab_size={self.vocab_size}; build the "
                             "layer without input_size (or with input_size=vocab_size)")
        weight.shape = (rows, self.vocab_size)  # Parameter.shape fills unknown (0) sizes
        if cols == 0:
            try:
                weight.data(weight.list_ctx()[0])
            except DeferredInitializationError:
                # Initialised before it was wrapped: let the layer finish its own
                # deferred initialisation by running it once on one one-hot step.
                ctx = weight.list_ctx()[0]
                self.rnn(nd.zeros((1, 1, self.vocab_size), ctx=ctx),
                         self.rnn.begin_state(batch_size=1, ctx=ctx))
            except RuntimeError:  # not initialised yet: initialize() sees the full shape
                pass

    def hybrid_forward(self, F, inputs, state):
        if not isinstance(state, (list, tuple)):
            state = [state]
        if self._gather:
            Y, state = self._gathered_rnn(F, inputs, list(state))
        else:  # (num_steps, batch, vocab_size) one-hot, as the book
            Y, state = self.rnn(F.one_hot(F.transpose(inputs), self.vocab_size), state)
        # (num_steps, batch, hidden) -> (num_steps * batch, hidden)
        return self.dense(Y.reshape((-3, 0))), state

    def _gathered_rnn(self, F, inputs, state):
        """The fused kernel on columns ``W[:, x_t]`` instead of one-hot ``x_t``."""
        spec = self._spec
        w = layer_arrays(F, self.rnn, state, inputs.shape[0] if F is nd else None)
        # (batch, num_steps) indices -> (num_steps, batch, width) columns of W.
        columns = F.Embedding(F.transpose(inputs), F.transpose(w["l0_i2h_weight"]),
                              input_dim=self.vocab_size, output_dim=spec.gates * spec.num_hiddens)
        return run_layer(F, spec, columns, state, w, projected=True)

    def begin_state(self, *args, **kwargs):
        """The recurrent layer's zero state, e.g. ``begin_state(batch_size=32, ctx=ctx)``."""
        return self.rnn.begin_state(*args, **kwargs)

    def named_parameters(self):
        """``{'rnn.l0_i2h_weight': Parameter, …, 'dense.weight': …}``: Gluon's structural
        names, as ``save_parameters`` writes them (independent of how many
        models this process has built, unlike ``collect_params()``' prefixes)."""
        named = {f"rnn.{k}": p for k, p in layer_parameters(self.rnn).items()}
        named.update({f"dense.{k}": p for k, p in layer_parameters(self.dense).items()})
        return named
