"""lyricnn.models.adaptive: the adaptive softmax (Grave et al. 2017).

Everything is compared in float64 with tolerances from the rounding-error bound of
``_rounding_bound`` (the notation of tests/float_error.py and docs/TOLERANCES.md).
"""
import math

import numpy as np
import pytest
from mxnet import autograd, gluon, init, nd
from mxnet.gluon import nn

from lyricnn.models.adaptive import AdaptiveSoftmax

from float_error import LIBM_ULPS, U64, gamma
from gradcheck import central_differences

SETTINGS = [  # (vocab_size, in_units, cutoffs, div_value)
    (13, 6, (1,), 2.0),            # a one-word head
    (13, 6, (4,), 4.0),
    (13, 6, (3, 7), 2.0),
    (13, 6, (1, 2, 12), 1.5),      # one-word clusters
    (13, 6, (12,), 1.0),           # a one-word tail, no reduction
]


# ------------------------------------------------------------------- helpers

def _order(vocab_size, seed=1):
    return np.random.default_rng(seed).permutation(vocab_size)


def make(vocab_size, in_units, cutoffs, div_value=2.0, order=None, tied=False, seed=0,
         scale=1.0):
    """A float64 block whose every parameter (the tied embedding too) is drawn from
    N(0, scale^2): nonzero biases, and distributions far from uniform, so a missing term
    or a transposed weight shows."""
    emb = nn.Embedding(vocab_size, in_units) if tied else None
    block = AdaptiveSoftmax(vocab_size, in_units, cutoffs, div_value, order=order,
                            tied=emb.weight if tied else None)
    block.initialize(init.Uniform(0.1))
    block.cast("float64")
    rng = np.random.default_rng(seed)
    for p in block.collect_params().values():
        p.set_data(nd.array(rng.normal(0, scale, p.shape), dtype="float64"))
    return block


def _h(n, in_units, seed=2):
    return nd.array(np.random.default_rng(seed).normal(size=(n, in_units)), dtype="float64")


def _np(param):
    return param.data().asnumpy()


def _log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def reference(block, h, order=None, absolute=False):
    """The two-level factorisation by hand, in NumPy from the block's parameter values:
    ``log p (N, V)`` in the vocabulary's order. With ``absolute``: the largest logit of
    the absolute evaluation (every weight, bias and ``h`` replaced by its absolute value),
    which bounds the logits' rounding errors."""
    V, c = block.vocab_size, block.cutoffs
    c1, k = c[0], len(c)
    f = np.abs if absolute else (lambda a: a)
    h = f(h.asnumpy())
    words = np.arange(V) if order is None else np.asarray(order)   # words[rank] = index
    bounds = list(c) + [V]
    if block.tied is None:
        W_head, b_head = f(_np(block.head.weight)), f(_np(block.head.bias))
        outs = [(f(_np(getattr(block, f"tail{i}_out").weight)),
                 f(_np(getattr(block, f"tail{i}_out").bias))) for i in range(1, k + 1)]
    else:
        E = f(_np(block.tied))
        W_head = np.concatenate([E[words[:c1]], f(_np(block.head_weight))])
        b_head = f(_np(block.head_bias))
        outs = [(E[words[bounds[i - 1]:bounds[i]]], f(_np(getattr(block, f"tail{i}_bias"))))
                for i in range(1, k + 1)]
    head = h @ W_head.T + b_head                                  # (N, c1 + k)
    tails = [(h @ f(_np(getattr(block, f"tail{i}_proj").weight)).T) @ W.T + b
             for i, (W, b) in enumerate(outs, 1)]                 # (N, n_i)
    if absolute:
        return max(np.abs(z).max() for z in [head] + tails)
    p_head = np.exp(_log_softmax(head))
    p_rank = np.empty((h.shape[0], V))
    p_rank[:, :c1] = p_head[:, :c1]
    for i, z in enumerate(tails):
        # p(w) = p(cluster i) * p(w | cluster i)
        p_rank[:, bounds[i]:bounds[i + 1]] = p_head[:, [c1 + i]] * np.exp(_log_softmax(z))
    p = np.empty_like(p_rank)
    p[:, words] = p_rank
    return np.log(p)


