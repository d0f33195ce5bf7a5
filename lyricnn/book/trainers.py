"""The book's training functions (6.4.4-6.4.5, 6.5): ``grad_clipping``, ``sgd``,
``train_and_predict_rnn`` and ``train_and_predict_rnn_gluon``.

Same names, signatures and log lines as d2lzh; underneath, the one loop
``lyricnn.training.loop.train_epochs``. Unlike d2lzh it detaches the carried
state for real, never calls ``math.exp`` on an overflowing loss, stops with
``TrainingDiverged`` when the loss is NaN, clips and updates all parameters
in two fused operators, trains the book's cells in their fast form
(``FAST_FORMS``) and returns a ``History``.
"""

import numpy as np
from mxnet import init, nd
from mxnet.gluon import rnn as gluon_rnn

from lyricnn.checks import check_int, check_number, is_integer
from lyricnn.context import resolve_ctx_list
from lyricnn.training.log import book_logger
from lyricnn.book.deep import deep_gru, deep_lstm, deep_rnn
from lyricnn.book.gated import gru, lstm
from lyricnn.book.scratch import rnn as book_rnn
from lyricnn.models import cells
from lyricnn.models.gluon import layer_spec
from lyricnn.models.interface import GluonLM, ScratchLM
from lyricnn.training.parallel import worker_info
from lyricnn.training.loop import train_epochs
from lyricnn.training.optim import _sum_of_squares
from lyricnn.tuning import retain_freed_memory


# ------------------------------------------------------------------- optimizer

def grad_clipping(params, theta, ctx):
    """The book's ``grad_clipping``: scale the gradients of NDArrays ``params`` in place by
    ``min(1, theta / ||g||)``, ``||g||`` their global L2 norm.

    One fused sum of squares and no host round-trip: the scale stays on the
    device. ``ctx`` is accepted for the book's signature; the arrays carry their own.
    ``theta=None`` disables clipping.
    """
    if theta is None:
        return
    check_number("theta", theta, 0, low_open=True, hint="the largest gradient norm kept, e.g. 1e-2")
    grads = _grads(params)
    if not grads:
        return   # nothing to clip (d2lzh's loop over no parameters does nothing either)
    norm = nd.sqrt(_sum_of_squares(grads))
    scale = nd.minimum(theta / norm, 1.0)  # norm == 0 gives inf -> 1
    for g in grads:
        nd.broadcast_mul(g, scale.reshape((1,) * g.ndim), out=g)


def sgd(params, lr, batch_size):
    """Minibatch SGD in place: ``p -= lr * p.grad / batch_size`` (book 3.2)."""
    check_number("lr", lr, 0, low_open=True, hint="the book uses lr=1e2 for 6.4")
    batch_size = check_int("batch_size", batch_size, hint="the book's loop passes 1")
    params = list(params)
    step = lr / batch_size
    if not 1.2e-38 <= step <= 3.4e38:   # MXNet parses lr as a normal float32
        raise ValueError(f"lr / batch_size must be a normal float32 (between 1.2e-38 and 3.4e38), "
                         f"got {lr!r} / {batch_size} = {step!r}; MXNet updates in float32")
    for p, g in zip(params, _grads(params)):
        nd.sgd_update(p, g, lr=step, out=p)


def _grads(params):
    """The gradients of NDArrays ``params``, or ``ValueError`` naming one without a gradient
    buffer (a Python attribute read per array: free beside the update itself)."""
    params = list(params)
    grads = [getattr(p, "grad", None) for p in params]
    for i, g in enumerate(grads):
        if g is None:
            raise ValueError(f"params[{i}] has no gradient buffer; call attach_grad() on each "
                             "parameter before autograd.record() (get_params does)")
    return grads


def check_training_args(num_epochs, num_steps, batch_size, lr, clipping_theta, pred_period=1):
    """Raise ``ValueError`` naming the first bad hyperparameter."""
    check_int("num_epochs", num_epochs)
    check_int("num_steps", num_steps)
    check_int("batch_size", batch_size)
    check_number("lr", lr, 0, low_open=True)
    if np.float32(lr) == 0:
        raise ValueError(f"lr={lr!r} is 0 in float32, the precision MXNet updates in; "
                         "nothing would train. Use lr >= 1e-38")
    if clipping_theta is not None:
        check_number("clipping_theta", clipping_theta, 0, low_open=True)
    check_int("pred_period", pred_period)


