"""Dynamic evaluation (Krause et al. 2018, "Dynamic Evaluation of Neural Sequence Models").

A held-out text is read once, in order, as one stream of ``num_steps``-token
segments. Each segment is scored first, with the weights as they are, and only
then does the model take one gradient step on that segment's loss, so every
token is predicted from the text before it and never from itself: a model that
keeps learning as it reads, as a reader of a long document does. Krause et
al.'s rule ("RMS with an RMS global prior"), for each weight array ``w``::

    w <- w + pull * (w0 - w) - lr / (rms + epsilon) * g

``g``: the gradient of the segment's mean cross-entropy (dropout off, no
training penalty: ``LanguageModel.adapt_step``); ``w0``: the trained weights;
``rms``: the root mean square of ``g`` over training segments
(``gradient_statistics``); ``pull = decay * rms / mean(rms)``, at most 1:
weights that move much in training are pulled back harder. After the text the
trained weights are restored: the model and its checkpoint are unchanged.

It is an evaluation protocol, not a property of the weights: the figures it
gives are reported beside the static ones, never in their place (docs/RESULTS.md).
Settings: Krause et al.'s ``dynamiceval.py`` reads 5-token segments with lr
5e-5 and decay 0.002, and takes statistics on minibatches of 100 streams of the
whole training text. Here a segment costs a forward and backward of the model
and a pass over every weight, mostly fixed costs (a 20-token segment costs
little more than a 5-token one: benchmarks/bench_dynamic.py), so the defaults
read 20-token segments, a few times faster per token. At 20 tokens, lr 5e-5 to
1e-4 and decay 0.002 to 0.02 gave nearly the same perplexity on the first
validation tokens (examples/dynamic_eval.py's grid), and 10-token segments bought
nothing on the test split for much more time (the figures: docs/RESULTS.md,
issue 23's "Dynamic evaluation" paragraphs). Statistics come from
``STATS_BATCHES`` minibatches (150,000 training tokens). Tune on the validation
split, never on the test split.
"""
import numpy as np
from mxnet import nd

from lyricnn.checks import check_indices, check_int, check_number
from lyricnn.data.sampling import streams
from lyricnn.metrics import perplexity
from lyricnn.training.loop import detach_state

#: Learning rate, decay and segment length: this project's, from the validation grid of
#: examples/dynamic_eval.py (docs/RESULTS.md); epsilon: Krause et al.'s. (Their lr 5e-5
#: and decay 0.002 are for 5-token segments and PyTorch's parameter arrays; the decay's
#: normalisation, a mean over arrays, differs with the arrays: here one flat vector per
#: recurrent layer.)
LR, DECAY, EPSILON, NUM_STEPS = 7e-5, 0.008, 2e-5, 20
#: Gradient statistics: minibatches of 100 streams of 5 tokens (Krause et al.), this many.
STATS_BATCH_SIZE, STATS_NUM_STEPS, STATS_BATCHES = 100, 5, 300
#: Every this many segments, a non-finite loss ends the evaluation (``inf``: diverged).
CHECK_EVERY = 100


def check_settings(lr, decay, epsilon=EPSILON):
    """``(lr, decay, epsilon)`` checked, each bad value a ``ValueError`` naming it."""
    lr = check_number("lr", lr, 0, 1, hint=f"the default is {LR:g}; 0 evaluates statically")
    decay = check_number("decay", decay, 0, 1, hint=f"the default is {DECAY:g}; 0 never pulls "
                                                    "the weights back")
    epsilon = check_number("epsilon", epsilon, 0, 1, low_open=True,
                           hint=f"the default is {EPSILON:g} (Krause et al.'s)")
    return lr, decay, epsilon


def gradient_statistics(lm, train_indices, max_batches=STATS_BATCHES,
                        batch_size=STATS_BATCH_SIZE, num_steps=STATS_NUM_STEPS):
    """Per weight array of ``lm.weights()``: the root mean square, over training segments,
    of the gradient of a segment minibatch's mean cross-entropy (``rms`` in the module
    docstring): ``train_indices`` read as ``batch_size`` streams of ``num_steps`` tokens,
    the first ``max_batches`` minibatches (``None``: all of them, as Krause et al.)."""
    batch_size, num_steps = check_int("batch_size", batch_size), check_int("num_steps", num_steps)
    if max_batches is not None:
        max_batches = check_int("max_batches", max_batches)
    corpus = check_indices("train_indices", train_indices, lm.vocab_size)
    weights, grads = lm.weights(), lm.gradients()
    squares = [nd.zeros_like(w) for w in weights]
    state, batches = None, 0
    for X, Y in streams(corpus, batch_size, num_steps, lm.ctx, last=False):
        if batches == max_batches:
            break
        for g in grads:
            g[:] = 0       # a weight the segment does not reach has a zero gradient
        state = lm.begin_state(X.shape[0]) if state is None else detach_state(state)
        _, state = lm.adapt_step(X, Y, state)
        for sq, g in zip(squares, grads):
            sq += nd.square(g / Y.size)      # adapt_step: the gradient of the *summed* loss
        # MXNet runs asynchronously: without a wait Python queues every minibatch ahead
        # of the engine with its activations (peak RSS 5.3 GiB for 300 minibatches at
        # 2 x 450; the whole process 1.0 GiB with the wait, docs/RESULTS.md). One at a time.
        squares[-1].wait_to_read()
        batches += 1
    if not batches:
        raise ValueError(f"the training text ({len(corpus)} tokens) is too short for one "
                         f"minibatch of {batch_size} x {num_steps}")
    return [nd.sqrt(sq / batches) for sq in squares]