def _rounding_bound(block, h, order=None):
    """``(A, B)``: every float64 log-probability of ``log_prob`` or ``loss_sum``, and of
    ``reference``, is within ``A + B |log p|`` of the exact value.

    * Logits: a head logit sums ``d`` products and a bias (``d + 1`` roundings); a tail
      logit the ``d_i`` products of ``W_i`` with ``P_i h`` (``d`` roundings each) and a
      bias: ``2d + 1`` at most. Each is within ``gamma(2d + 1) L`` of the exact one, ``L``
      the largest logit of the absolute evaluation (``reference(absolute=True)``).
    * A log-softmax is 2-Lipschitz in the max norm, and there are two levels (head,
      cluster): ``4 gamma(2d + 1) L``.
    * Each level's own rounding, ``x - max - log(sum exp(x - max))``: the sum of ``n <= V``
      exps, each within ``LIBM_ULPS`` roundings, is within ``gamma(V + LIBM_ULPS)``
      relatively, hence absolutely after the log; the log's own ``LIBM_ULPS`` and two
      subtractions on magnitudes ``<= |log p_level| + 2 log V`` (``|x - max| <= |log
      p_level| + log n``). Two levels (and the sum of the two, whose magnitude is
      ``|log p|``: both are <= 0): with ``m = V + 2 LIBM_ULPS + 3``,
      ``2 gamma(m) (1 + 2 log V) + gamma(m) |log p|``.
    * NumPy's route (``exp``, ``sum``, a division, a product, ``log``) meets the same
      bound (fewer roundings).
    """
    d, V = block.in_units, block.vocab_size
    m = V + 2 * LIBM_ULPS + 3
    L = reference(block, h, order, absolute=True)
    A = 4 * gamma(2 * d + 1, U64) * L + 2 * gamma(m, U64) * (1 + 2 * math.log(V))
    B = gamma(m, U64) + U64
    return A, B


def _cluster_of(block, targets, order=None):
    """0 for the head, i for tail cluster i, per target (original indices)."""
    ranks = np.asarray(targets) if order is None else np.argsort(order)[np.asarray(targets)]
    return np.searchsorted(block.cutoffs, ranks, side="right")


# ------------------------------------------------------------------- a distribution

@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
@pytest.mark.parametrize("ordered", [False, True], ids=["identity", "order"])
@pytest.mark.parametrize("V, d, cutoffs, div", SETTINGS)
def test_probabilities_sum_to_one(V, d, cutoffs, div, ordered, tied):
    order = _order(V) if ordered else None
    block = make(V, d, cutoffs, div, order=order, tied=tied)
    h = _h(9, d)
    logp = block.log_prob(h)
    assert logp.shape == (9, V) and logp.dtype == np.float64
    p = np.exp(logp.asnumpy())
    # Each p_j is within a relative A + B |log p_j| (1 + tiny) (see _rounding_bound), so
    # the sum within A + B H, H <= log V the entropy (sum p |log p| = H); NumPy's exp
    # and sum of V terms add gamma(V + 2).
    A, B = _rounding_bound(block, h, order)
    bound = 1.01 * (A + B * math.log(V)) + gamma(V + 2, U64)
    assert bound < 1e-11
    np.testing.assert_array_less(np.abs(p.sum(axis=1) - 1), bound)
    # Not vacuous: leaving out any cluster (or the head) would miss far more than that.
    ranks = np.argsort(order) if ordered else np.arange(V)
    for lo, hi in [(0, cutoffs[0])] + block.clusters:
        assert p[:, (ranks >= lo) & (ranks < hi)].sum(axis=1).max() > 1e6 * bound


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
@pytest.mark.parametrize("ordered", [False, True], ids=["identity", "order"])
def test_log_prob_is_the_two_level_factorisation_by_hand(ordered, tied):
    """V = 7, cutoffs (3, 5): p(w) = softmax(head)[w] for the 3 head words,
    softmax(head)[3 + i - 1] * softmax(tail_i(h))[w - c_i] for the clusters {3, 4}, {5, 6}
    (ranks), computed in NumPy from the block's parameters, in the vocabulary's order."""
    V, d, order = 7, 5, (_order(7) if ordered else None)
    block = make(V, d, (3, 5), div_value=2.0, order=order, tied=tied)
    # The widths the rule gives: untied 5 // 2 = 2 and 5 // 4 = 1; tied, square.
    widths = [(d, d), (d, d)] if tied else [(2, d), (1, d)]
    assert [block.tail1_proj.weight.shape, block.tail2_proj.weight.shape] == widths
    h = _h(6, d)
    want = reference(block, h, order)
    A, B = _rounding_bound(block, h, order)
    got = block.log_prob(h).asnumpy()
    # Both routes within A + B |log p| of the exact value.
    np.testing.assert_array_less(np.abs(got - want), 2 * (A + B * np.abs(want)) * 1.01)
    assert np.ptp(want, axis=1).min() > 1.0   # far from uniform: a wrong weight shows


