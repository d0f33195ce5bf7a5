"""The optimizer and the loss: clipped SGD over any ``LanguageModel``'s arrays, and the
softmax cross-entropy with its gradient, computed once."""

from mxnet import nd

from lyricnn.checks import check_number


def clipped_sgd(weights, grads, lr, theta, grad_scale=1.0):
    """``w -= lr * min(1, theta / ||g||) * g`` for every array, ``||g||`` the global norm.

    The book's ``grad_clipping`` followed by ``sgd(params, lr, 1)``. The
    clipping factor stays on the device (no host round-trip) and the
    gradients are left unscaled. ``theta=None`` disables clipping.

    ``grad_scale``: the gradients are ``grad_scale * grads``. The training loop
    leaves the loss gradient's ``1 / tokens`` to this scalar instead of
    multiplying every logit's gradient by it (that would be one more pass over
    ``tokens x V`` floats, a visible part of a word LM's step; measured:
    docs/RESULTS.md, "Design measurements"). Equal to scaling first, to float
    rounding.
    """
    check_number("lr", lr, 0, low_open=True)        # a few microseconds per minibatch
    if theta is not None:
        check_number("theta", theta, 0, low_open=True, hint="None disables clipping")
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
    loop; the dots are vectorised. On whole training steps they were faster
    for the 2x200 word LM and level for the tied 2x650 one (measured:
    docs/RESULTS.md, "Design measurements").
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
    updates ``C`` in place when ``out`` is ``C``. On the 2x200 word LM's 11
    arrays this beats both ``preloaded_multi_sgd_update`` and one ``sgd_update``
    per array, and comes close to a bare ``elemwise_sub`` (measured:
    docs/RESULTS.md, "Design measurements").
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
    slow native kernel. On the 2x200 word LM (400 x 10,000 logits) that
    backward (``_backward_log_softmax``) was most of ``log_softmax``'s forward
    + backward time; ``log_softmax`` + ``softmax`` forward + the in-place ``-1``
    and ``/ N`` here take a fraction of it (measured: docs/RESULTS.md,
    "Design measurements").
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
    Python): ``probs[rows, labels] = probs[rows, labels] + value`` is several
    times slower per call at (400, 10,000), a noticeable part of a training
    step (measured: docs/RESULTS.md, "Design measurements"). MXNet has no
    public in-place scatter.
    ``tests/test_training.py`` checks it against NumPy.
    """
    rows = nd.arange(probs.shape[0], ctx=probs.context, dtype=labels.dtype)
    index = nd.stack(rows, labels)                         # (2, N): (row, column) pairs
    nd._internal._scatter_set_nd(probs, nd.gather_nd(probs, index) + value, index,
                                 shape=probs.shape, out=probs)
