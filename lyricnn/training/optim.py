"""The optimizer and the loss: clipped SGD over any ``LanguageModel``'s arrays, and the
softmax cross-entropy with its gradient, computed once."""

from mxnet import nd


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