# ------------------------------------------------------------------- the loss

LOSS_BATCHES = {  # targets (original indices) for V = 11, cutoffs (3, 6, 9), no order
    "every cluster": [0, 10, 4, 7, 2, 9, 5, 1, 8, 3],
    "no target in two clusters": [0, 1, 4, 2, 5, 3, 3],
    "all in the head": [0, 1, 2, 2, 1],
    "all in one tail cluster": [9, 10, 10],
    "one row": [7],
}


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
@pytest.mark.parametrize("ordered", [False, True], ids=["identity", "order"])
@pytest.mark.parametrize("batch", list(LOSS_BATCHES))
def test_loss_sum_is_the_summed_log_prob_of_the_targets(batch, ordered, tied):
    V, d, cutoffs = 11, 4, (3, 6, 9)
    order = _order(V) if ordered else None
    block = make(V, d, cutoffs, 2.0, order=order, tied=tied)
    targets = np.array(LOSS_BATCHES[batch])
    n = len(targets)
    h = _h(n, d)
    # Which rows each tail projection sees: only those whose target is in its cluster.
    seen = {}

    def record(i):
        return lambda blk, inputs, outputs: seen.setdefault(i, []).append(inputs[0].asnumpy())

    for i in range(1, len(cutoffs) + 1):
        getattr(block, f"tail{i}_proj").register_forward_hook(record(i))
    loss = block.loss_sum(h, nd.array(targets))
    assert loss.shape == (1,) and loss.dtype == np.float64
    clusters = _cluster_of(block, targets, order)
    for i in range(1, len(cutoffs) + 1):
        rows = np.flatnonzero(clusters == i)
        if rows.size:
            assert len(seen[i]) == 1
            np.testing.assert_array_equal(seen[i][0], h.asnumpy()[rows])
        else:
            assert i not in seen
    logp = block.log_prob(h).asnumpy()[np.arange(n), targets]
    # Each term of either side within A + B |log p| (_rounding_bound); the sums of
    # n terms and k + 1 partial sums (all of one sign) gamma(n + k + 2) each.
    A, B = _rounding_bound(block, h, order)
    bound = 2 * (n * A + B * np.abs(logp).sum()) + 2 * gamma(n + 5, U64) * np.abs(logp).sum()
    assert abs(loss.asscalar() - (-logp.sum())) <= bound * 1.01


def test_the_block_called_is_loss_sum():
    block = make(11, 4, (3, 6, 9))
    h, t = _h(4, 4), nd.array([0, 5, 10, 7])
    assert block(h, t).asscalar() == block.loss_sum(h, t).asscalar()


