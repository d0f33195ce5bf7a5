"""Loss/gradient helpers shared by the scratch-cell tests (gated and deep)."""
import numpy as np
from mxnet import autograd
from mxnet.gluon import loss as gloss


def loss_and_grads(forward, X, Y, params, state):
    """Cross-entropy (the training loss) plus a term on every final state tensor.

    Returns ``([logits, *final_state] as NumPy, [parameter gradients as NumPy])``.
    """
    with autograd.record():
        logits, new_state = forward(X, state, params)
        loss = gloss.SoftmaxCrossEntropyLoss()(logits, Y.T.reshape((-1,))).mean()
        for s in new_state:
            loss = loss + (s * s).mean()
    loss.backward()
    return ([logits.asnumpy()] + [s.asnumpy() for s in new_state],
            [p.grad.asnumpy().copy() for p in params])


def check_gradients_numerically(forward, params, state, X, Y, eps=1e-6, rtol=1e-6, atol=None,
                                roundings=2000, kappa=10):
    """Autograd gradients of the cross-entropy + state loss vs central differences (float64).

    ``atol`` (default: derived): the central difference (L(w + e) - L(w - e)) / 2e errs by
    the truncation e^2 |d3L| / 6 (~1e-12 |d3L|: nothing at these sizes) plus the two
    evaluations' rounding, each within ``roundings * u * kappa * |L|`` (u = 2**-53;
    ``roundings`` bounds the roundings on any path of these tiny models, T <= 3, h <= 3,
    V <= 5, float_error.LIBM_ULPS included; ``kappa`` the loss's conditioning: a sum of
    cross-entropies and squares), divided by e: 2.2e-6 |L|. Autograd's own error is
    ~1e-16 |L|. A wrong gradient term is off by the order of the gradient (>= 1e-4,
    asserted).
    """
    def loss():
        logits, new_state = forward(X, state, params)
        l = gloss.SoftmaxCrossEntropyLoss()(logits, Y.T.reshape((-1,))).mean()
        for s in new_state:
            l = l + (s * s).mean()
        return l

    with autograd.record():
        l = loss()
    l.backward()
    if atol is None:
        atol = roundings * 2.0 ** -53 * kappa * abs(l.asscalar()) / eps
    for p in params:
        analytic = p.grad.asnumpy()
        numeric = central_differences(lambda: loss().asscalar(), p, eps)
        np.testing.assert_allclose(analytic, numeric, rtol=rtol, atol=atol)
        assert np.abs(numeric).max() > 1e-4


def central_differences(loss, array, eps):
    """``(loss(a + e) - loss(a - e)) / 2e`` for every entry of the NDArray ``array``
    (shifted in place one entry at a time, restored after), ``loss()`` a float."""
    values = array.asnumpy()
    numeric = np.zeros_like(values)
    for i in np.ndindex(values.shape):
        total = []
        for sign in (1, -1):
            shifted = values.copy()
            shifted[i] += sign * eps
            array[:] = shifted
            total.append(loss())
        numeric[i] = (total[0] - total[1]) / (2 * eps)
    array[:] = values
    return numeric
