"""TODO docstring (training.evaluate, from training.py)."""

import numpy as np
from mxnet import autograd, nd
from mxnet.gluon import loss as gloss

from lyricnn.checks import check_int
from lyricnn.metrics import perplexity
from lyricnn.data.sampling import batch_to_device


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

def _as_indices(indices, vocab_size=None):
    """``indices`` as a 1-D float32 array after checking they are token indices."""
    if isinstance(indices, (str, bytes)) or indices is None:
        raise ValueError(f"indices must be a sequence of token indices, got {indices!r:.60}")
    arr = np.asarray(indices.asnumpy() if hasattr(indices, "asnumpy") else indices)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iuf"):
        raise ValueError(f"indices must be a flat sequence of token indices, got shape "
                         f"{arr.shape} dtype {arr.dtype}")
    if arr.size and (not np.isfinite(arr).all() or (arr != np.round(arr)).any()
                     or arr.min() < 0 or (vocab_size is not None and arr.max() >= vocab_size)):
        raise ValueError(f"indices must be integers in [0, vocab_size={vocab_size}), found "
                         f"values in [{arr.min()}, {arr.max()}]; index the split with the "
                         "model's vocabulary")
    return arr.astype(np.float32)


def stream_batches(indices, batch_size, num_steps):
    """The evaluation batches of a split, as NumPy ``(X, Y)`` pairs ``(batch_size, steps)``.

    The stream is cut into ``batch_size`` equal columns (the tail that does not
    fill a column is dropped, as ``data_iter_consecutive`` does); each column
    is read ``num_steps`` at a time *including* a final shorter chunk, so every
    token of the trimmed stream but the first of each column is a target
    exactly once.
    """
    batch_size, num_steps = check_int("batch_size", batch_size), check_int("num_steps", num_steps)
    corpus = _as_indices(indices)
    batch_len = len(corpus) // batch_size
    if batch_len < 2:
        raise ValueError(f"a split of {len(corpus)} tokens cut into batch_size={batch_size} "
                         f"columns leaves {batch_len} token per column, need at least 2; use a "
                         "smaller batch_size")
    rows = corpus[:batch_size * batch_len].reshape((batch_size, batch_len))
    return _chunks(rows, num_steps)


def _chunks(rows, num_steps):
    batch_len = rows.shape[1]
    for i in range(0, batch_len - 1, num_steps):
        steps = min(num_steps, batch_len - 1 - i)
        yield rows[:, i:i + steps], rows[:, i + 1:i + 1 + steps]


def evaluate_perplexity(lm, indices, batch_size, num_steps):
    """Perplexity of ``lm`` (a ``LanguageModel``) on a whole split, full softmax.

    The batches are ``stream_batches``: the state is carried across chunks, so
    the result does not depend on ``num_steps`` (up to float rounding); the
    ``batch_size * (len // batch_size - 1)`` targets are each scored once and
    ``<unk>`` counts as a token (as the published PTB figures). Dropout is off
    (``autograd.predict_mode``).
    """
    batches = stream_batches(_as_indices(indices, lm.vocab_size), batch_size, num_steps)
    loss = gloss.SoftmaxCrossEntropyLoss()
    sums, count = [], 0
    state = lm.begin_state(batch_size)
    with autograd.predict_mode():
        for X, Y in batches:                             # (batch, steps) each
            logits, state = lm(batch_to_device(X, lm.ctx), state)  # (steps * batch, V)
            # Time-major targets to match the logits' rows.
            sums.append(loss(logits, batch_to_device(Y.T.reshape((-1,)), lm.ctx)).sum())
            count += Y.size
    total = float(nd.concat(*sums, dim=0).asnumpy().astype(np.float64).sum())
    return perplexity(total / count)


# -------------------------------------------------------------------- training

#: Held-out streams are read 10 columns wide, as word_language_model's eval_batch_size.
EVAL_BATCH_SIZE = 10


def word_batches(indices, batch_size, num_steps, ctx):
    """One epoch's training minibatches: ``stream_batches`` as NDArrays on ``ctx``.

    The same consecutive streams as evaluation (truncated BPTT over
    ``batch_size`` columns, offset 0, last chunk shorter), as
    word_language_model and Zaremba et al. train.
    """
    for X, Y in stream_batches(indices, batch_size, num_steps):   # (batch, steps) each
        yield batch_to_device(X, ctx), batch_to_device(Y, ctx)