def _fd_bound(block, h, targets, eps, order=None):
    """Autograd against central differences (L(x + eps) - L(x - eps)) / 2 eps, entrywise.

    * Rounding: each evaluation of L = sum of n terms is within
      ``dL = n A + B |L| + gamma(n + 5) |L|`` (_rounding_bound); the difference of two
      over ``2 eps``: ``dL / eps``. Autograd's own rounding is of the order of the
      gradient's ``gamma(m)``: negligible beside it.
    * Truncation: ``eps^2 / 6 |L'''|``. Along any one coordinate (a weight, a bias, an
      embedding entry or an entry of h) every logit is affine (the tail logits
      ``W_i (P_i h)`` are linear in each factor), with a slope ``<= S``. A log-softmax of
      affine logits has a third derivative within ``(2 S)^3`` (the third central moment
      of the slopes under the softmax's distribution), and each of the n tokens has two
      levels: ``|L'''| <= 2 n (2 S)^3``. ``S`` bounds every slope: a weight's is an entry
      of h or of ``P_i h``; a projection entry's ``|W_i| |h|``; an entry of h's a row of
      ``W_head`` or ``W_i P_i``.
    """
    A, B = _rounding_bound(block, h, order)
    n = len(targets)
    L = abs(block.loss_sum(h, nd.array(targets)).asscalar())
    dL = n * A + B * L + gamma(n + 5, U64) * L
    d = block.in_units
    M = max(np.abs(p.data().asnumpy()).max() for p in block.collect_params().values())
    H = np.abs(h.asnumpy()).max()
    S = max(1.0, H, d * M * H, M * H, M, d * M * M)
    return dL / eps + eps ** 2 / 6 * 2 * n * (2 * S) ** 3


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
def test_gradients_match_central_differences(tied):
    V, d, cutoffs, order = 7, 3, (3, 5), _order(7)
    block = make(V, d, cutoffs, 2.0, order=order, tied=tied, scale=0.5)
    h = _h(6, d)
    ranks = np.array([0, 3, 5, 2, 4, 6])                    # every cluster, every level
    targets = np.asarray(order)[ranks]
    params = list(block.collect_params().values())
    if tied:
        assert block.tied in params
    for p in params:
        p.zero_grad()
    h.attach_grad()
    with autograd.record():
        loss = block.loss_sum(h, nd.array(targets))
    loss.backward()
    eps = 1e-6
    atol = _fd_bound(block, h, targets, eps, order)
    assert atol < 1e-4

    def loss_at():
        return block.loss_sum(h, nd.array(targets)).asscalar()

    arrays = [(p.name, p.data(), p.grad().asnumpy()) for p in params] + [("h", h, h.grad.asnumpy())]
    for name, array, analytic in arrays:
        numeric = central_differences(loss_at, array, eps)
        np.testing.assert_allclose(analytic, numeric, rtol=0, atol=atol, err_msg=name)
        # Not vacuous: every array has gradients far above the tolerance.
        assert np.abs(numeric).max() > 100 * atol, name


# ------------------------------------------------------------------- the fast training path

def _gradient_bound(block, h, order=None):
    """Every float64 gradient entry of ``loss_sum(...).backward()`` and of
    ``loss_and_gradients`` is within this of the exact gradient (so the two within twice
    it).

    * Each gradient entry sums, over the ``N`` rows and the classes of a level, products
      of ``(p - y)`` (the level's probabilities minus its one-hot target) with at most two
      factors that are entries of ``h``, of a weight or of ``P_i h``: ``dW_i = g^T z``
      (``|z| <= d M H``), ``dP_i = (g W_i)^T h`` (``M H``), ``dh = g W_head`` or
      ``g W_i P_i`` (``M``, ``d M^2``), ``db = sum g`` (1), ``M`` the largest weight and
      ``H`` the largest entry of ``h``: each product is within ``S = d max(1, M, H)^3``.
      ``sum |p - y| <= 2`` per row and level, so the sum of the terms' magnitudes is at
      most ``2 N S`` (two levels: ``4 N S``).
    * The probabilities: each route's (``exp`` of ``log_softmax`` inside its backward, or
      ``softmax``) is within a relative ``eps_p = 1.01 (A + B (2L + log V))`` of the exact
      one: ``A + B |log p|`` bounds a log-probability's error (``_rounding_bound``, for
      two levels, more than one), ``|log p| <= 2 L + log V`` with ``L`` the largest logit
      of the absolute evaluation, and ``e^x - 1 <= 1.01 x`` for ``x < 0.01``.
    * The products and sums on the longest path of a term: the classes of a level
      (``<= V``), the rows (``<= N``), the projection's width (``<= d``), the sum of the
      head's and the tails' parts of ``dh`` and the ``-1``: ``gamma(N + V + d + 4)``.
    """
    d, V, N = block.in_units, block.vocab_size, h.shape[0]
    A, B = _rounding_bound(block, h, order)
    L = reference(block, h, order, absolute=True)
    eps_p = 1.01 * (A + B * (2 * L + math.log(V)))
    M = max(np.abs(p.data().asnumpy()).max() for p in block.collect_params().values())
    H = np.abs(h.asnumpy()).max()
    S = d * max(1.0, M, H) ** 3
    return (eps_p + gamma(N + V + d + 4, U64)) * 4 * N * S * 1.01


