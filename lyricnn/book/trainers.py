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

from lyricnn.checks import check_int, check_number
from lyricnn.context import resolve_ctx_list
from lyricnn.training.log import book_logger
from lyricnn.book.deep import deep_gru, deep_lstm, deep_rnn
from lyricnn.book.gated import gru, lstm
from lyricnn.book.scratch import rnn as book_rnn
from lyricnn.models import cells
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
    grads = [p.grad for p in params]
    norm = nd.sqrt(_sum_of_squares(grads))
    scale = nd.minimum(theta / norm, 1.0)  # norm == 0 gives inf -> 1
    for g in grads:
        nd.broadcast_mul(g, scale.reshape((1,) * g.ndim), out=g)


def sgd(params, lr, batch_size):
    """Minibatch SGD in place: ``p -= lr * p.grad / batch_size`` (book 3.2)."""
    for p in params:
        nd.sgd_update(p, p.grad, lr=lr / batch_size, out=p)


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
    params = [p if p.context == ctxs[0] else _with_grad(p.copyto(ctxs[0])) for p in get_params()]
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
