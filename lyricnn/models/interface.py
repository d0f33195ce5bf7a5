"""The one language-model interface: what training, checkpoints, scoring, generation and the CLI use.

A ``LanguageModel`` maps a minibatch of indices to next-character logits::

    logits, state = lm(X, state)   # X: (batch, num_steps); logits: (num_steps * batch, V)

``logits`` is time-major (row ``t * batch + b`` is step ``t`` of sequence
``b``), as the book's ``nd.concat(*outputs, dim=0)``. Training calls one more
method, ``loss, state = lm.train_step(X, Y, state)`` (forward and backward of a
minibatch; the cross-entropy of the logits unless a model's loss is more, as
``lyricnn.models.word.WordLM``'s, which overrides ``_backward``, the one path of
both); dynamic evaluation one more, ``adapt_step`` (the same with dropout off and
the cross-entropy alone). Two implementations:

* ``ScratchLM``: a book-style cell function (``rnn``, ``gru``, ``lstm``,
  ``deep_*``, or one a reader writes in a notebook) and its parameter list;
* ``GluonLM``: a Gluon ``RNNModel`` (book 6.5).

``build_lm`` makes a fresh one by name (``MODELS``), the way the CLI and
checkpoints do. The optimizer (``lyricnn.training.optim.clipped_sgd``) and
decoding (``lyricnn.decoding.generate.generate``) are functions over this interface.
"""
import functools

from mxnet import autograd, nd

from lyricnn.context import resolve_ctx
from lyricnn.models import cells
from lyricnn.models.onehot import to_onehot
from lyricnn.models.tracing import TracedForward
from lyricnn.training.optim import _loss_and_unscaled_gradient


class LanguageModel:
    """The interface. Subclasses set ``vocab_size`` and ``ctx`` and implement the methods."""

    vocab_size: int
    ctx: object

    def begin_state(self, batch_size):
        """The zero state for ``batch_size`` sequences: a tuple (or list) of NDArrays."""
        raise NotImplementedError

    def forward(self, X, state):
        """``X: (batch, num_steps)`` -> ``(logits (num_steps * batch, V), new state)``."""
        raise NotImplementedError

    def __call__(self, X, state):
        return self.forward(X, state)

    def train_step(self, X, Y, state):
        """Forward and backward of one minibatch: ``X, Y (batch, num_steps)`` ->
        ``(mean cross-entropy per token (1,), new state)``, leaving in the gradient
        arrays the gradient of the *summed* loss (the update divides by the tokens,
        ``clipped_sgd``'s ``grad_scale``), so that devices' gradients add up.

        The loss's gradient is computed directly as ``softmax - onehot``
        (``lyricnn.training.optim``), not through MXNet's slow ``log_softmax``
        backward. A model whose training loss is more than the cross-entropy of its
        logits (``lyricnn.models.word.WordLM``) overrides ``_backward``.
        """
        return self._backward(X, Y, state, training=True)

    def adapt_step(self, X, Y, state):
        """``train_step`` as dynamic evaluation needs it (``lyricnn.training.dynamic``):
        dropout off, and the cross-entropy alone (no training penalty). Same return and
        gradient convention. (A scratch model's traced replay records training only, so
        here its cell runs as written.)"""
        return self._backward(X, Y, state, training=False)

    def _backward(self, X, Y, state, training):
        with autograd.record(train_mode=training):
            logits, state = self(X, state)                  # (num_steps * batch, V)
        loss, dlogits = _loss_and_unscaled_gradient(logits, Y.T.reshape((-1,)))
        logits.backward(dlogits)
        return loss, state

    #: The axis of each state array that runs over the batch: ``(batch, hidden)`` for the
    #: book's cells, ``(layers, batch, hidden)`` for Gluon's layers.
    state_batch_axis = 0

    def take_state(self, state, rows):
        """The state of sequences ``rows`` (a list of batch indices, repeats allowed) of
        ``state``: how decoding copies one prefix's state to n candidates, reorders beams
        and drops finished rows."""
        index = nd.array(rows, ctx=self.ctx, dtype="int64")
        return _map_arrays(state, lambda a: nd.take(a, index, axis=self.state_batch_axis))

    def join_states(self, states):
        """One batch of the sequences of several ``states`` (each from ``begin_state`` or a
        forward call), in order: how a server adds requests to a running batch."""
        first = states[0]
        if isinstance(first, nd.NDArray):
            return nd.concat(*states, dim=self.state_batch_axis)
        return type(first)(self.join_states([s[i] for s in states]) for i in range(len(first)))

    def named_parameters(self):
        """``{name: NDArray}`` of every parameter, under the names checkpoint files use."""
        raise NotImplementedError

    def weights(self):
        """The trainable arrays, in a fixed order."""
        raise NotImplementedError

    def gradients(self):
        """Their gradients, in the same order."""
        raise NotImplementedError

    def replicate(self, ctxs):
        """The model on each device of ``ctxs`` (the first is ``self.ctx``), for
        ``lyricnn.training.parallel.DataParallel``: ``[self, copy on ctxs[1], …]``, each a
        ``LanguageModel`` with its own weights and gradients on its device."""
        raise NotImplementedError

    def own_arrays(self, arrays):
        """``arrays`` (``{name: NDArray}``) under this model's names: a model whose layout
        changed maps what older checkpoints hold (``lyricnn.models.word``); the others
        take them as they are."""
        return arrays

    def load_named_parameters(self, arrays):
        """Copy ``arrays`` (``{name: NDArray}``, after ``own_arrays``) into the parameters,
        all or nothing.

        ``ValueError`` naming the missing or unexpected names, or the first
        shape that differs, before anything is copied.
        """
        arrays = self.own_arrays(arrays)
        own = self.named_parameters()
        missing, unexpected = sorted(set(own) - set(arrays)), sorted(set(arrays) - set(own))
        if missing or unexpected:
            raise ValueError(f"parameter names differ: missing {missing}, unexpected "
                             f"{unexpected}; the architecture differs")
        for name, array in own.items():
            if arrays[name].shape != array.shape:
                raise ValueError(f"parameter {name!r} has shape {arrays[name].shape}, the model "
                                 f"needs {array.shape}; the vocabulary size or the "
                                 "architecture differs")
        for name, array in own.items():
            array[:] = arrays[name].as_in_context(self.ctx)