def _autograd_gradients(block, h, targets):
    """``loss_sum``'s loss and every parameter's gradient (and h's), through autograd."""
    params = list(block.collect_params().values())
    for p in params:
        p.zero_grad()
    h.attach_grad()
    with autograd.record():
        loss = block.loss_sum(h, nd.array(targets))
    loss.backward()
    return loss.asscalar(), {p.name: p.grad().asnumpy().copy() for p in params}, \
        h.grad.asnumpy().copy()


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
@pytest.mark.parametrize("ordered", [False, True], ids=["identity", "order"])
@pytest.mark.parametrize("batch", list(LOSS_BATCHES))
def test_loss_and_gradients_equal_loss_sums_autograd(batch, ordered, tied):
    """The fast path gives loss_sum's loss and, on every parameter (the tied embedding
    too) and on h, its gradient, to rounding; the parameters' gradients are written
    (not added to stale values), zeros for a cluster without targets."""
    V, d, cutoffs = 11, 4, (3, 6, 9)
    order = _order(V) if ordered else None
    block = make(V, d, cutoffs, 2.0, order=order, tied=tied)
    words = np.arange(V) if order is None else np.asarray(order)
    targets = words[np.array(LOSS_BATCHES[batch])]      # the batch's ranks, as indices
    n = len(targets)
    h = _h(n, d)
    want_loss, want, want_h = _autograd_gradients(block, h, targets)
    params = list(block.collect_params().values())
    for p in params:
        p.grad()[:] = 7.0                                # stale values, to be overwritten
    h.attach_grad()
    loss = block.loss_and_backward(h, nd.array(targets))
    assert loss.shape == (1,) and loss.dtype == np.float64

    logp = block.log_prob(h).asnumpy()[np.arange(n), targets]
    A, B = _rounding_bound(block, h, order)
    # As test_loss_sum_is_the_summed_log_prob_of_the_targets: each route within
    # n A + B sum |log p| + gamma(n + k + 2) sum |log p| of the exact sum.
    loss_bound = 2 * (n * A + B * np.abs(logp).sum()) + 2 * gamma(n + 5, U64) * np.abs(logp).sum()
    assert abs(loss.asscalar() - want_loss) <= loss_bound * 1.01
    tol = _gradient_bound(block, h, order)
    assert tol < 1e-8                                   # far below the gradients (below)
    for p in params:
        np.testing.assert_allclose(p.grad().asnumpy(), want[p.name], rtol=0, atol=tol,
                                   err_msg=p.name)
    np.testing.assert_allclose(h.grad.asnumpy(), want_h, rtol=0, atol=tol, err_msg="h")
    # Not vacuous: the parameters of every level that has targets get gradients far above
    # the tolerance; the others exact zeros.
    clusters = set(_cluster_of(block, targets, order).tolist())
    for p in params:
        got = np.abs(p.grad().asnumpy()).max()
        name = p.name[len(block.prefix):]
        level = int(name[4]) if name.startswith("tail") else 0
        # The head (level 0) is paid by every row.
        assert (got > 1e6 * tol) if (level == 0 or level in clusters or p is block.tied) \
            else got == 0, name
    assert np.abs(want_h).max() > 1e6 * tol


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
def test_loss_and_backward_adds_to_add_gradients(tied):
    """With grad_req 'add', the fast path accumulates as autograd does."""
    block = make(11, 4, (3, 6, 9), 2.0, tied=tied)
    h, targets = _h(6, 4), nd.array([0, 10, 4, 7, 2, 9])
    block.collect_params().setattr("grad_req", "add")
    h.attach_grad(grad_req="add")
    for p in block.collect_params().values():
        p.zero_grad()
    block.loss_and_backward(h, targets)
    once = {p.name: p.grad().asnumpy().copy() for p in block.collect_params().values()}
    h_once = h.grad.asnumpy().copy()
    block.loss_and_backward(h, targets)
    for p in block.collect_params().values():
        # x + x == 2 x exactly
        np.testing.assert_array_equal(p.grad().asnumpy(), 2 * once[p.name], err_msg=p.name)
        assert np.abs(once[p.name]).max() > 0, p.name
    np.testing.assert_array_equal(h.grad.asnumpy(), 2 * h_once)


def _float64_tied_lm(net, seed):
    """``net`` (a ``_TiedLM`` of 11 words) in float64 with every parameter drawn from
    N(0, 1), and a lookup's inputs and targets: ``(net, x, targets)``."""
    net.initialize(init.Uniform(0.1))
    net.cast("float64")
    rng = np.random.default_rng(seed)
    for p in net.collect_params().values():
        p.set_data(nd.array(rng.normal(0, 1, p.shape), dtype="float64"))
    x = nd.array([1, 5, 5, 9, 0, 2, 7, 10], dtype="float64")
    targets = nd.array([0, 4, 8, 2, 10, 5, 1, 7])
    return net, x, targets


