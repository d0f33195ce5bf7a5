"""Gradient clipping, perplexity and the training loop (book 6.4.4-6.4.5, 6.5).

One loop, ``train_epochs``, trains any ``lyricnn.models.LanguageModel``;
the book's ``train_and_predict_rnn`` (scratch) and
``train_and_predict_rnn_gluon`` wrap it and print the book's log lines
through ``book_print``. Unlike d2lzh it:

* detaches the carried state for real (``s.detach()`` returns a new array;
  d2lzh throws it away);
* never calls ``math.exp`` on an overflowing loss (perplexity becomes ``inf``)
  and stops with ``TrainingDiverged`` when the loss itself is NaN or infinite;
* clips and updates all parameters in two fused operators, and synchronises
  with the device once per epoch instead of twice per minibatch;
* returns a ``History`` of per-epoch perplexity and seconds.
"""
import ctypes
import functools
import os
import sys
import time
from dataclasses import asdict, dataclass, field

import mxnet as mx
import numpy as np
from mxnet import autograd, init, nd
from mxnet.gluon import loss as gloss

from .checks import check_int, check_number
from .context import resolve_ctx_list
from .generation import generate
from .metrics import perplexity
from .models import GluonLM, ScratchLM
from .parallel import DataParallel, worker_info
from .sampling import data_iter_consecutive, data_iter_random


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


class TrainingInterrupted(RuntimeError):
    """``should_stop()`` asked training to stop; ``epoch`` epochs were completed."""

    def __init__(self, epoch):
        super().__init__(f"training interrupted after epoch {epoch}")
        self.epoch = epoch


@dataclass
class History:
    """Per-epoch record: ``epoch[i]`` had training ``perplexity[i]``, held-out
    ``valid_perplexity[i]`` (``None`` without a held-out set), took ``seconds[i]``
    and trained at learning rate ``lr[i]``."""

    epoch: list = field(default_factory=list)
    perplexity: list = field(default_factory=list)
    seconds: list = field(default_factory=list)
    valid_perplexity: list = field(default_factory=list)
    lr: list = field(default_factory=list)

    def append(self, epoch, perplexity, seconds, valid_perplexity=None, lr=None):
        self.epoch.append(epoch)
        self.perplexity.append(perplexity)
        self.seconds.append(seconds)
        self.valid_perplexity.append(valid_perplexity)
        self.lr.append(lr)

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, data):
        data = {k: list(v) for k, v in data.items()}
        data.setdefault("lr", [None] * len(data.get("epoch", ())))  # before lr was recorded
        return cls(**data)

    def __repr__(self):
        if not self.epoch:
            return "History(empty)"
        return (f"History({len(self.epoch)} epochs, last perplexity "
                f"{self.perplexity[-1]:.4f}, {np.mean(self.seconds):.3f} s/epoch)")


def book_print(*parts):
    """The one place where the library prints: the book's training log lines."""
    print(*parts, flush=True)


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


def clipped_sgd(weights, grads, lr, theta, grad_scale=1.0):
    """``w -= lr * min(1, theta / ||g||) * g`` for every array, ``||g||`` the global norm.

    The book's ``grad_clipping`` followed by ``sgd(params, lr, 1)``. The
    clipping factor stays on the device (no host round-trip) and the
    gradients are left unscaled. ``theta=None`` disables clipping.

    ``grad_scale``: the gradients are ``grad_scale * grads``. The training loop
    leaves the loss gradient's ``1 / tokens`` to this scalar instead of
    multiplying every logit's gradient by it (a pass over ``tokens x V``
    floats: 2.6 ms at the 2x200 word LM's 400 x 10,000, of a 57-59 ms step;
    benchmarks/profile_step.py, AMD EPYC 2 vCPU, MXNet 1.9.1). Equal to
    scaling first, to float rounding.
    """
    ctx = weights[0].context
    if theta is None:
        factor = nd.full((1, 1), grad_scale, ctx=ctx, dtype=weights[0].dtype)
    else:
        norm = nd.sqrt(_sum_of_squares(grads))
        if grad_scale != 1.0:
            norm = norm * grad_scale
        # min(theta / norm, 1): norm 0 gives inf -> 1, never 0/0.
        factor = nd.minimum(theta / norm, 1.0).reshape((1, 1))
        if grad_scale != 1.0:
            factor = factor * grad_scale
    for w, g in zip(weights, grads):
        _axpy_device_scale(w, g, -lr, factor)