def sequence_forward(cell, vocab_size, sparse_inputs=True, trace=True):
    """``(X, state, params) -> (logits (num_steps*batch, V), state)`` for a scratch ``cell``.

    ``cell`` is one of lyricnn's ``cells.Cell`` (RNN, GRU, LSTM: run in their
    fast form, ``cells.sequence``) or a book-style function
    ``cell(inputs, state, params) -> (outputs, state)``, such as one a reader
    writes in a notebook, run on one-hot inputs as the book does. With ``trace``,
    training records either once per input shape and replays the record as
    one MXNet graph (``lyricnn.models.tracing``; a reader's cell on dense one-hot
    inputs, as the book's: MXNet cannot run the sparse product's gradient
    inside a graph). Per epoch, in the book's configuration, replaying makes
    the GRU's and the LSTM's fast forms faster than run as written; the RNN's
    (one fused kernel already) is unchanged (benchmarks/bench_speed.py;
    measured: docs/RESULTS.md, "Design measurements"). Outside
    training, and with ``trace=False``, it runs as written; with
    ``sparse_inputs`` on CSR arrays (``to_onehot(..., sparse=True)``):
    the same values, but the cell's ``nd.dot(X, W_xh)`` becomes MXNet's sparse
    row gather instead of a dense product. Outputs are identical; the input
    weights' gradients equal the dense ones to float rounding (about 2e-8
    relative at the book's sizes: the sparse product sums rows in another
    order). Speed: docs/RESULTS.md. ``False`` for a cell that needs dense inputs.
    """
    if isinstance(cell, cells.Cell):
        fast = functools.partial(cells.sequence, cell)
        return TracedForward(fast) if trace else fast

    def one_hot_forward(X, state, params, sparse=sparse_inputs):
        outputs, state = cell(to_onehot(X, vocab_size, sparse=sparse), state, params)
        return nd.concat(*outputs, dim=0), state

    if not trace:
        return one_hot_forward
    return TracedForward(one_hot_forward, record=functools.partial(one_hot_forward, sparse=False))