def test_loss_and_gradients_compose_with_the_callers_graph():
    """As WordLM.train_step uses it: inside the caller's autograd.record(), h from an
    embedding lookup of the tied embedding and a penalty term, one autograd.backward over
    the returned heads and the caller's own: the same gradients as loss_sum's (the tied
    embedding's two uses adding up), to rounding (_gradient_bound, h's gradient
    reaching the lookup's rows unchanged but for sums of a few of them)."""
    V, d = 11, 4
    net, x, targets = _float64_tied_lm(_TiedLM(V, d, (3, 6)), seed=3)

    def grads(fast):
        with autograd.record():
            h = net.embedding(x) * 1.5
            penalty = nd.sum(h * h).reshape((1,))
            if fast:
                loss, heads, head_grads = net.out.loss_and_gradients(h, targets)
            else:
                loss = net.out.loss_sum(h, targets)
                total = loss + penalty
        if fast:
            autograd.backward(heads + [penalty], head_grads + [nd.ones_like(penalty)])
        else:
            total.backward()
        return loss.asscalar(), {p.name: p.grad().asnumpy().copy()
                                 for p in net.collect_params().values()}

    want_loss, want = grads(False)
    got_loss, got = grads(True)
    h = net.embedding(x) * 1.5
    tol = _gradient_bound(net.out, h) * 2 * (1 + 2 * 1.5 * 3)  # up to 2 rows, penalty 2 h
    assert tol < 1e-5
    assert abs(got_loss - want_loss) <= tol
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=0, atol=tol, err_msg=name)
        assert np.abs(want[name]).max() > 1e4 * tol, name


@pytest.mark.parametrize("ordered", [False, True], ids=["identity", "order"])
def test_write_tied_writes_the_embeddings_gradient_for_its_lookup_to_add_to(ordered):
    """As WordLM uses it: the embedding's grad_req 'add', write_tied=True, the returned
    heads (without the embedding) backward after. The embedding's gradient is the sum of
    its two uses, as loss_sum's through autograd, stale values overwritten, and the same
    at a second call (nothing accumulates across steps)."""
    V, d = 11, 4
    net, x, targets = _float64_tied_lm(
        _TiedLM(V, d, (3, 6), order=_order(V) if ordered else None), seed=5)
    emb = net.embedding.weight
    with autograd.record():
        loss = net.out.loss_sum(net.embedding(x) * 1.5, targets)
    loss.backward()
    want = {p.name: p.grad().asnumpy().copy() for p in net.collect_params().values()}
    emb.grad_req = "add"
    for step in range(2):
        emb.grad()[:] = 7.0                               # stale: must be overwritten
        with autograd.record():
            h = net.embedding(x) * 1.5
            _, heads, head_grads = net.out.loss_and_gradients(h, targets, write_tied=True)
        assert all(head is not emb.data() for head in heads)
        autograd.backward(heads, head_grads)
        tol = _gradient_bound(net.out, h) * 2 * (1 + 1.5)     # up to 2 rows through * 1.5
        assert tol < 1e-5
        for p in net.collect_params().values():
            np.testing.assert_allclose(p.grad().asnumpy(), want[p.name], rtol=0, atol=tol,
                                       err_msg=f"{p.name}, step {step}")
    # Not vacuous: both uses reach the embedding (a looked-up word's row differs from what
    # the decoder alone gives it).
    assert np.abs(want[emb.name]).max() > 1e4 * tol


@pytest.mark.parametrize("tied, grad_req, message", [
    (False, "write", "an untied block"),
    (True, "write", "grad_req 'write'"),
    (True, "null", "grad_req 'null'"),
])
def test_write_tied_needs_a_tied_embedding_that_adds(tied, grad_req, message):
    block = make(11, 4, (3, 6), tied=tied)
    if tied:
        block.tied.grad_req = grad_req
    with pytest.raises(ValueError, match=message):
        block.loss_and_gradients(_h(3, 4), nd.array([0, 4, 9]), write_tied=True)
    with pytest.raises(ValueError, match="write_tied"):
        block.loss_and_gradients(_h(3, 4), nd.array([0, 4, 9]), write_tied="yes")