def _sum_of_squares(arrays):
    """``sum(||a||^2)`` over NDArrays ``arrays``, a ``(1,)`` NDArray: one BLAS dot each.

    ``multi_sum_sq`` gives each array to one thread and sums it in a scalar
    loop; the dots are vectorised. Measured on whole training steps (paired
    windows in one process, AMD EPYC 2 vCPU shared with another job, MXNet
    1.9.1): 2.7 ms less per minibatch at 2x200 (of ~130) and at 2x650 tied (of ~870).
    """
    flat = [a.reshape((-1,)) for a in arrays]
    return nd.add_n(*[nd.dot(a, a) for a in flat]) if len(flat) > 1 else nd.dot(flat[0], flat[0])


def _axpy_device_scale(w, g, alpha, factor):
    """``w += alpha * factor * g`` in place, ``alpha`` a float, ``factor`` a (1, 1) NDArray.

    MXNet has no public one-pass ``w += a * g`` whose scale lives on the device:
    ``sgd_update`` takes its rate from the host, and ``preloaded_multi_sgd_update``
    (which reads it from the device) runs a scalar loop over every array at once.
    A GEMM with an inner dimension of 1 is exactly that update, in one
    vectorised BLAS pass: ``(1, 1) x (1, n) * alpha + 1 * w``; ``linalg.gemm``
    updates ``C`` in place when ``out`` is ``C``. Measured on the 2x200 word
    LM's 11 arrays (4.6 M floats, AMD EPYC 2 vCPU, MXNet 1.9.1):
    ``preloaded_multi_sgd_update`` 21.4 ms, one ``sgd_update`` per array
    6.9 ms, this 3.9 ms (a bare ``elemwise_sub`` takes 3.3 ms).
    """
    row = w.reshape((1, -1))
    nd.linalg.gemm(factor, g.reshape((1, -1)), row, alpha=alpha, beta=1.0, out=row)


# ------------------------------------------------------------------------ loss

def softmax_cross_entropy(logits, labels, count=None):
    """Mean cross-entropy of ``logits (N, V)`` against class indices ``labels (N,)``,
    and its gradient with respect to ``logits``, without autograd.

    ``count`` (default ``N``) divides the gradient: a device holding ``N`` of a
    minibatch's ``count`` tokens passes ``count``, so that the devices'
    gradients *sum* to the whole minibatch's.

    Returns ``(loss, grad)``: ``loss`` (shape ``(1,)``) is Gluon's
    ``SoftmaxCrossEntropyLoss()(logits, labels).mean()``, computed by the same
    operators (``log_softmax``, ``pick``, ``mean``); ``grad`` is
    ``(softmax(logits) - onehot(labels)) / N``, what autograd gets through
    ``log_softmax``. Train with ``logits.backward(grad)``.

    Why: MXNet's ``log_softmax`` *forward* is oneDNN's, but its backward is a
    slow native kernel. On the 2x200 word LM (400 x 10,000 logits, AMD EPYC
    2 vCPU, MXNet 1.9.1) ``log_softmax`` forward + backward took 32.6 ms per
    minibatch (``_backward_log_softmax`` 27.8); ``log_softmax`` + ``softmax``
    forward + the in-place ``-1`` and ``/ N`` here take about 9.
    """
    loss, grad = _loss_and_unscaled_gradient(logits, labels)
    grad *= 1.0 / (logits.shape[0] if count is None else count)
    return loss, grad


def _loss_and_unscaled_gradient(logits, labels):
    """``softmax_cross_entropy`` without the final ``/ count``: ``softmax - onehot``."""
    loss = -nd.pick(nd.log_softmax(logits), labels).mean()
    grad = nd.softmax(logits)
    _add_at_labels(grad, labels, -1.0)
    return loss, grad