def dynamic_evaluate_loss(lm, indices, rms, lr=LR, decay=DECAY, epsilon=EPSILON,
                          num_steps=NUM_STEPS):
    """Mean cross-entropy of ``lm`` on ``indices`` under dynamic evaluation (the module
    docstring), ``rms`` from ``gradient_statistics``. The weights are restored after,
    also when it fails. ``lr=0`` is static evaluation of one stream read ``num_steps``
    at a time (``lyricnn.training.evaluate.evaluate_loss(lm, indices, num_steps)``).
    ``inf`` if the adapted model diverges (a non-finite loss, checked every
    ``CHECK_EVERY`` segments)."""
    lr, decay, epsilon = check_settings(lr, decay, epsilon)
    num_steps = check_int("num_steps", num_steps)
    corpus = check_indices("indices", indices, lm.vocab_size)
    if len(corpus) < 2:
        raise ValueError("a held-out text needs at least 2 tokens")
    weights, grads = lm.weights(), lm.gradients()
    if len(rms) != len(weights) or any(r.shape != w.shape for r, w in zip(rms, weights)):
        raise ValueError("rms does not match the model's weights: compute it with "
                         "gradient_statistics(lm, ...) of this model")
    # Krause et al.: each array's pull is decay * rms / (the mean over arrays of each
    # array's mean rms), at most 1 (a larger one would overshoot w0).
    mean_rms = float(np.mean([r.mean().asscalar() for r in rms]))
    pulls = [nd.minimum(decay * r / mean_rms, nd.ones_like(r)) if mean_rms > 0
             else nd.zeros_like(r) for r in rms]
    # The rule as w <- keep * w + pull * w0 - step * g, in place: the step is bound by
    # memory traffic over every weight (8.2 M of them at 2 x 450), and allocating each
    # term's array made it 59 ms a segment instead of 45 (benchmarks/bench_dynamic.py).
    keeps = [1 - pull for pull in pulls]
    anchors = [pull * w for pull, w in zip(pulls, weights)]       # pull * w0
    steps = [lr / (r + epsilon) for r in rms]
    originals = [w.copy() for w in weights]
    for g in grads:
        g[:] = 0
    sums, count, state = [], 0, lm.begin_state(1)
    try:
        for X, Y in streams(corpus, 1, num_steps, lm.ctx):     # (1, steps) each
            state = detach_state(state)
            loss, state = lm.adapt_step(X, Y, state)   # scored before the step it drives
            sums.append(loss * Y.size)
            count += Y.size
            if decay:
                for w, keep, anchor in zip(weights, keeps, anchors):
                    w *= keep
                    w += anchor
            if lr:
                for w, g, step in zip(weights, grads, steps):
                    g *= 1.0 / Y.size                  # the summed loss's -> the mean's
                    nd.elemwise_mul(g, step, out=g)
                    w -= g
                    # Defensive, one write pass: g now holds this step, and a model whose
                    # backward left some gradient unwritten would apply it again. (Every
                    # backward here writes all of them: 'write' gradients, and the
                    # adaptive softmax zeroes the clusters no target reached.)
                    g[:] = 0
            if len(sums) % CHECK_EVERY == 0 and not np.isfinite(loss.asscalar()):
                return float("inf")       # diverged: no use reading the rest of the text
            # One segment ahead at most, as evaluate_loss: the queue stays bounded.
            sums[-1].wait_to_read()
    finally:
        for w, w0 in zip(weights, originals):
            w[:] = w0
    return float(nd.concat(*sums, dim=0).asnumpy().astype(np.float64).sum()) / count


def dynamic_evaluate_perplexity(lm, indices, rms, lr=LR, decay=DECAY, epsilon=EPSILON,
                                num_steps=NUM_STEPS):
    """``perplexity(dynamic_evaluate_loss(...))``."""
    return perplexity(dynamic_evaluate_loss(lm, indices, rms, lr, decay, epsilon, num_steps))