# ------------------------------------------------------------------- tied weights

class _TiedLM(gluon.Block):
    def __init__(self, V, d, cutoffs, order=None, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.embedding = nn.Embedding(V, d)
            self.out = AdaptiveSoftmax(V, d, cutoffs, order=order,
                                       tied=self.embedding.weight)


def test_tied_weights_are_the_embeddings_own_parameter():
    V, d = 11, 4
    net = _TiedLM(V, d, (3, 6))
    net.initialize(init.Uniform(0.1))
    emb = net.embedding.weight
    assert net.out.tied is emb
    params = list(net.collect_params().values())
    assert sum(p is emb for p in params) == 1 and len(params) == len({id(p) for p in params})
    # The model's initialisation reaches every parameter: U(-0.1, 0.1), biases zero.
    for p in params:
        values = p.data().asnumpy()
        if p.name.endswith("bias"):
            assert (values == 0).all(), p.name
        else:
            assert np.abs(values).max() <= 0.1 and np.abs(values).min() > 0, p.name
    # Saved once, under the embedding's name.
    assert [k for k in net._collect_params_with_prefix() if "embedding" in k or "tied" in k] \
        == ["embedding.weight"]
    # The word vectors are the embedding's rows: changing them changes the distribution.
    h = nd.random.normal(shape=(3, d))
    before = net.out.log_prob(h).asnumpy()
    emb.set_data(emb.data() * 3)
    assert np.abs(net.out.log_prob(h).asnumpy() - before).max() > 1e-3


def test_tied_embedding_gets_the_adaptive_softmaxs_gradient_added_to_its_own():
    """The loss's gradient reaches the embedding: alone, every row gets some (each row
    is a head word or a word of a cluster with a target); beside an embedding lookup,
    the two add up (exactly: each entry is one or two nonzero terms, a + b == b + a)."""
    V, d = 11, 4
    net = _TiedLM(V, d, (3, 6))
    net.initialize(init.Uniform(0.1))
    emb = net.embedding.weight
    h = nd.random.normal(shape=(5, d))
    targets = nd.array([0, 4, 8, 2, 10])
    x, c = nd.array([1, 5, 5, 9]), nd.random.normal(shape=(4, d))

    def grad(use_softmax, use_lookup):
        with autograd.record():
            loss = nd.zeros((1,))
            if use_softmax:
                loss = loss + net.out.loss_sum(h, targets)
            if use_lookup:
                loss = loss + nd.sum(net.embedding(x) * c)
        loss.backward()
        return emb.grad().asnumpy().copy()

    g_softmax, g_lookup, g_both = grad(True, False), grad(False, True), grad(True, True)
    assert (np.abs(g_softmax).sum(axis=1) > 0).all()
    np.testing.assert_array_equal(g_both, g_softmax + g_lookup)


# ------------------------------------------------------------------- shapes

def test_projection_widths_follow_div_value_and_tying():
    def widths(**kwargs):
        block = AdaptiveSoftmax(10000, 650, (2000, 6000), **kwargs)
        return block.tail_units, [getattr(block, f"tail{i}_proj").weight.shape for i in (1, 2)]
    assert widths() == ([162, 40], [(162, 650), (40, 650)])     # 650 // 4, 650 // 16
    assert widths(div_value=1) == ([650, 650], [(650, 650), (650, 650)])
    assert widths(div_value=1000.0)[0] == [1, 1]                 # never zero units
    emb = nn.Embedding(10000, 650)
    assert widths(tied=emb.weight)[0] == [650, 650]              # tied: square
    untied = AdaptiveSoftmax(10000, 650, (2000, 6000))
    assert untied.head.weight.shape == (2002, 650)
    assert untied.tail1_out.weight.shape == (4000, 162) and untied.tail2_out.bias.shape == (4000,)
    tied = AdaptiveSoftmax(10000, 650, (2000, 6000), tied=emb.weight)
    assert tied.head_weight.shape == (2, 650) and tied.head_bias.shape == (2002,)
    assert tied.tail2_bias.shape == (4000,)


# ------------------------------------------------------------------- bad arguments

_EMB = nn.Embedding(10, 4)
_WIDE = nn.Embedding(10, 5)

BAD = [  # (kwargs replacing vocab_size=10, in_units=4, the parameter the message must name)
    (dict(vocab_size=1, cutoffs=(1,)), "vocab_size"),
    (dict(vocab_size=10.0, cutoffs=(3,)), "vocab_size"),
    (dict(in_units=0, cutoffs=(3,)), "in_units"),
    (dict(in_units=4.0, cutoffs=(3,)), "in_units"),
    (dict(cutoffs=()), "cutoffs"),
    (dict(cutoffs=[]), "cutoffs"),
    (dict(cutoffs=(3, 3)), "cutoffs"),
    (dict(cutoffs=(5, 2)), "cutoffs"),
    (dict(cutoffs=(0, 5)), "cutoffs"),
    (dict(cutoffs=(3, 10)), "cutoffs"),
    (dict(cutoffs=(3, 12)), "cutoffs"),
    (dict(cutoffs=(2.0, 5)), "cutoffs"),
    (dict(cutoffs=(True, 5)), "cutoffs"),
    (dict(cutoffs="35"), "cutoffs"),
    (dict(cutoffs=3), "cutoffs"),
    (dict(cutoffs=(3,), div_value=0.5), "div_value"),
    (dict(cutoffs=(3,), div_value=0), "div_value"),
    (dict(cutoffs=(3,), div_value=float("nan")), "div_value"),
    (dict(cutoffs=(3,), div_value=True), "div_value"),
    (dict(cutoffs=(3,), div_value="4"), "div_value"),
    (dict(cutoffs=(3,), order=[0, 1, 2, 3, 4, 5, 6, 7, 8, 8]), "order"),
    (dict(cutoffs=(3,), order=list(range(9))), "order"),
    (dict(cutoffs=(3,), order=list(range(1, 11))), "order"),
    (dict(cutoffs=(3,), order=np.arange(10.0)), "order"),
    (dict(cutoffs=(3,), order=np.arange(10).reshape(2, 5)), "order"),
    (dict(cutoffs=(3,), order=5), "order"),
    (dict(cutoffs=(3,), tied=_WIDE.weight), "tied"),
    (dict(cutoffs=(3,), tied=_EMB.weight.shape), "tied"),
    (dict(cutoffs=(3,), tied=nd.zeros((10, 4))), "tied"),
]


@pytest.mark.parametrize("kwargs, name", BAD, ids=[f"{n}={v!r:.30}" for kw, n in BAD
                                                   for v in [kw.get(n)]])
def test_bad_arguments_name_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name}") as info:
        AdaptiveSoftmax(**{"vocab_size": 10, "in_units": 4, **kwargs})
    message = str(info.value)
    assert "\n" not in message and "got" in message