def _add_at_labels(probs, labels, value):
    """``probs[i, labels[i]] += value`` for every row ``i``, in place.

    The one use of a private MXNet operator (``_internal._scatter_set_nd``,
    what ``NDArray.__setitem__`` runs for this index after building it in
    Python): ``probs[rows, labels] = probs[rows, labels] + value`` took
    2.1 ms per call at (400, 10,000), this 0.4 ms (benchmarks/profile_step.py,
    AMD EPYC 2 vCPU, MXNet 1.9.1), 2-5 % of a training step. MXNet has no
    public in-place scatter.
    ``tests/test_training.py`` checks it against NumPy.
    """
    rows = nd.arange(probs.shape[0], ctx=probs.context, dtype=labels.dtype)
    index = nd.stack(rows, labels)                         # (2, N): (row, column) pairs
    nd._internal._scatter_set_nd(probs, nd.gather_nd(probs, index) + value, index,
                                 shape=probs.shape, out=probs)


# ------------------------------------------------------------------------ loop

# mallopt(3) parameters: glibc's malloc.h.
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_MALLOC_ENV = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_THRESHOLD_",
               "GLIBC_TUNABLES")
_malloc_settings = []


def retain_freed_memory():
    """Make glibc's ``malloc`` keep freed memory for reuse (once per process); ``True``
    if the settings are in force.

    MXNet's CPU storage has no pool: every NDArray an operator outputs is
    ``malloc``-ed and every dropped one ``free``-d, tens of megabytes per
    minibatch (the logits, their softmax, their gradient). glibc returns such
    memory to the kernel (``munmap``, heap trimming) and takes it back on the
    next minibatch, page by page: in one process out of two or three the 2x200
    word LM took 11,700-12,800 page faults per minibatch, and 13,700 at 2x650
    tied, costing 30-40 ms per minibatch of ~130 (AMD EPYC 2 vCPU VM, MXNet
    1.9.1). With large blocks taken from the heap (mmap threshold 1 GiB), the
    heap never trimmed (trim threshold 2 GiB) and 256 MiB of headroom kept at
    its top (which also keeps the worker threads' heaps from shrinking), every
    process took 0-2 faults per minibatch. Freed memory then stays with the
    process; its peak resident size did not grow (329-339 MB against 314-338
    at 2x200, 738-740 against 719-743 at 2x650). Skipped (``False``) off
    glibc, or when the user has chosen malloc settings through the
    environment (``MALLOC_*_`` or ``GLIBC_TUNABLES``).
    """
    if not _malloc_settings:
        _malloc_settings.append(_set_malloc_options())
    return _malloc_settings[0]


def _set_malloc_options():
    if not sys.platform.startswith("linux") or any(k in os.environ for k in _MALLOC_ENV):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    options = ((_M_MMAP_THRESHOLD, 1 << 30), (_M_TRIM_THRESHOLD, 2**31 - 1),
               (_M_TOP_PAD, 1 << 28))
    return all([mallopt(option, value) == 1 for option, value in options])



def _detach(state):
    return type(state)(s.detach() for s in state)


