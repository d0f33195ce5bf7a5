"""Gradient clipping, perplexity and the book's two training loops (book 6.4.4-6.4.5, 6.5).

Both ``train_and_predict_rnn`` (scratch) and ``train_and_predict_rnn_gluon``
share one epoch loop, one clipping routine and one perplexity/divergence rule,
and print the book's log lines through ``book_print``.  Unlike d2lzh they:

* detach the carried state for real (``s.detach()`` returns a new array; d2lzh
  throws it away);
* never call ``math.exp`` on an overflowing loss (perplexity becomes ``inf``)
  and stop with ``TrainingDiverged`` when the loss itself is NaN or infinite;
* synchronise with the device once per epoch instead of twice per minibatch;
* return a ``History`` of per-epoch perplexity and seconds.
"""
import math
import time
from dataclasses import dataclass, field

import numpy as np
from mxnet import autograd, gluon, init, nd
from mxnet.gluon import loss as gloss

from .generation import predict_rnn, predict_rnn_gluon
from .sampling import data_iter_consecutive, data_iter_random
from .scratch import sequence_forward


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass
class History:
    """Per-epoch training record: ``epoch[i]`` had ``perplexity[i]`` and took ``seconds[i]``."""

    epoch: list = field(default_factory=list)
    perplexity: list = field(default_factory=list)
    seconds: list = field(default_factory=list)

    def append(self, epoch, perplexity, seconds):
        self.epoch.append(epoch)
        self.perplexity.append(perplexity)
        self.seconds.append(seconds)

    def __repr__(self):
        if not self.epoch:
            return "History(empty)"
        return (f"History({len(self.epoch)} epochs, last perplexity "
                f"{self.perplexity[-1]:.4f}, {np.mean(self.seconds):.3f} s/epoch)")


def book_print(*parts):
    """The one place where the library prints: the book's training log lines."""
    print(*parts, flush=True)


def perplexity(mean_loss):
    """``exp(mean cross-entropy)``; ``inf`` where ``math.exp`` would overflow (loss > ~709.78)."""
    try:
        return math.exp(mean_loss)
    except OverflowError:
        return math.inf


def clip_gradients(grads, theta):
    """Scale ``grads`` in place by ``min(1, theta / ||g||)``, ``||g||`` the global L2 norm.

    One fused sum-of-squares over all arrays and no host round-trip: the scale
    stays on the device.  ``theta=None`` disables clipping (as in d2lzh).
    """
    if theta is None:
        return
    norm = nd.sqrt(nd.sum(nd.multi_sum_sq(*grads, num_arrays=len(grads))))
    scale = nd.minimum(theta / norm, 1.0)  # norm == 0 gives inf -> 1
    for g in grads:
        g[:] = nd.broadcast_mul(g, scale)


def grad_clipping(params, theta, ctx):
    """The book's ``grad_clipping``: clip the gradients of NDArrays ``params`` together.

    ``ctx`` is accepted for the book's signature; the arrays carry their own.
    """
    clip_gradients([p.grad for p in params], theta)


def sgd(params, lr, batch_size):
    """Minibatch SGD in place: ``p -= lr * p.grad / batch_size`` (book 3.2)."""
    for p in params:
        nd.sgd_update(p, p.grad, lr=lr / batch_size, out=p)


def _detach(state):
    return type(state)(s.detach() for s in state)


def _check_positive(**values):
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ValueError(f"{name} must be a positive number, got {value!r}")


def run_epoch(batches, forward, begin_state, carry_state, update):
    """Train over ``batches`` once; return the mean cross-entropy per token.

    ``forward(X, state) -> (logits (num_steps*batch, V), state)``;
    ``begin_state()`` gives a fresh state; with ``carry_state`` (consecutive
    sampling) it is made once and detached before every minibatch, otherwise
    (random sampling) remade for every minibatch.  ``update()`` clips and steps.
    """
    loss = gloss.SoftmaxCrossEntropyLoss()
    state = begin_state() if carry_state else None
    losses = []
    for X, Y in batches:
        state = _detach(state) if carry_state else begin_state()
        with autograd.record():
            logits, state = forward(X, state)
            l = loss(logits, Y.T.reshape((-1,))).mean()
        l.backward()
        update()
        losses.append(l)
    # One synchronisation per epoch; every minibatch has the same number of tokens.
    return float(np.mean(nd.concat(*losses, dim=0).asnumpy().astype(np.float64)))