def test_cutoffs_message_shows_the_value_and_a_fix():
    with pytest.raises(ValueError, match=r"cutoffs must be strictly increasing and below "
                                         r"vocab_size=10000, got \(2000, 1000\); e.g. "
                                         r"\(2000, 6000\)"):
        AdaptiveSoftmax(10000, 650, (2000, 1000))
    with pytest.raises(ValueError, match=r"cutoffs\[1\] must be an integer between 1 and 9999, "
                                         r"got 10000; in cutoffs=\(2000, 10000\): .*e\.g\. "
                                         r"\(2000, 6000\)"):
        AdaptiveSoftmax(10000, 650, (2000, 10000))


def test_good_arguments_of_other_types_are_accepted():
    block = AdaptiveSoftmax(np.int64(10), 4, np.array([3, 6]), div_value=2,
                            order=nd.array(np.arange(10)[::-1].copy(), dtype="int64"),
                            tied=_EMB.weight)
    assert block.cutoffs == (3, 6) and block.clusters == [(3, 6), (6, 10)]


def test_bad_inputs_name_the_argument():
    block = make(10, 4, (3, 6))
    with pytest.raises(ValueError, match=r"^h must be an NDArray of shape \(N, in_units=4\)"):
        block.log_prob(_h(2, 5))
    with pytest.raises(ValueError, match=r"^h must"):
        block.loss_sum(np.zeros((2, 4)), nd.array([0, 1]))
    with pytest.raises(ValueError, match=r"^targets must hold integer indices in \[0, "
                                         r"vocab_size=10\)"):
        block.loss_sum(_h(2, 4), nd.array([0, 10]))
    with pytest.raises(ValueError, match=r"^targets must hold one index per row of h \(N=2\)"):
        block.loss_sum(_h(2, 4), nd.array([0, 1, 2]))