def run_epoch(lm, batches, carry_state, lr, clipping_theta, should_stop=None, on_batch=None):
    """Train ``lm`` over ``batches`` once; return the mean cross-entropy per token.

    ``lm``: a ``LanguageModel``, or a ``lyricnn.parallel.DataParallel`` of
    one on several devices or workers (each minibatch then split along its
    batch axis, gradients summed, one identical update on every replica).
    With ``carry_state`` (consecutive sampling) the state is made once and
    detached before every minibatch, so no gradient flows into the previous
    one; otherwise (random sampling) it is remade for every minibatch.
    ``should_stop()`` is polled after every minibatch; ``True`` returns ``None``.
    ``on_batch(tokens)`` is called after every minibatch with its number of
    target tokens (progress, tokens/s); it must not synchronise the device.

    The gradient arrays hold the gradient of the minibatch's *summed* loss,
    as Gluon's ``Trainer.step(batch_size)`` expects; the update divides by the
    token count (``clipped_sgd``'s ``grad_scale``).

    The first call makes glibc's malloc keep freed memory (``retain_freed_memory``).
    """
    retain_freed_memory()
    par = lm if isinstance(lm, DataParallel) else DataParallel(lm)
    states = None
    sums, tokens = [[] for _ in par.replicas], 0   # sums[d]: device d's loss sums
    previous_loss = None
    for X, Y in batches:                     # X, Y: (batch, num_steps)
        if previous_loss is not None:
            # MXNet runs operators asynchronously: Python queues this minibatch while the
            # previous one computes. Waiting here for the previous minibatch's loss (the
            # end of its forward pass) bounds that lead to about one minibatch, so that
            # on_batch counts computed tokens and should_stop() is seen within a minibatch.
            # (The samplers' batches reach the device without waiting: batch_to_device.)
            previous_loss.wait_to_read()
        shards = par.split(X, Y)             # one (X_d, Y_d) per device of this worker
        if states is None or not carry_state:
            states = [rep.begin_state(Xd.shape[0]) for rep, (Xd, _) in zip(par.replicas, shards)]
        else:
            states = [_detach(s) for s in states]
        for d, (rep, (Xd, Yd)) in enumerate(zip(par.replicas, shards)):
            with autograd.record():
                logits, states[d] = rep(Xd, states[d])    # (num_steps * rows, V), time-major
            # softmax_cross_entropy's gradient times the whole minibatch's tokens (the
            # update divides; clipped_sgd's grad_scale): the devices' gradients sum to its gradient.
            l, dlogits = _loss_and_unscaled_gradient(logits, Yd.T.reshape((-1,)))
            previous_loss = l
            logits.backward(dlogits)
            if par.serial:
                nd.waitall()
            # Weighted by the shard's tokens: a stream's last chunk may be shorter.
            sums[d].append(l * Yd.size)
            tokens += Yd.size
        par.reduce_gradients()
        par.update(functools.partial(clipped_sgd, grad_scale=1.0 / Y.size),  # all workers' tokens
                   lr, clipping_theta)
        if on_batch is not None:
            on_batch(Y.size)
        if should_stop is not None and should_stop():
            return None
    # One synchronisation per epoch.
    loss_sum = sum(float(nd.concat(*device_sums, dim=0).asnumpy().astype(np.float64).sum())
                   for device_sums in sums)
    loss_sum, tokens = par.total(loss_sum, tokens)
    return loss_sum / tokens


def evaluate_loss(lm, corpus_indices, num_steps):
    """Mean cross-entropy of predicting ``corpus_indices[1:]`` from what precedes them.

    The text is read as one sequence (batch 1) in chunks of ``num_steps`` with
    the state carried across chunks, so every token but the first is scored
    exactly once, however short the held-out text.
    """
    if len(corpus_indices) < 2:
        raise ValueError("a held-out text needs at least 2 tokens")
    corpus = np.asarray(corpus_indices, dtype=np.float32)
    loss = gloss.SoftmaxCrossEntropyLoss()
    state = lm.begin_state(1)
    total = []
    for i in range(0, len(corpus) - 1, num_steps):
        X = nd.array(corpus[None, i:i + num_steps][:, :len(corpus) - 1 - i], ctx=lm.ctx)
        Y = nd.array(corpus[None, i + 1:i + 1 + num_steps], ctx=lm.ctx)
        logits, state = lm(X, state)
        total.append(loss(logits, Y.T.reshape((-1,))).sum())
    return float(nd.add_n(*total).asscalar()) / (len(corpus) - 1)


def mxnet_seed(seed, epoch, rank=0):
    """The MXNet seed in force after ``epoch`` epochs of a run seeded with ``seed``.

    ``rank``: worker ``rank`` of a distributed run (worker 0 is the single
    process's), so that the workers' dropout masks differ. Modulo 2**32: MXNet
    keeps the low 32 bits of a seed, so larger values would alias another
    run's seeds.
    """
    return (seed + epoch + (rank << 20)) % 2**32


def _check_finite(epoch, mean_loss, lr, clipping_theta):
    if not np.isfinite(mean_loss):
        raise TrainingDiverged(
            f"epoch {epoch}: the training loss became {mean_loss}; the model diverged. "
            f"Use a smaller learning rate (lr={lr}) or clip the gradients "
            f"(clipping_theta={clipping_theta}).")


