"""Data parallelism: one model trained on several devices, and in several processes.

``DataParallel`` holds one replica of a ``LanguageModel`` per device. Every
minibatch is cut along its batch axis: with ``W`` worker processes and ``D``
devices each, worker ``r``'s device ``d`` gets rows
``[(r * D + d) * B / (W * D), (r * D + d + 1) * B / (W * D))`` of the
``(B, num_steps)`` minibatch, and keeps the recurrent state of exactly those
rows (consecutive sampling carries it, so rows never move between devices).
Each device's loss gradient is divided by the whole minibatch's token count,
so the *sum* of the devices' gradients is the single-device gradient of the
whole minibatch. An MXNet KVStore sums them (``push`` then ``pull`` into the
gradient arrays themselves): ``'local'`` across the devices of one process,
``'dist_sync'`` across processes too (MXNet's parameter server, started by
``lyricnn launch``). Then every replica clips on the global norm of that same
sum and updates itself: the same arithmetic on the same numbers everywhere,
so the replicas never drift apart and equal one device on the whole batch
(to float rounding: the sum is taken in another order).

No optimizer runs on the KVStore (it only sums) because clipping needs the
norm of the *whole* summed gradient, which no per-key server updater sees.

One device and one process is the same code with one replica and no KVStore.
Dropout draws its masks per device from MXNet's one generator, so a model
with dropout trains the same in distribution, not bit for bit, on several
devices.
"""
import os
import weakref

import mxnet as mx
from mxnet import nd

from lyricnn.checks import check_choice
from lyricnn.context import resolve_ctx_list

#: KVStore types lyricnn trains with ('device' sums on the first device, 'local' on the CPU).
KVSTORES = ("local", "device", "dist_sync")

# MXNet allows one distributed KVStore per process (a second one would register
# with the scheduler as one more worker), so it is created once and shared.
_dist_stores = {}
# The next free key of each KVStore: several DataParallel (e.g. a test training
# two models in one worker) share a process's one distributed store.
_next_key = weakref.WeakKeyDictionary()


def kvstore(name):
    """The KVStore called ``name`` (one of ``KVSTORES``).

    A ``dist_*`` store is made once per process and reused: every
    ``DataParallel`` of the process takes its keys from the same store.
    Creating it blocks until the scheduler, the servers and every worker of
    the job have started (``lyricnn launch`` runs them).
    """
    check_choice("kvstore", name, KVSTORES, hint="dist_sync needs lyricnn launch")
    if not name.startswith("dist"):
        return mx.kv.create(name)
    if "DMLC_ROLE" not in os.environ:
        raise ValueError(f"kvstore {name!r} joins a distributed job, but this process has no "
                         "DMLC_* environment: run it under lyricnn launch (or set the DMLC_* "
                         "variables of each process by hand, see the README)")
    if name not in _dist_stores:
        _dist_stores[name] = mx.kv.create(name)
    return _dist_stores[name]


def in_distributed_job():
    """Whether this process has joined a distributed KVStore job."""
    return bool(_dist_stores)


def worker_info(kv):
    """``(rank, num_workers)`` of this process for ``kv`` (a name from ``KVSTORES``, an
    ``mx.kv.KVStore`` or ``None``): ``(0, 1)`` unless it is distributed."""
    if kv is None or isinstance(kv, str) and not kv.startswith("dist"):
        return 0, 1
    kv = kvstore(kv) if isinstance(kv, str) else kv
    return kv.rank, kv.num_workers


def barrier(kv):
    """Wait until every worker of ``kv`` reaches this point.

    A distributed KVStore's ``init`` is collective (it returns on every worker
    once all have called it), so initialising a fresh key is a barrier built on
    the public API only.
    """
    key = _next_key.get(kv, 0)
    _next_key[kv] = key + 1
    kv.init(key, nd.zeros((1,)))


def check_divisible(batch_size, parts, devices, workers, name="batch_size"):
    """``ValueError`` unless ``batch_size`` rows split evenly into ``parts`` shards;
    ``name``: the parameter as the caller knows it (the CLI's ``--batch-size``)."""
    if batch_size % parts:
        raise ValueError(f"{name} {batch_size} cannot be split evenly over {devices} "
                         f"device(s) x {workers} worker(s) = {parts} shards; use a multiple "
                         f"of {parts}, e.g. {max(parts, batch_size // parts * parts)}")


