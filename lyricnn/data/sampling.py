"""Minibatch samplers over a sequence of token indices (book 6.3.2-6.3.3).

Both yield ``(X, Y)`` NDArrays of shape ``(batch_size, num_steps)`` (float32,
as in the book) on ``ctx``, with ``Y`` the next token of every ``X``.  ``ctx``:
``None`` (MXNet's current context), an ``mx.Context``, or ``'cpu'``/``'gpu'``.
"""
import random

import mxnet as mx
import numpy as np
from mxnet import nd

from lyricnn.checks import check_indices, check_int
from lyricnn.context import resolve_ctx


def batch_to_device(values, ctx=None):
    """NumPy ``values`` as a float32 NDArray on ``ctx`` (``None``: MXNet's current
    context), without waiting for the operators already queued.

    ``nd.array`` copies through ``SyncCopyFromCPU``, which waits until every
    operator queued before it has run: one per minibatch made each training
    step wait for the previous one to finish before Python could queue the
    next. ``nd.from_numpy`` wraps the NumPy buffer instead (zero-copy; MXNet
    holds a reference to it), and another device gets an asynchronous copy.
    (Copying a whole epoch at once also avoids the wait. It first measured
    slower per minibatch of the book's scratch RNN, because ``nd.array`` of a
    large array copied with OpenMP on the Python thread and so slowed every
    later operator; since ``import lyricnn`` keeps such copies single-threaded
    it runs as fast: benchmarks/bench_batch_copies.py; measured:
    docs/RESULTS.md, "Design measurements". Per-batch copies stay: they hold
    no corpus-sized array.)
    """
    # A private copy (a few KB): MXNet keeps the buffer and marks it read-only.
    array = nd.from_numpy(np.array(values, dtype=np.float32, order="C"), zero_copy=True)
    ctx = mx.context.current_context() if ctx is None else ctx
    return array if ctx == array.context else array.as_in_context(ctx)


def _check_args(corpus_indices, batch_size, num_steps, ctx, consecutive):
    """Validate eagerly, so that bad input fails at the call, not at the first batch.

    Returns ``(corpus, batch_size, num_steps, ctx)`` normalised: float32 array,
    two ints, and ``None`` or an ``mx.Context``.
    """
    batch_size = check_int("batch_size", batch_size)
    num_steps = check_int("num_steps", num_steps)
    # None stays None (MXNet's current context at each batch, as in the book);
    # 'cpu'/'gpu' become contexts; anything else is a ValueError naming ctx.
    ctx = None if ctx is None else resolve_ctx(ctx)
    corpus = check_indices("corpus_indices", corpus_indices)
    if consecutive:  # batch_size rows of at least num_steps + 1 tokens
        min_len, sampler = batch_size * (num_steps + 1), "data_iter_consecutive"
    else:  # batch_size windows plus the label of the last one
        min_len, sampler = batch_size * num_steps + 1, "data_iter_random"
    if len(corpus) < min_len:
        raise ValueError(
            f"corpus_indices has {len(corpus)} tokens, but {sampler} with "
            f"batch_size={batch_size} and num_steps={num_steps} needs at least "
            f"{min_len} for one minibatch; use a longer corpus or smaller batch_size/num_steps"
        )
    return corpus, batch_size, num_steps, ctx


def data_iter_random(corpus_indices, batch_size, num_steps, ctx=None):
    """Random sampling (book 6.3.2).

    The corpus is cut into ``(len - 1) // num_steps`` non-overlapping windows
    starting at multiples of ``num_steps``; each epoch shuffles them with
    Python's ``random`` (so ``random.seed`` reproduces the book's order exactly)
    and yields ``num_windows // batch_size`` batches, every window at most once.
    """
    args = _check_args(corpus_indices, batch_size, num_steps, ctx, consecutive=False)
    return _random_batches(*args)


def _random_batches(corpus, batch_size, num_steps, ctx):
    num_examples = (len(corpus) - 1) // num_steps
    epoch_size = num_examples // batch_size
    example_indices = list(range(num_examples))
    random.shuffle(example_indices)
    offsets = np.arange(num_steps)
    for i in range(epoch_size):
        batch = np.asarray(example_indices[i * batch_size:(i + 1) * batch_size])
        starts = batch[:, None] * num_steps + offsets
        yield batch_to_device(corpus[starts], ctx), batch_to_device(corpus[starts + 1], ctx)


def data_iter_consecutive(corpus_indices, batch_size, num_steps, ctx=None):
    """Consecutive sampling (book 6.3.3).

    The corpus is split into ``batch_size`` contiguous rows; batch ``i`` holds
    columns ``i*num_steps … (i+1)*num_steps - 1``, so row ``r`` of a batch
    continues row ``r`` of the previous one and the hidden state can be carried.
    As the book, only whole chunks of ``num_steps``: ``streams(..., last=False)``.
    """
    corpus, batch_size, num_steps, ctx = _check_args(corpus_indices, batch_size, num_steps,
                                                     ctx, consecutive=True)
    return _streams(corpus, batch_size, num_steps, ctx, last=False)


def streams(indices, batch_size, num_steps, ctx=None, last=True):
    """The corpus as ``batch_size`` consecutive streams, ``num_steps`` at a time.

    The one stream batcher: the book's consecutive sampler (``last=False``:
    whole chunks only), word-level training and every held-out evaluation
    (``last=True``: a final shorter chunk too, so every token of the trimmed
    streams but the first of each is a target exactly once). The tail that
    does not fill a stream is dropped. Yields ``(X, Y)`` NDArrays
    ``(batch_size, steps)`` on ``ctx``.
    """
    batch_size, num_steps = check_int("batch_size", batch_size), check_int("num_steps", num_steps)
    corpus = check_indices("indices", indices)
    if len(corpus) // batch_size < 2:
        raise ValueError(f"a split of {len(corpus)} tokens cut into batch_size={batch_size} "
                         f"streams leaves {len(corpus) // batch_size} token per stream, need at "
                         "least 2; use a smaller batch_size")
    return _streams(corpus, batch_size, num_steps, None if ctx is None else resolve_ctx(ctx),
                    last)


def _streams(corpus, batch_size, num_steps, ctx, last):
    batch_len = len(corpus) // batch_size
    rows = corpus[:batch_size * batch_len].reshape((batch_size, batch_len))  # (batch, len)
    end = batch_len - 1 if last else (batch_len - 1) // num_steps * num_steps
    for i in range(0, end, num_steps):
        steps = min(num_steps, batch_len - 1 - i)
        yield (batch_to_device(rows[:, i:i + steps], ctx),
               batch_to_device(rows[:, i + 1:i + 1 + steps], ctx))