def check_indices(name, indices, vocab_size):
    """``ValueError`` unless every index in ``indices`` lies in ``[0, vocab_size)``."""
    if len(indices) == 0:
        raise ValueError(f"{name} is empty")
    arr = np.asarray(indices)
    low, high = arr.min(), arr.max()
    if low < 0 or high >= vocab_size or not np.all(arr == np.floor(arr)):
        raise ValueError(f"{name} must hold integer indices in [0, vocab_size={vocab_size}), "
                         f"found values in [{low}, {high}]; index the corpus with the same "
                         "vocabulary as the model")


def train_epochs(lm, corpus_indices, is_random_iter, num_steps, batch_size, lr,
                 clipping_theta, epochs, history=None, valid_indices=None, on_epoch_end=None,
                 *, seed=None, should_stop=None, batches=None, evaluate=None, schedule=None,
                 on_batch=None, ctx=None, kvstore=None):
    """Train ``lm`` (a ``LanguageModel``) for each epoch number in ``epochs``.

    ``epochs`` is an iterable of 1-based epoch numbers, e.g. ``range(11, 51)``
    to resume after epoch 10. After each epoch the training (and, with
    ``valid_indices``, held-out) perplexity, the seconds and the learning rate
    are appended to ``history`` and ``on_epoch_end(epoch, history)`` is called.

    ``seed``: reseed MXNet with ``mxnet_seed(seed, epoch)`` after every epoch.
    MXNet cannot save its generator's state, so this is what makes a resumed
    run (Python and NumPy states restored, MXNet reseeded with
    ``mxnet_seed(seed, last_epoch)``) bit-identical to an uninterrupted one.
    ``should_stop()``: polled after every minibatch; ``True`` raises
    ``TrainingInterrupted`` and the partial epoch is not recorded.
    Raises ``TrainingDiverged`` when the training loss is NaN or infinite.

    The word-level trainer (``lyricnn.wordlm.train_word_lm``) replaces three
    parts, keeping the loop: ``batches()`` one epoch's ``(X, Y)`` NDArrays
    (default: the book's ``sampler``), ``evaluate(lm)`` the held-out
    perplexity (default: ``evaluate_loss`` on ``valid_indices``) and
    ``schedule(epoch, history)`` the epoch's learning rate (default ``lr``),
    a function of the history so that a resumed run recomputes it.
    ``on_batch(tokens)``: see ``run_epoch``.

    ``ctx``: several devices (a list, or ``'cpu:0,cpu:1'``; the first is
    ``lm.ctx``) train data-parallel; ``kvstore`` ``'dist_sync'`` adds the
    other worker processes of a ``lyricnn launch`` job (``lyricnn.parallel``).
    Each minibatch's ``batch_size`` rows must split evenly over devices x
    workers. The result equals one device on the whole minibatch; ``lm``
    holds the trained weights, and held-out perplexity is computed on it.
    """
    num_steps, batch_size = check_int("num_steps", num_steps), check_int("batch_size", batch_size)
    par = DataParallel(lm, ctx, kvstore)
    par.check_batch(batch_size)
    history = History() if history is None else history
    done = history.epoch[-1] if history.epoch else 0
    if seed is not None and par.rank > 0:   # its own dropout masks from here on
        mx.random.seed(mxnet_seed(seed, done, par.rank))
    if batches is None:
        check_indices("corpus_indices", corpus_indices, lm.vocab_size)
        sampler = data_iter_random if is_random_iter else data_iter_consecutive

        def batches():
            return sampler(corpus_indices, batch_size, num_steps, lm.ctx)
    if valid_indices is not None and evaluate is None:
        check_indices("valid_indices", valid_indices, lm.vocab_size)

        def evaluate(model):
            return perplexity(evaluate_loss(model, valid_indices, num_steps))
    for epoch in epochs:
        epoch_lr = lr if schedule is None else schedule(epoch, history)
        start = time.time()
        mean_loss = run_epoch(par, batches(), not is_random_iter, epoch_lr, clipping_theta,
                              should_stop, on_batch)
        if mean_loss is None:
            raise TrainingInterrupted(done)
        _check_finite(epoch, mean_loss, epoch_lr, clipping_theta)
        seconds = time.time() - start
        valid = None if evaluate is None else evaluate(lm)
        history.append(epoch, perplexity(mean_loss), seconds, valid, epoch_lr)
        done = epoch
        if seed is not None:
            mx.random.seed(mxnet_seed(seed, epoch, par.rank))
        if on_epoch_end is not None:
            on_epoch_end(epoch, history)
    return history