class DataParallel:
    """``lm``'s replicas on the devices ``ctx`` (default: ``lm.ctx``), summed through ``kv``.

    ``ctx``: a context, a list of them, or a string such as ``'cpu:0,cpu:1'``
    (``lyricnn.context.resolve_ctx_list``); ``lm`` must live on the first.
    ``kv``: ``None`` (default: ``'local'`` for several devices, nothing for
    one), a name from ``KVSTORES``, or an ``mx.kv.KVStore``. ``replicas[0]``
    is ``lm`` itself, so after training ``lm`` holds the trained weights.
    With ``'dist_sync'`` every worker's weights are first replaced by worker
    0's, so all workers start from the same weights; every worker must still
    draw the same minibatches (the same seed for the random sampler: the CLI
    gives every worker the same ``--seed``) and have as many devices (checked).
    Each worker reads the whole minibatch's indices and keeps its own rows.
    """

    def __init__(self, lm, ctx=None, kv=None):
        ctxs = [lm.ctx] if ctx is None else resolve_ctx_list(ctx)
        if ctxs[0] != lm.ctx:
            raise ValueError(f"the model lives on {lm.ctx} but ctx starts with {ctxs[0]}; "
                             "build the model on the first device of ctx")
        if kv is None and len(ctxs) > 1:
            kv = "local"
        self.kv = kvstore(kv) if isinstance(kv, str) else kv
        self.rank, self.num_workers = worker_info(self.kv)
        self.ctxs = ctxs
        self.replicas = lm.replicate(ctxs)
        self.parts = len(ctxs) * self.num_workers
        # Several CPU "devices" step one after the other (see ``update``).
        self.serial = len(ctxs) > 1 and ctxs[0].device_type == "cpu"
        self._keys = None
        if self.kv is not None:
            self._init_keys()
        if self.num_workers > 1:
            devices = self.total(len(ctxs), 0)[0]
            if devices != len(ctxs) * self.num_workers:
                raise ValueError(f"the {self.num_workers} workers have {devices:g} devices in "
                                 f"all, this one {len(ctxs)}: give every worker the same number "
                                 "of devices (--ctx)")

    def _init_keys(self):
        """Register one key per weight (and one for the loss) with the store."""
        weights = self.replicas[0].weights()
        first = _next_key.get(self.kv, 0)
        self._keys = list(range(first, first + len(weights)))
        self._loss_key = first + len(weights)
        _next_key[self.kv] = self._loss_key + 1
        self.kv.init(self._keys, weights)
        self.kv.init(self._loss_key, nd.zeros((2,), ctx=self.ctxs[0], dtype="float64"))
        if self.num_workers > 1:
            # init stores worker 0's values; pulling them makes every worker start identical.
            self.kv.pull(self._keys, out=[[rep.weights()[i] for rep in self.replicas]
                                          for i in range(len(weights))])
        elif len(self.replicas) > 1:
            self.broadcast()

    @property
    def lm(self):
        return self.replicas[0]

    def broadcast(self):
        """Copy replica 0's weights to the others (after loading a checkpoint into it)."""
        for rep in self.replicas[1:]:
            for src, dst in zip(self.lm.weights(), rep.weights()):
                src.copyto(dst)

    def check_batch(self, batch_size):
        check_divisible(batch_size, self.parts, len(self.ctxs), self.num_workers)

    def split(self, X, Y):
        """``(X, Y)`` ``(B, num_steps)`` -> this worker's ``[(X_d, Y_d)]``, one per device."""
        if self.parts == 1:
            return [(X, Y)]
        rows = X.shape[0] // self.parts
        shards = []
        for d, ctx in enumerate(self.ctxs):
            begin = (self.rank * len(self.ctxs) + d) * rows
            shards.append(tuple(nd.slice_axis(A, axis=0, begin=begin, end=begin + rows)
                                .as_in_context(ctx) for A in (X, Y)))
        return shards

    def reduce_gradients(self):
        """Replace every replica's gradients by their sum over all devices and workers."""
        if self.kv is None:
            return
        grads = [rep.gradients() for rep in self.replicas]
        per_key = [list(g) for g in zip(*grads)]        # per_key[i][d]: weight i on device d
        self.kv.push(self._keys, per_key)
        self.kv.pull(self._keys, out=per_key)

    def update(self, optimizer, lr, clipping_theta):
        """``optimizer(weights, gradients, lr, clipping_theta)`` on every replica.

        Several *CPU* replicas update one after the other: MXNet runs each
        device's operators on its own engine thread, and two of these updates
        at once hung MXNet 1.9.1 with 100 % CPU for minutes (the book's Gluon RNN at 256 hidden units on
        cpu:0,cpu:1; not at 200). CPU "devices" share the same cores, so
        nothing is lost; GPUs keep updating concurrently. ``run_epoch`` also
        waits after each CPU device's backward pass (``serial``): the hang's
        cause inside MXNet is not known, so no two CPU devices compute at once.
        """
        for rep in self.replicas:
            optimizer(rep.weights(), rep.gradients(), lr, clipping_theta)
            if self.serial:
                nd.waitall()

    def total(self, loss_sum, tokens):
        """``(loss_sum, tokens)`` summed over the workers (host floats)."""
        if self.num_workers == 1:
            return loss_sum, tokens
        value = nd.array([loss_sum, tokens], ctx=self.ctxs[0], dtype="float64")
        self.kv.push(self._loss_key, value)
        self.kv.pull(self._loss_key, out=value)
        loss_sum, tokens = value.asnumpy().tolist()
        return loss_sum, tokens