#: The book's cell functions -> the cells they compute. lyricnn trains and decodes them in
#: the cells' fast form (the same numbers, ``lyricnn.models.cells.sequence``); any other
#: function, e.g. one written in a notebook, runs as the book runs it, on one-hot inputs.
FAST_FORMS = {book_rnn: cells.RNN, gru: cells.GRU, lstm: cells.LSTM,
              deep_rnn: cells.RNN, deep_gru: cells.GRU, deep_lstm: cells.LSTM}


def check_vocabulary(vocab_size, idx_to_char=None, char_to_idx=None, *, rnn=None, params=None,
                     model=None, num_hiddens=None):
    """``ValueError`` unless the vocabulary, the parameters and the model agree on its size
    (and, when given, on ``num_hiddens``).

    ``params`` of the book's cells (``FAST_FORMS``) start with ``W_x* (V, h)`` and end
    with ``b_q (V,)``; a Gluon ``model`` knows its ``vocab_size``. Checked once per call
    of the book's functions (their loops then run unchecked).
    """
    V = check_int("vocab_size", vocab_size, hint="the number of distinct characters")
    if idx_to_char is not None and len(idx_to_char) != V:
        raise ValueError(f"idx_to_char has {len(idx_to_char)} tokens but vocab_size={V}; pass "
                         "the vocabulary the model was built for")
    if char_to_idx is not None:
        bad = next(((c, i) for c, i in char_to_idx.items()
                    if not (is_integer(i) and 0 <= i < V)), None)
        if bad is not None:
            raise ValueError(f"char_to_idx maps {bad[0]!r} to {bad[1]!r}, outside [0, "
                             f"vocab_size={V}); pass the char_to_idx of this vocabulary")
    if num_hiddens is not None:
        num_hiddens = check_int("num_hiddens", num_hiddens, hint="the book uses 256")
    if params is not None and rnn in FAST_FORMS:
        params = list(params)
        shapes = (tuple(params[0].shape), tuple(params[-1].shape)) if params else ((), ())
        if not params or shapes[0][:1] != (V,) or shapes[1] != (V,):
            raise ValueError(f"the parameters are for a vocabulary of {shapes[1][:1] or '?'} "
                             f"(W_x {shapes[0]}, b_q {shapes[1]}), not vocab_size={V}; build "
                             "them with get_params(vocab_size, ...) of this vocabulary")
        if num_hiddens is not None and shapes[0][1:] != (num_hiddens,):
            raise ValueError(f"num_hiddens={num_hiddens} but the parameters have "
                             f"{shapes[0][1]} hidden units (W_x {shapes[0]}); pass the "
                             "num_hiddens get_params was built with")
    model_size = getattr(model, "vocab_size", None)
    if model_size is not None and model_size != V:
        raise ValueError(f"the model was built for vocab_size={model_size}, not {V}; build "
                         "RNNModel(rnn_layer, vocab_size) with this vocabulary's size")
    layer = getattr(model, "rnn", None)
    if num_hiddens is not None and isinstance(layer, (gluon_rnn.RNN, gluon_rnn.GRU,
                                                      gluon_rnn.LSTM)):
        hidden = layer_spec(layer).num_hiddens
        if hidden != num_hiddens:
            raise ValueError(f"num_hiddens={num_hiddens} but the model's recurrent layer has "
                             f"{hidden} hidden units; pass num_hiddens={hidden}")
    return V


def scratch_lm(rnn, params, init_rnn_state, num_hiddens, vocab_size, ctx, **options):
    """The book's scratch model (a cell function and its parameters) as a ``ScratchLM``."""
    return ScratchLM(FAST_FORMS.get(rnn, rnn), params, init_rnn_state, num_hiddens,
                     vocab_size, ctx, **options)