def annealed_lr(epoch, history, lr, lr_decay=1.0, decay_from=0):
    """The learning rate of ``epoch`` under one of the two standard annealing rules.

    ``decay_from`` N > 0 (Zaremba et al. 2014): ``lr`` for epochs 1..N, then
    divided by ``lr_decay`` every epoch (``lr / lr_decay ** (epoch - N)``).
    ``decay_from`` 0 (word_language_model): divided by ``lr_decay`` after every
    epoch whose held-out perplexity did not improve on the best before it; it
    reads ``history.valid_perplexity``, so a resumed run gets the same rate.
    ``lr_decay`` 1 keeps ``lr``.
    """
    if lr_decay == 1:
        return lr
    if decay_from > 0:
        return lr / lr_decay ** max(epoch - decay_from, 0)
    best, plateaus = float("inf"), 0
    for e, valid in zip(history.epoch, history.valid_perplexity):
        if e >= epoch:
            break
        if valid is None:
            raise ValueError("annealing on a plateau (decay_from=0) needs a held-out "
                             "perplexity every epoch; give a validation split or use "
                             "decay_from > 0")
        if valid < best:
            best = valid
        else:
            plateaus += 1
    return lr / lr_decay ** plateaus


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


def book_logger(lm, pred_period, pred_len, prefixes, idx_to_char, char_to_idx):
    """``on_epoch_end`` printing the book's lines every ``pred_period`` epochs::

        epoch 50, perplexity 69.879726, time 1.67 sec
         - 分开 我想要你想你 ...

    With a held-out set the first line ends in ``, valid perplexity …``.
    """
    def log(epoch, history):
        if epoch % pred_period:
            return
        line = "epoch %d, perplexity %f, time %.2f sec" % (
            epoch, history.perplexity[-1], history.seconds[-1])
        if history.valid_perplexity[-1] is not None:
            line += ", valid perplexity %f" % history.valid_perplexity[-1]
        book_print(line)
        for prefix in prefixes:
            book_print(" -", generate(lm, prefix, pred_len, idx_to_char, char_to_idx))
    return log


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
    (``lyricnn.models.sequence_forward``, ``lyricnn.tracing``).
    ``ctx`` may list several devices and ``kvstore='dist_sync'`` adds worker
    processes (``train_epochs``). Returns the ``History``.
    """
    check_training_args(num_epochs, num_steps, batch_size, lr, clipping_theta, pred_period)
    ctxs = resolve_ctx_list(ctx)
    params = [p if p.context == ctxs[0] else _with_grad(p.copyto(ctxs[0])) for p in get_params()]
    lm = ScratchLM(rnn, params, init_rnn_state, num_hiddens, vocab_size, ctxs[0],
                   sparse_inputs=sparse_inputs, trace=trace)
    return train_epochs(
        lm, corpus_indices, is_random_iter, num_steps, batch_size, lr, clipping_theta,
        range(1, num_epochs + 1), valid_indices=valid_indices,
        on_epoch_end=_worker0_logger(kvstore, lm, pred_period, pred_len, prefixes,
                                     idx_to_char, char_to_idx),
        ctx=ctxs, kvstore=kvstore)


def _worker0_logger(kvstore, *args):
    """The book's log lines, printed by worker 0 only of a distributed run."""
    return book_logger(*args) if worker_info(kvstore)[0] == 0 else None


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
    model.initialize(ctx=ctxs, force_reinit=True, init=init.Normal(0.01))
    # Shapes are inferred on the first call: one step materialises every parameter
    # (on every device) before the replicas read them.
    model(nd.zeros((1, 1), ctx=ctxs[0]), model.begin_state(batch_size=1, ctx=ctxs[0]))
    lm = GluonLM(model, vocab_size, ctxs[0])
    return train_epochs(
        lm, corpus_indices, False, num_steps, batch_size, lr, clipping_theta,
        range(1, num_epochs + 1), valid_indices=valid_indices,
        on_epoch_end=_worker0_logger(kvstore, lm, pred_period, pred_len, prefixes,
                                     idx_to_char, char_to_idx),
        ctx=ctxs, kvstore=kvstore)