def _finish_epoch(history, epoch, mean_loss, start, lr, clipping_theta):
    if not math.isfinite(mean_loss):
        raise TrainingDiverged(
            f"epoch {epoch}: the training loss became {mean_loss}; the model diverged. "
            f"Use a smaller learning rate (lr={lr}) or clip the gradients "
            f"(clipping_theta={clipping_theta})."
        )
    history.append(epoch, perplexity(mean_loss), time.time() - start)


def _log_epoch(history, samples):
    book_print("epoch %d, perplexity %f, time %.2f sec" % (
        history.epoch[-1], history.perplexity[-1], history.seconds[-1]))
    for text in samples:
        book_print(" -", text)


def _check_training_args(num_epochs, num_steps, batch_size, lr, clipping_theta, pred_period):
    _check_positive(num_epochs=num_epochs, num_steps=num_steps, batch_size=batch_size,
                    lr=lr, pred_period=pred_period)
    if clipping_theta is not None:
        _check_positive(clipping_theta=clipping_theta)


def train_and_predict_rnn(rnn, get_params, init_rnn_state, num_hiddens, vocab_size, ctx,
                          corpus_indices, idx_to_char, char_to_idx, is_random_iter,
                          num_epochs, num_steps, lr, clipping_theta, batch_size,
                          pred_period, pred_len, prefixes):
    """Train a from-scratch RNN and print samples every ``pred_period`` epochs (book 6.4.5).

    Same signature and log lines as d2lzh; returns the ``History``.
    """
    _check_training_args(num_epochs, num_steps, batch_size, lr, clipping_theta, pred_period)
    sampler = data_iter_random if is_random_iter else data_iter_consecutive
    params = get_params()
    seq_forward = sequence_forward(rnn, vocab_size)

    def update():
        grad_clipping(params, clipping_theta, ctx)
        sgd(params, lr, 1)

    history = History()
    for epoch in range(1, num_epochs + 1):
        start = time.time()
        mean_loss = run_epoch(
            sampler(corpus_indices, batch_size, num_steps, ctx),
            lambda X, state: seq_forward(X, state, params),
            lambda: init_rnn_state(batch_size, num_hiddens, ctx),
            carry_state=not is_random_iter, update=update)
        _finish_epoch(history, epoch, mean_loss, start, lr, clipping_theta)
        if epoch % pred_period == 0:
            _log_epoch(history, [
                predict_rnn(prefix, pred_len, rnn, params, init_rnn_state, num_hiddens,
                            vocab_size, ctx, idx_to_char, char_to_idx)
                for prefix in prefixes])
    return history


def train_and_predict_rnn_gluon(model, num_hiddens, vocab_size, ctx, corpus_indices,
                                idx_to_char, char_to_idx, num_epochs, num_steps, lr,
                                clipping_theta, batch_size, pred_period, pred_len, prefixes):
    """Train a Gluon ``RNNModel`` with consecutive sampling (book 6.5).

    Same signature and log lines as d2lzh (parameters re-initialised with
    N(0, 0.01²), plain SGD); the model is hybridized when it supports it.
    Returns the ``History``.
    """
    _check_training_args(num_epochs, num_steps, batch_size, lr, clipping_theta, pred_period)
    model.initialize(ctx=ctx, force_reinit=True, init=init.Normal(0.01))
    if isinstance(model, gluon.HybridBlock):
        model.hybridize(static_alloc=True, static_shape=True)
    params = list(model.collect_params().values())
    trainer = gluon.Trainer(params, "sgd", {"learning_rate": lr, "momentum": 0, "wd": 0})

    def update():
        clip_gradients([p.grad(ctx) for p in params], clipping_theta)
        trainer.step(1)

    history = History()
    for epoch in range(1, num_epochs + 1):
        start = time.time()
        mean_loss = run_epoch(
            data_iter_consecutive(corpus_indices, batch_size, num_steps, ctx),
            model, lambda: model.begin_state(batch_size=batch_size, ctx=ctx),
            carry_state=True, update=update)
        _finish_epoch(history, epoch, mean_loss, start, lr, clipping_theta)
        if epoch % pred_period == 0:
            _log_epoch(history, [
                predict_rnn_gluon(prefix, pred_len, model, vocab_size, ctx, idx_to_char,
                                  char_to_idx)
                for prefix in prefixes])
    return history