def train_and_predict_rnn(rnn, get_params, init_rnn_state, num_hiddens, vocab_size, ctx,
                          corpus_indices, idx_to_char, char_to_idx, is_random_iter,
                          num_epochs, num_steps, lr, clipping_theta, batch_size,
                          pred_period, pred_len, prefixes, *, valid_indices=None,
                          sparse_inputs=True, trace=True, kvstore=None):
    """Train a from-scratch RNN and print samples every ``pred_period`` epochs (book 6.4.5).

    Same signature and log lines as d2lzh; ``valid_indices`` (keyword) adds a
    held-out perplexity. A cell of the reader's own is recorded once and its
    record replayed as one MXNet graph for every minibatch (as ``hybridize``
    does: a ``print`` in the cell runs once) unless ``trace=False``; outside
    training it gets CSR one-hot inputs unless ``sparse_inputs=False``
    (``lyricnn.models.interface.sequence_forward``, ``lyricnn.models.tracing``).
    ``ctx`` may list several devices and ``kvstore='dist_sync'`` adds worker
    processes (``train_epochs``). Returns the ``History``.
    """
    check_training_args(num_epochs, num_steps, batch_size, lr, clipping_theta, pred_period)
    ctxs = resolve_ctx_list(ctx)
    retain_freed_memory()   # lyricnn.tuning: MXNet allocates afresh every minibatch
    params = get_params()
    if not isinstance(params, (list, tuple)) or not params:
        raise ValueError(f"get_params() must return the list of parameter arrays, got "
                         f"{params!r:.60}; see d2l.get_params / d2l.params_getter")
    if any(getattr(p, "grad", None) is None for p in params):
        raise ValueError("get_params() returned parameters without gradient buffers; call "
                         "attach_grad() on each (the book's get_params does)")
    params = [p if p.context == ctxs[0] else _with_grad(p.copyto(ctxs[0])) for p in params]
    check_vocabulary(vocab_size, idx_to_char, char_to_idx, rnn=rnn, params=params,
                     num_hiddens=num_hiddens)
    lm = scratch_lm(rnn, params, init_rnn_state, num_hiddens, vocab_size, ctxs[0],
                    sparse_inputs=sparse_inputs, trace=trace)
    return _train(lm, corpus_indices, is_random_iter, num_steps, batch_size, lr, clipping_theta,
                  num_epochs, pred_period, pred_len, prefixes, idx_to_char, char_to_idx,
                  valid_indices, ctxs, kvstore)


def _train(lm, corpus_indices, is_random_iter, num_steps, batch_size, lr, clipping_theta,
           num_epochs, pred_period, pred_len, prefixes, idx_to_char, char_to_idx,
           valid_indices, ctxs, kvstore):
    """The one loop with the book's log lines, printed by worker 0 only of a distributed run."""
    log = None
    if worker_info(kvstore)[0] == 0:
        log = book_logger(lm, pred_period, pred_len, prefixes, idx_to_char, char_to_idx)
    return train_epochs(lm, corpus_indices, is_random_iter, num_steps, batch_size, lr,
                        clipping_theta, range(1, num_epochs + 1), valid_indices=valid_indices,
                        on_epoch_end=log, ctx=ctxs, kvstore=kvstore)


def _with_grad(array):
    array.attach_grad()
    return array


def train_and_predict_rnn_gluon(model, num_hiddens, vocab_size, ctx, corpus_indices,
                                idx_to_char, char_to_idx, num_epochs, num_steps, lr,
                                clipping_theta, batch_size, pred_period, pred_len, prefixes,
                                *, valid_indices=None, kvstore=None):
    """Train a Gluon ``RNNModel`` with consecutive sampling (book 6.5).

    Same signature and log lines as d2lzh: parameters re-initialised with
    N(0, 0.01²), plain SGD. ``ctx`` may list several devices and
    ``kvstore='dist_sync'`` adds worker processes (``train_epochs``).
    Returns the ``History``.
    """
    check_training_args(num_epochs, num_steps, batch_size, lr, clipping_theta, pred_period)
    check_vocabulary(vocab_size, idx_to_char, char_to_idx, model=model, num_hiddens=num_hiddens)
    ctxs = resolve_ctx_list(ctx)
    retain_freed_memory()   # lyricnn.tuning: MXNet allocates afresh every minibatch
    model.initialize(ctx=ctxs, force_reinit=True, init=init.Normal(0.01))
    # Shapes are inferred on the first call: one step materialises every parameter
    # (on every device) before the replicas read them.
    model(nd.zeros((1, 1), ctx=ctxs[0]), model.begin_state(batch_size=1, ctx=ctxs[0]))
    lm = GluonLM(model, vocab_size, ctxs[0])
    return _train(lm, corpus_indices, False, num_steps, batch_size, lr, clipping_theta,
                  num_epochs, pred_period, pred_len, prefixes, idx_to_char, char_to_idx,
                  valid_indices, ctxs, kvstore)
