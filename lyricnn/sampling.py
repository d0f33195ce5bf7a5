"""Minibatch samplers over a sequence of token indices (book 6.3.2-6.3.3).

Both yield ``(X, Y)`` NDArrays of shape ``(batch_size, num_steps)`` (float32,
as in the book) on ``ctx``, with ``Y`` the next token of every ``X``.
"""
import random

import numpy as np
from mxnet import nd


def _check_int(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_args(corpus_indices, batch_size, num_steps, consecutive):
    """Validate eagerly, so that bad input fails at the call, not at the first batch."""
    _check_int("batch_size", batch_size)
    _check_int("num_steps", num_steps)
    if consecutive:  # batch_size rows of at least num_steps + 1 tokens
        min_len, sampler = batch_size * (num_steps + 1), "data_iter_consecutive"
    else:  # batch_size windows plus the label of the last one
        min_len, sampler = batch_size * num_steps + 1, "data_iter_random"
    if len(corpus_indices) < min_len:
        raise ValueError(
            f"corpus_indices has {len(corpus_indices)} tokens, but {sampler} with "
            f"batch_size={batch_size} and num_steps={num_steps} needs at least "
            f"{min_len} for one minibatch; use a longer corpus or smaller batch_size/num_steps"
        )


def data_iter_random(corpus_indices, batch_size, num_steps, ctx=None):
    """Random sampling (book 6.3.2).

    The corpus is cut into ``(len - 1) // num_steps`` non-overlapping windows
    starting at multiples of ``num_steps``; each epoch shuffles them with
    Python's ``random`` (so ``random.seed`` reproduces the book's order exactly)
    and yields ``num_windows // batch_size`` batches, every window at most once.
    """
    _check_args(corpus_indices, batch_size, num_steps, consecutive=False)
    return _random_batches(np.asarray(corpus_indices, dtype=np.float32),
                           batch_size, num_steps, ctx)


def _random_batches(corpus, batch_size, num_steps, ctx):
    num_examples = (len(corpus) - 1) // num_steps
    epoch_size = num_examples // batch_size
    example_indices = list(range(num_examples))
    random.shuffle(example_indices)
    offsets = np.arange(num_steps)
    for i in range(epoch_size):
        batch = np.asarray(example_indices[i * batch_size:(i + 1) * batch_size])
        starts = batch[:, None] * num_steps + offsets
        yield nd.array(corpus[starts], ctx=ctx), nd.array(corpus[starts + 1], ctx=ctx)


def data_iter_consecutive(corpus_indices, batch_size, num_steps, ctx=None):
    """Consecutive sampling (book 6.3.3).

    The corpus is split into ``batch_size`` contiguous rows; batch ``i`` holds
    columns ``i*num_steps … (i+1)*num_steps - 1``, so row ``r`` of a batch
    continues row ``r`` of the previous one and the hidden state can be carried.
    """
    _check_args(corpus_indices, batch_size, num_steps, consecutive=True)
    return _consecutive_batches(np.asarray(corpus_indices, dtype=np.float32),
                                batch_size, num_steps, ctx)


def _consecutive_batches(corpus, batch_size, num_steps, ctx):
    batch_len = len(corpus) // batch_size
    rows = corpus[:batch_size * batch_len].reshape((batch_size, batch_len))
    epoch_size = (batch_len - 1) // num_steps
    for i in range(epoch_size):
        i = i * num_steps
        yield (nd.array(rows[:, i:i + num_steps], ctx=ctx),
               nd.array(rows[:, i + 1:i + num_steps + 1], ctx=ctx))