class ScratchLM(LanguageModel):
    """A from-scratch cell and its parameter list as a ``LanguageModel``.

    ``cell``: a ``cells.Cell`` or a book-style function (``sequence_forward``);
    ``init_state(batch_size, num_hiddens, ctx)`` its zero state; ``names``
    the checkpoint names of ``params`` (default ``param0``, ``param1``, …);
    ``sparse_inputs``, ``trace``: see ``sequence_forward``.
    """

    def __init__(self, cell, params, init_state, num_hiddens, vocab_size, ctx, names=None,
                 sparse_inputs=True, trace=True):
        self.cell, self.params, self.init_state = cell, list(params), init_state
        self.num_hiddens, self.vocab_size, self.ctx = num_hiddens, vocab_size, ctx
        self.names = list(names) if names is not None else [f"param{i}" for i in
                                                            range(len(self.params))]
        if len(self.names) != len(self.params):
            raise ValueError(f"{len(self.names)} names for {len(self.params)} parameters")
        self.sparse_inputs, self.trace = sparse_inputs, trace
        self._forward = sequence_forward(cell, vocab_size, sparse_inputs, trace)

    def begin_state(self, batch_size):
        return self.init_state(batch_size, self.num_hiddens, self.ctx)

    def forward(self, X, state):
        return self._forward(X, state, self.params)

    def named_parameters(self):
        return dict(zip(self.names, self.params))

    def replicate(self, ctxs):
        copies = []
        for ctx in ctxs[1:]:
            params = [p.copyto(ctx) for p in self.params]
            for p in params:
                p.attach_grad()
            copies.append(ScratchLM(self.cell, params, self.init_state, self.num_hiddens,
                                    self.vocab_size, ctx, self.names, self.sparse_inputs,
                                    self.trace))
        return [self] + copies

    def weights(self):
        return self.params

    def gradients(self):
        return [p.grad for p in self.params]


def _map_arrays(state, f):
    """``state`` (an NDArray, or tuples/lists of them) with ``f`` applied to each array."""
    if isinstance(state, nd.NDArray):
        return f(state)
    return type(state)(_map_arrays(s, f) for s in state)


class GluonLM(LanguageModel):
    """An initialised Gluon ``RNNModel`` as a ``LanguageModel``.

    ``hybridize`` (default) compiles it once (``static_alloc``/``static_shape``:
    one memory plan reused every minibatch).
    """

    state_batch_axis = 1   # Gluon's recurrent layers: (layers, batch, hidden)

    def __init__(self, model, vocab_size, ctx, hybridize=True):
        # None: MXNet's current context, named now (forward enters its scope).
        self.model, self.vocab_size, self.ctx = model, vocab_size, resolve_ctx(ctx)
        if hybridize:
            model.hybridize(static_alloc=True, static_shape=True)
        self._static_shape = hybridize
        self._params = [p for p in model.collect_params().values() if p.grad_req != "null"]

    def begin_state(self, batch_size):
        return self.model.begin_state(batch_size=batch_size, ctx=self.ctx)

    def forward(self, X, state):
        # A hybridized block reads each Parameter on the *current* context
        # (Parameter.data() without ctx), so a model on several devices must be
        # called inside its own device's scope.
        with self.ctx:
            return self.model(X, state)

    def adapt_step(self, X, Y, state):
        if self._static_shape:
            # MXNet 1.9.1: once a static_shape graph of a stacked LSTM has run unrecorded
            # (any evaluation, or build_word_lm's first call), its backward after a
            # *recorded* predict-mode call fails with "vector::_M_range_check" (30 of 30
            # calls of a 2-layer word model after an evaluation). Compiled with static_alloc
            # alone it does not; only a model that is dynamically evaluated gives up
            # static_shape (tests/test_dynamic.py).
            self.model.hybridize(static_alloc=True)
            self._static_shape = False
        return super().adapt_step(X, Y, state)

    def named_parameters(self):
        return {name: p.data(self.ctx) for name, p in self.model.named_parameters().items()}

    def weights(self):
        return [p.data(self.ctx) for p in self._params]

    def gradients(self):
        return [p.grad(self.ctx) for p in self._params]

    def replicate(self, ctxs):
        # Gluon keeps one array per device in each Parameter. reset_ctx would
        # start every device from the *average* of the arrays it already has
        # (stale after a load into self.ctx alone), so self.ctx's values are
        # set on every device instead.
        for p in self.model.collect_params().values():
            value = p.data(self.ctx).copy()
            p.reset_ctx(list(ctxs))
            p.set_data(value)
        return [self] + [type(self)(self.model, self.vocab_size, ctx, hybridize=False)
                         for ctx in ctxs[1:]]
