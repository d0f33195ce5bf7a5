"""Gradient clipping, perplexity and the training loop (book 6.4.4-6.4.5, 6.5).

One loop, ``train_epochs``, trains any ``lyricnn.models.interface.LanguageModel``;
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
import contextlib
import functools
import time
from dataclasses import asdict, dataclass, field

import mxnet as mx
import numpy as np
from mxnet import nd

from lyricnn.checks import check_indices, check_int
from lyricnn.data.sampling import data_iter_consecutive, data_iter_random
from lyricnn.metrics import perplexity
from lyricnn.training.evaluate import evaluate_perplexity
from lyricnn.training.optim import clipped_sgd
from lyricnn.training.parallel import DataParallel


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


class TrainingInterrupted(RuntimeError):
    """``should_stop()`` asked training to stop; ``epoch`` epochs were completed."""

    def __init__(self, epoch):
        super().__init__(f"training interrupted after epoch {epoch}")
        self.epoch = epoch


class TrainingConverged(RuntimeError):
    """The learning rate reached its floor (``annealed_lr``): training stops early after
    ``epoch`` epochs, as further epochs at that rate would change next to nothing."""

    def __init__(self, epoch, plateaus):
        super().__init__(f"stopped after epoch {epoch}: the validation perplexity did not "
                         f"improve in {plateaus} epochs, and the learning rate, divided at "
                         "each, reached its floor")
        self.epoch, self.plateaus = epoch, plateaus


#: The plateau rule's floor (``decay_from=0``): after this many epochs without
#: improvement the learning rate is ``lr / lr_decay ** MAX_PLATEAUS`` (lr / 1024 at the
#: word level's default decay 4) and the next would go lower: training stops there.
MAX_PLATEAUS = 5


@dataclass
class History:
    """Per-epoch record: ``epoch[i]`` had training ``perplexity[i]``, held-out
    ``valid_perplexity[i]`` (``None`` without a held-out set), took ``seconds[i]``
    and trained at learning rate ``lr[i]``; ``averaged[i]`` updates were averaged in the
    weights it validated (NT-ASGD, ``lyricnn.training.averaging``; 0: the SGD iterate)."""

    epoch: list = field(default_factory=list)
    perplexity: list = field(default_factory=list)
    seconds: list = field(default_factory=list)
    valid_perplexity: list = field(default_factory=list)
    lr: list = field(default_factory=list)
    averaged: list = field(default_factory=list)

    def append(self, epoch, perplexity, seconds, valid_perplexity=None, lr=None, averaged=0):
        self.epoch.append(epoch)
        self.perplexity.append(perplexity)
        self.seconds.append(seconds)
        self.valid_perplexity.append(valid_perplexity)
        self.lr.append(lr)
        self.averaged.append(averaged)

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, data):
        data = {k: list(v) for k, v in data.items()}
        data.setdefault("lr", [None] * len(data.get("epoch", ())))  # before lr was recorded
        data.setdefault("averaged", [0] * len(data.get("epoch", ())))  # before NT-ASGD
        return cls(**data)

    def __repr__(self):
        if not self.epoch:
            return "History(empty)"
        return (f"History({len(self.epoch)} epochs, last perplexity "
                f"{self.perplexity[-1]:.4f}, {np.mean(self.seconds):.3f} s/epoch)")


def detach_state(state):
    """``state`` (a tuple or list of NDArrays) cut from its autograd history."""
    return type(state)(s.detach() for s in state)


def run_epoch(lm, batches, carry_state, lr, clipping_theta, should_stop=None, on_batch=None,
              after_update=None):
    """Train ``lm`` over ``batches`` once; return the mean cross-entropy per token.

    ``lm``: a ``LanguageModel``, or a ``lyricnn.training.parallel.DataParallel`` of
    one on several devices or workers (each minibatch then split along its
    batch axis, gradients summed, one identical update on every replica).
    With ``carry_state`` (consecutive sampling) the state is made once and
    detached before every minibatch, so no gradient flows into the previous
    one; otherwise (random sampling) it is remade for every minibatch.
    ``should_stop()`` is polled after every minibatch; ``True`` returns ``None``.
    ``on_batch(tokens)`` is called after every minibatch with its number of
    target tokens (progress, tokens/s); it must not synchronise the device.
    ``after_update()`` is called after every update (NT-ASGD's running mean).

    The gradient arrays hold the gradient of the minibatch's *summed* loss,
    as Gluon's ``Trainer.step(batch_size)`` expects; the update divides by the
    token count (``clipped_sgd``'s ``grad_scale``).
    """
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
            states = [detach_state(s) for s in states]
        for d, (rep, (Xd, Yd)) in enumerate(zip(par.replicas, shards)):
            # The gradient of the shard's *summed* loss (the update divides by the whole
            # minibatch's tokens, clipped_sgd's grad_scale): the devices' gradients add up.
            l, states[d] = rep.train_step(Xd, Yd, states[d])
            previous_loss = l
            if par.serial:
                nd.waitall()
            # Weighted by the shard's tokens: a stream's last chunk may be shorter.
            sums[d].append(l * Yd.size)
            tokens += Yd.size
        par.reduce_gradients()
        par.update(functools.partial(clipped_sgd, grad_scale=1.0 / Y.size),  # all workers' tokens
                   lr, clipping_theta)
        if after_update is not None:
            after_update()
        if on_batch is not None:
            on_batch(Y.size)
        if should_stop is not None and should_stop():
            return None
    # One synchronisation per epoch.
    loss_sum = sum(float(nd.concat(*device_sums, dim=0).asnumpy().astype(np.float64).sum())
                   for device_sums in sums)
    loss_sum, tokens = par.total(loss_sum, tokens)
    return loss_sum / tokens


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


def train_epochs(lm, corpus_indices, is_random_iter, num_steps, batch_size, lr,
                 clipping_theta, epochs, history=None, valid_indices=None, on_epoch_end=None,
                 *, seed=None, should_stop=None, batches=None, evaluate=None, schedule=None,
                 on_batch=None, ctx=None, kvstore=None, averaging=None):
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

    The word-level trainer (``lyricnn.run.task.train_word_lm``) replaces three
    parts, keeping the loop: ``batches()`` one epoch's ``(X, Y)`` NDArrays
    (default: the book's ``sampler``), ``evaluate(lm)`` the held-out
    perplexity (default: ``evaluate_perplexity`` of ``valid_indices`` as one stream) and
    ``schedule(epoch, history)`` the epoch's learning rate (default ``lr``),
    a function of the history so that a resumed run recomputes it.
    ``on_batch(tokens)``: see ``run_epoch``.

    ``ctx``: several devices (a list, or ``'cpu:0,cpu:1'``; the first is
    ``lm.ctx``) train data-parallel; ``kvstore`` ``'dist_sync'`` adds the
    other worker processes of a ``lyricnn launch`` job (``lyricnn.training.parallel``).
    Each minibatch's ``batch_size`` rows must split evenly over devices x
    workers. The result equals one device on the whole minibatch; ``lm``
    holds the trained weights, and held-out perplexity is computed on it.

    ``averaging``: a ``lyricnn.training.averaging.Averaging`` (NT-ASGD). Once it is
    active every update adds to its mean, and the held-out perplexity and
    ``on_epoch_end`` (which saves) see the mean in ``lm``'s weights; the next
    epoch trains on the SGD iterate again.
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
            return evaluate_perplexity(model, valid_indices, 1, num_steps)
    for epoch in epochs:
        epoch_lr = lr if schedule is None else schedule(epoch, history)
        start = time.time()
        average = None if averaging is None or not averaging.active else \
            functools.partial(averaging.add, lm.weights())
        mean_loss = run_epoch(par, batches(), not is_random_iter, epoch_lr, clipping_theta,
                              should_stop, on_batch, average)
        if mean_loss is None:
            raise TrainingInterrupted(done)
        _check_finite(epoch, mean_loss, epoch_lr, clipping_theta)
        seconds = time.time() - start
        with contextlib.nullcontext() if averaging is None else \
                averaging.applied(lm):
            valid = None if evaluate is None else evaluate(lm)
            history.append(epoch, perplexity(mean_loss), seconds, valid, epoch_lr,
                           0 if averaging is None else averaging.count)
            done = epoch
            if seed is not None:
                mx.random.seed(mxnet_seed(seed, epoch, par.rank))
            if averaging is not None:
                averaging.after_epoch(history)
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
    Its floor: once ``MAX_PLATEAUS`` epochs have not improved, the next one raises
    ``TrainingConverged`` instead of dividing further. ``lr_decay`` 1 keeps ``lr``.
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
    if plateaus > MAX_PLATEAUS:
        raise TrainingConverged(epoch - 1, plateaus)
    return lr / lr_decay ** plateaus
