"""Held-out evaluation: the one evaluator of every model, character or word level.

A split is read as ``batch_size`` consecutive streams (``lyricnn.data.sampling.streams``,
the last chunk shorter) with the state carried across chunks, so every token
but the first of each stream is scored exactly once and the result does not
depend on ``num_steps`` (up to float rounding). Full softmax; ``<unk>`` counts
as a token (as the published Penn Treebank figures); dropout off.
Characters are read as one stream, words as ``EVAL_BATCH_SIZE``
(``lyricnn.run.task``).
"""
import numpy as np
from mxnet import autograd, nd
from mxnet.gluon import loss as gloss

from lyricnn.checks import check_indices, check_int
from lyricnn.data.sampling import streams
from lyricnn.metrics import perplexity

#: Word-level held-out streams are read 10 wide, as word_language_model's eval_batch_size.
EVAL_BATCH_SIZE = 10


def evaluate_loss(lm, corpus_indices, num_steps, batch_size=1):
    """Mean cross-entropy of ``lm`` (a ``LanguageModel``) on the held-out ``corpus_indices``.

    ``batch_size`` 1 (the default) reads the text as one sequence: every token
    but the first is predicted from all that precedes it, however short the text.
    """
    batch_size, num_steps = check_int("batch_size", batch_size), check_int("num_steps", num_steps)
    corpus = check_indices("corpus_indices", corpus_indices, lm.vocab_size)
    if len(corpus) < 2:
        raise ValueError("a held-out text needs at least 2 tokens")
    loss = gloss.SoftmaxCrossEntropyLoss()
    sums, count = [], 0
    state = lm.begin_state(batch_size)
    with autograd.predict_mode():
        for X, Y in streams(corpus, batch_size, num_steps, lm.ctx):   # (batch, steps) each
            if sums:
                # MXNet runs operators asynchronously, so without a wait Python queues the
                # whole split ahead of the engine, and the queued minibatches' arrays pile
                # up: a 2 x 450 tied model with an adaptive softmax peaked at 4.3 GiB on
                # Penn Treebank's validation split, 0.7 GiB with this wait (measured:
                # docs/RESULTS.md). One minibatch ahead, as the training loop.
                sums[-1].wait_to_read()
            logits, state = lm(X, state)                               # (steps * batch, V)
            sums.append(loss(logits, Y.T.reshape((-1,))).sum())        # time-major targets
            count += Y.size
    # One synchronisation; the sum in float64.
    return float(nd.concat(*sums, dim=0).asnumpy().astype(np.float64).sum()) / count


def evaluate_perplexity(lm, indices, batch_size, num_steps):
    """Perplexity of ``lm`` on a whole split: ``perplexity(evaluate_loss(...))``."""
    return perplexity(evaluate_loss(lm, indices, num_steps, batch_size))
