"""Rounding-error bounds for tests that compare floating-point results computed in
different orders (docs/TOLERANCES.md explains every tolerance of the suite).

Notation (Higham, *Accuracy and Stability of Numerical Algorithms*, ch. 3):
``u`` is the unit roundoff (2**-24 in float32, 2**-53 in float64) and
``gamma(n) = n u / (1 - n u)``. A result computed with at most ``n`` roundings
on the path of every term, *in any order*, differs from the exact value by at
most ``gamma(n)`` times the same expression evaluated on absolute values (the
"magnitude of the summed terms"). Nothing here depends on a machine's observed
error: the bounds hold for every order a kernel may choose (blocking, SIMD
width, threads, how a batch is split over devices).

* ``clipped_step_reference`` (Gluon RNN) and ``book_rnn_step_reference`` (the
  book's scratch RNN) apply this to one step of training (one minibatch, its
  gradient summed over devices or workers, clipped SGD): the exact step from
  given weights, computed in NumPy float64, and the bound on how far a float32
  run of it may land.
* ``TRAJECTORY64_RTOL`` (whole trainings compared in float64) and ``ROUTE64``
  (one function computed by two routes in float64) are argued where they are
  defined.
* ``per_step_abs_gradients``: the magnitude of the terms that a gradient sums
  over rows and time steps, for float32 comparisons that float64 cannot replace.
"""
import math

import numpy as np
from mxnet import nd

U32 = 2.0 ** -24
U64 = 2.0 ** -53
#: MXNet's float32 ``exp``, ``log``, ``softmax`` and ``log_softmax`` are not correctly
#: rounded and their accuracy is not documented: each result is taken to be within
#: ``LIBM_ULPS`` roundings (u) of its exact value. The worst case known in this suite is
#: ``log_softmax`` of zeros over 11 classes, 20 u off -log(11) (tests/test_wordlm.py);
#: elementwise exp and log are within ~1 u, as a vectorised libm promises.
LIBM_ULPS = 64


def gamma(n, u=U32):
    """``n u / (1 - n u)``: the relative error bound of ``n`` roundings."""
    n = math.ceil(n)
    assert n * u < 0.01, f"the bound is only meaningful for n u << 1 (n = {n})"
    return n * u / (1 - n * u)


def _onehot(labels, V):
    y = np.zeros((len(labels), V))
    y[np.arange(len(labels)), labels.astype(int)] = 1.0
    return y


def _softmax(logits):
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _rnn_numpy(W_xh, W_hh, b_h, W_hq, b_q, X, act, dact, dlogits_of):
    """One-layer RNN ``H = act(x W_xh + H W_hh + b_h)``, ``O = H W_hq + b_q`` from the zero
    state on indices ``X (B, T)``, in NumPy float64: ``(logits (T B, V) time-major, H of
    every step (T B, h), largest |pre-activation|, [dW_xh, dW_hh, db_h, dW_hq, db_q])`` for
    the upstream gradient ``dlogits_of(logits)`` (backpropagation through time)."""
    B, T = X.shape
    h = W_hh.shape[0]
    H, Hs, pre_max = np.zeros((B, h)), [], 0.0
    for t in range(T):
        pre = W_xh[X[:, t]] + H @ W_hh + b_h
        pre_max = max(pre_max, np.abs(pre).max())
        H = act(pre)
        Hs.append(H)
    Hcat = np.concatenate(Hs, axis=0)
    logits = Hcat @ W_hq + b_q
    dY = dlogits_of(logits)
    grads = [np.zeros_like(W_xh), np.zeros_like(W_hh), np.zeros_like(b_h), Hcat.T @ dY,
             dY.sum(axis=0)]
    dpre_next = np.zeros((B, h))
    for t in reversed(range(T)):
        dpre = (dY[t * B:(t + 1) * B] @ W_hq.T + dpre_next @ W_hh.T) * dact(Hs[t])
        np.add.at(grads[0], X[:, t], dpre)
        grads[1] += (Hs[t - 1] if t else np.zeros((B, h))).T @ dpre
        grads[2] += dpre.sum(axis=0)
        dpre_next = dpre
    return logits, Hcat, pre_max, grads


def _rnn_reference(arrays, X, Y, act, dact):
    """The exact forward and gradient of the summed cross-entropy, and the absolute
    evaluation: ``(logits, p, labels, G, A, L, P)``; ``A`` the gradient with ``|W|``,
    the identity for the activation (ReLU(x) <= |x|, |tanh x| <= |x|, both derivatives
    <= 1) and ``p + y`` for ``|p - y|``, which bounds every term of the exact gradient's
    expression; ``L`` its largest logit, ``P`` its largest pre-activation."""
    X, Y = np.asarray(X).astype(int), np.asarray(Y).astype(int)
    labels = Y.T.reshape(-1)                      # time-major, as the logits
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    V = arrays[3].shape[1]
    probs = []

    def dlogits(logits):
        probs.append(_softmax(logits))
        return probs[0] - _onehot(labels, V)

    logits, _, _, G = _rnn_numpy(*arrays, X, act, dact, dlogits)
    p = probs[0]
    abs_logits, _, P, A = _rnn_numpy(*[np.abs(a) for a in arrays], X, lambda x: x,
                                     np.ones_like, lambda _: p + _onehot(labels, V))
    return logits, p, labels, G, A, np.abs(abs_logits).max(), P


def clipped_step_reference(weights, X, Y, lr, theta, devices):
    """The exact (float64) result of one training step of the Gluon RNN and the float32
    error bounds.

    ``weights``: ``{name: float32 array}``, a one-layer ``gluon.rnn.RNN`` (ReLU) and its
    Dense layer under lyricnn's names (``rnn.l0_i2h_weight`` ..., ``dense.bias``), the
    weights before the step; ``X``, ``Y``: the minibatch ``(B, T)``; ``lr``, ``theta``:
    the clipped SGD's; ``devices``: how many devices x workers the float32 run splits the
    minibatch over (only the last summation depends on it).

    Returns ``(w1, bound, ppl, ppl_rtol)``: the exact weights after the step,
    ``|float32 w1 - w1| <= bound`` entrywise for any float32 run, the exact
    training perplexity of the step (what ``History.perplexity`` records for a
    one-minibatch epoch) and the relative bound of a float32 run's perplexity.

    The exact step is computed in NumPy float64, not by MXNet: MXNet 1.9.1's
    float64 RNN kernel rounds every ReLU output to float32 (``relu`` in its
    ``rnn_impl.h`` returns a ``float``), so it is only float32-accurate.

    The derivation (each line a count of roundings on the longest path):

    * forward, per time step, the fused kernel's pre-activation
      ``x_t I + W_hh h_{t-1} + b_i + b_h`` (the identity product is exact, but
      a kernel may accumulate both products in one chain): ``2h + 2``; over
      ``T`` steps ``T (2h + 2)``; ReLU is exact; the output layer ``h + 1``;
    * softmax: subtracting the max 1, ``exp`` ``LIBM_ULPS``, the sum ``V - 1``,
      the division 1; the logits' own error ``d`` moves every probability by
      a factor within ``exp(+-2d)``, ``d <= gamma(m_fwd) L`` with ``L`` the
      largest logit of the absolute evaluation: ``2 L m_fwd`` more; ``p - y`` 1;
    * backward: ``dY = dlogits W_dense`` sums ``V`` terms; the recurrence
      ``T (2h + 2)`` again; every weight's gradient sums its terms over the
      ``n = B T`` tokens (and ``T`` per-step partial sums); the devices'
      partial sums ``devices``.

    Every entry of a float32 gradient is then within ``gamma(m) A`` of the
    exact ``G``, ``A`` the gradient of the absolute evaluation (``_rnn_reference``).
    The clipped update ``w - lr * min(theta / (s ||G||), 1) * s * G``
    (``s = 1/n``, lyricnn's ``clipped_sgd``) then adds: the norm, a sum of ``P``
    squares (relative ``gamma(P)``) shifted by at most ``||gamma(m) A||``;
    ``sqrt``, ``* s``, ``theta /``, ``* s``: 4; the GEMM ``alpha (f g) + w``: 2 on
    the step and ``u |w1|`` on the sum. A ReLU pre-activation within its own
    rounding of 0 could take the other branch (a discontinuity no bound covers);
    with weights drawn from N(0, 0.01^2) the pre-activations are ~1e-2 against
    rounding ~1e-8.
    """
    w = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
    arrays = [w["rnn.l0_i2h_weight"].T, w["rnn.l0_h2h_weight"].T,
              w["rnn.l0_i2h_bias"] + w["rnn.l0_h2h_bias"], w["dense.weight"].T, w["dense.bias"]]
    logits, p, labels, G5, A5, L, _ = _rnn_reference(
        arrays, X, Y, lambda x: np.maximum(x, 0), lambda H: (H > 0).astype(np.float64))
    names = ["rnn.l0_i2h_weight", "rnn.l0_h2h_weight", "rnn.l0_i2h_bias", "rnn.l0_h2h_bias",
             "dense.weight", "dense.bias"]
    G = dict(zip(names, [G5[0].T, G5[1].T, G5[2], G5[2], G5[3].T, G5[4]]))
    A = dict(zip(names, [A5[0].T, A5[1].T, A5[2], A5[2], A5[3].T, A5[4]]))
    B, T = np.asarray(X).shape
    n, V, h = B * T, p.shape[1], arrays[1].shape[0]
    m_fwd = T * (2 * h + 2) + h + 1
    m = (m_fwd + (V + 1 + LIBM_ULPS) + 2 * L * m_fwd + 1      # forward, softmax, p - y
         + V + T * (2 * h + 2) + n + T + devices)  # backward, sums over tokens and devices
    w1, bound = _step_and_bound(weights, G, A, m, lr, theta, n)
    ppl, ppl_rtol = _perplexity_and_bound(p, logits, labels, L, m_fwd)
    return w1, bound, ppl, ppl_rtol


def _step_and_bound(weights, G, A, m, lr, theta, n):
    """The exact clipped SGD step from ``weights`` (dicts or lists of arrays) with
    gradient ``G`` of the summed loss over ``n`` tokens, and the entrywise bound of a
    float32 run whose gradient entries are within ``gamma(m) A`` (plus the float64
    reference's own error)."""
    keys = list(weights.keys()) if isinstance(weights, dict) else range(len(weights))
    P = sum(np.asarray(weights[k]).size for k in keys)
    s = 1.0 / n
    norm = math.sqrt(sum((G[k] ** 2).sum() for k in keys))
    norm_A = math.sqrt(sum((A[k] ** 2).sum() for k in keys))
    factor = min(theta / (s * norm), 1.0) * s
    w1 = {k: np.asarray(weights[k], dtype=np.float64) - lr * factor * G[k] for k in keys}

    def bound_at(u):
        """|a run in unit roundoff u - the exact w1|, entrywise."""
        g_m = gamma(m, u)
        # Relative error of the factor: through the norm when clipped (else only s's
        # rounding, which this covers).
        phi = g_m * norm_A / norm + gamma(P, u) + 4 * u
        return {k: lr * factor * (g_m * A[k] + (phi + 3 * u) * (np.abs(G[k]) + g_m * A[k]))
                + u * np.abs(w1[k]) * (1 + 1e-6) for k in keys}

    # The float32 run's bound, plus the float64 reference's own (the same, in 2**-53).
    bound32, bound64 = bound_at(U32), bound_at(U64)
    bound = {k: bound32[k] + bound64[k] for k in keys}
    # Not vacuous: in every array the step moves some weight by far more than the bound.
    for k in keys:
        assert np.abs(w1[k] - weights[k]).max() >= 100 * bound[k].max(), k
    if not isinstance(weights, dict):
        return [w1[k] for k in keys], [bound[k] for k in keys]
    return w1, bound


def _perplexity_and_bound(p, logits, labels, L, m_fwd):
    """The exact perplexity of the step's forward pass and the relative bound of a
    float32 run's (``History.perplexity``, d2lzh's log line).

    Per-token loss -(x_y - max - log sum exp(x - max)): every logit within gamma(m_fwd) L
    (2x: x_y and the log-sum-exp both move), the sum of V exps within
    gamma(V + LIBM_ULPS) relative (the same absolute error after the log), and
    log_softmax's own result within LIBM_ULPS u of its magnitude (<= L + lse + loss);
    the mean of n positive losses (float32, per device, then summed in float64) and the
    product by the token count gamma(n + 2) relative.
    """
    n, V = p.shape
    token_loss = -np.log(p[np.arange(n), labels.astype(int)])
    mean_loss = token_loss.mean()
    top = logits.max(axis=1)
    lse = np.abs(np.log(np.exp(logits - top[:, None]).sum(axis=1)) + top).max()
    per_token = (2 * gamma(m_fwd) * L + gamma(V + LIBM_ULPS)
                 + gamma(LIBM_ULPS) * (L + lse + token_loss.max()))
    rtol = gamma(n + 2) * mean_loss + per_token + 1e-12   # + the float64 reference's
    rtol = rtol * (1 + 2 * rtol)      # exp: e^d - 1 <= d (1 + 2d) for small d
    return math.exp(mean_loss), rtol


def book_rnn_step_reference(params, X, Y, lr, theta):
    """``clipped_step_reference`` for the book's from-scratch RNN (6.4):
    ``params = [W_xh (V, h), W_hh (h, h), b_h (h,), W_hq (h, V), b_q (V,)]`` (float32
    arrays, before the step), ``H = tanh(X W_xh + H W_hh + b_h)``, ``Y = H W_hq + b_q``,
    from the zero state on the minibatch ``X``, ``Y`` ``(B, T)``.

    Counts: per time step ``2h + 2`` (``H W_hh`` and the input's column, which the fused
    kernel may sum in one chain; the one-hot product itself is exact) and ``LIBM_ULPS``
    for tanh; forward ``T (2h + 2 + LIBM_ULPS) + h + 1``; softmax as
    ``clipped_step_reference``; backward ``V`` (``dY W_hq^T``), per time step ``h + 1``
    and ``(1 - H^2)``'s 2 roundings plus its conditioning (``H`` within
    ``gamma(m_fwd) P`` absolutely, tanh being 1-Lipschitz: ``2 P m_fwd``), the sums over
    ``n`` tokens and ``T`` steps, and 4 more (d2lzh's ``/ n`` and ``/ 1``, slack).
    """
    logits, p, labels, G, A, L, P = _rnn_reference(params, X, Y, np.tanh,
                                                   lambda H: 1 - H ** 2)
    B, T = np.asarray(X).shape
    n, V, h = B * T, p.shape[1], np.asarray(params[1]).shape[0]
    m_fwd = T * (2 * h + 2 + LIBM_ULPS) + h + 1
    m = (m_fwd + (V + 1 + LIBM_ULPS) + 2 * L * m_fwd + 1
         + V + T * (h + 1 + 2 + 2 * P * m_fwd) + n + T + 4)
    w1, bound = _step_and_bound([np.asarray(p) for p in params], G, A, m, lr, theta, n)
    ppl, ppl_rtol = _perplexity_and_bound(p, logits, labels, L, m_fwd)
    return w1, bound, ppl, ppl_rtol


def assert_within(got, want, bound, what=""):
    """``|got - want| <= bound`` entrywise for every array of dicts ``got``, ``want``, ``bound``."""
    assert got.keys() == want.keys()
    for k in want:
        err = np.abs(got[k].astype(np.float64) - want[k])
        worst = np.unravel_index(np.argmax(err - bound[k]), err.shape)
        assert (err <= bound[k]).all(), (
            f"{what}{k}{list(worst)}: differs from the exact step by {err[worst]:.3g}, more "
            f"than the float32 bound {bound[k][worst]:.3g}")


def cli_step_reference(run_dir, before=None, devices=2):
    """``clipped_step_reference`` for a ``lyricnn train --model rnn`` run in ``run_dir``
    whose epochs are one minibatch each: the exact step from ``before``
    (``{name: array}``; default: the run's initial weights, rebuilt from its
    seed as ``lyricnn train`` builds them) on the run's one minibatch."""
    import mxnet as mx

    from lyricnn.context import set_seed
    from lyricnn.data.sampling import data_iter_consecutive
    from lyricnn.run.checkpoint import load_checkpoint
    from lyricnn.run.task import build_model

    ckpt = load_checkpoint(run_dir)
    config = ckpt.config
    assert config.model == "rnn" and config.num_layers == 1 and config.sampler == "consecutive"
    assert config.valid_fraction == 0
    if before is None:
        set_seed(config.seed)
        before = {k: v.asnumpy() for k, v in build_model(config, mx.cpu())
                  .named_parameters().items()}
    batches = list(data_iter_consecutive(ckpt.vocab.to_indices(ckpt.corpus_text),
                                         config.batch_size, config.num_steps))
    assert len(batches) == 1, f"an epoch of this run is {len(batches)} minibatches, not one"
    X, Y = (a.asnumpy() for a in batches[0])
    return clipped_step_reference(before, X, Y, config.lr, config.clipping_theta, devices)


# ------------------------------------------------ whole trajectories, in float64

#: Relative agreement (to the largest weight) of two float64 trainings that differ only
#: in the order of their sums (one device against several, one process against
#: dist_sync workers), after the few dozen clipped SGD steps of tests/test_parallel.py.
#:
#: What rounding injects: one step's result from the same weights differs between two
#: orders by at most ~2 (gamma(m) K + gamma(P)) of the step (clipped_step_reference;
#: K = ||A|| / ||G|| the gradient's cancellation). At the largest size there (V = 1027,
#: 16 hidden: P ~ 35,000 weights, m ~ 2,500 roundings) that is ~1e-11 for K <= 10 in
#: float64 (u = 2**-53); over S = 32 steps, each at most lr * theta <= 0.25 of the
#: largest weight, ~1e-10 of it in all.
#: What the tolerance leaves: 1e-6 / 1e-10 = 1e4 for the training to amplify those
#: differences over 32 steps (1.33x per step). That amplification is a property of the
#: exact trajectory (model, data, learning rate), the same on every CPU: only the
#: injected rounding depends on the machine, and it is bounded above. In float32
#: (2**29 times more rounding) the same 1e4 would allow differences of 1e-2 of the
#: weights, which is why float32 trajectories are not compared with a fixed rtol.
#: What it still catches: a wrong step (a shard dropped or counted twice, gradients not
#: summed, a stale replica) moves weights by a sizeable part of lr * theta, >= 1e-3 of the
#: largest weight; the tests check the weights moved that far.
TRAJECTORY64_RTOL = 1e-6


def float64_lm(model, vocab_size, num_hiddens, ctx=None):
    """``lyricnn.models.build_lm(model, ...)`` in float64 (``as_float64``), except that the
    Gluon ``rnn`` gets tanh instead of ReLU: MXNet 1.9.1's float64 RNN kernel rounds every
    ReLU output to float32 (``relu`` in its ``rnn_impl.h`` returns a ``float``), which
    would make two float64 runs differ by float32 roundings. lyricnn's code for the model
    (RNNModel, the lookup, the fused kernel, GluonLM) is the same for both activations."""
    from mxnet import init
    from mxnet.gluon import rnn as gluon_rnn

    from lyricnn.context import resolve_ctx
    from lyricnn.models.build import build_lm
    from lyricnn.models.gluon import RNNModel
    from lyricnn.models.interface import GluonLM

    if model != "rnn":
        return as_float64(build_lm(model, vocab_size, num_hiddens, ctx=ctx))
    ctx = resolve_ctx(ctx)
    net = RNNModel(gluon_rnn.RNN(num_hiddens, activation="tanh"), vocab_size)
    net.initialize(ctx=ctx, init=init.Normal(0.01))          # as build_lm
    net(nd.zeros((1, 1), ctx=ctx), net.begin_state(batch_size=1, ctx=ctx))
    return as_float64(GluonLM(net, vocab_size, ctx))


def as_float64(lm):
    """``lm`` (a ``lyricnn.models.LanguageModel``) converted in place to float64: weights,
    gradients and begin_state. MXNet 1.9.1's CPU kernels that lyricnn trains with (the fused
    RNN kernel, Embedding, FullyConnected, dot, softmax, the KVStore's sums) all run in
    float64, with two exceptions in its native RNN kernel (which float64 runs; float32
    runs oneDNN's): ReLU outputs are rounded to float32 (``float64_lm`` avoids it), and
    stacks of several layers get some layers' gradients wrong (tests/test_cells.py,
    tests/test_gluon_model.py): use one layer, or an LSTM whose input is as wide as its
    state."""
    if hasattr(lm, "model"):                       # GluonLM: Gluon casts it all
        lm.model.cast("float64")
        return lm
    for i, p in enumerate(lm.params):              # ScratchLM: plain NDArrays
        lm.params[i] = p.astype("float64")
        lm.params[i].attach_grad()
    init_state = lm.init_state
    lm.init_state = lambda *args: tuple(s.astype("float64") for s in init_state(*args))
    return lm


def assert_same_trajectory(a, b, start=None, rtol=TRAJECTORY64_RTOL):
    """``a``, ``b``: ``{name: float64 array}`` after the same training; agree to ``rtol`` of
    the largest weight (``TRAJECTORY64_RTOL``). With ``start`` (the weights before
    training), also check that training moved them by >= 1e-3 of it (not vacuous)."""
    assert a.keys() == b.keys()
    assert all(v.dtype == np.float64 for v in a.values()), "compare float64 trainings"
    scale = max(np.abs(v).max() for v in a.values())
    worst = max(np.abs(a[k] - b[k]).max() for k in a)
    assert worst <= rtol * scale, f"parameters differ by {worst} (scale {scale})"
    if start is not None:
        moved = max(np.abs(a[k] - start[k]).max() for k in a)
        assert moved >= 1e-3 * scale, f"training moved the weights by {moved} only"


def assert_one_book_step(trained, printed_ppl, start, X, Y, lr, theta, what=""):
    """A one-minibatch epoch of the book's RNN (``trained``: its 5 arrays after it;
    ``printed_ppl``: the epoch's perplexity as the log line prints it, ``%f``) is the
    exact step from ``start`` to within float32 rounding (``book_rnn_step_reference``)."""
    w1, bound, ppl, ppl_rtol = book_rnn_step_reference(start, X, Y, lr, theta)
    assert_within(dict(enumerate(trained)), dict(enumerate(w1)), dict(enumerate(bound)), what)
    # + the log line's 6 decimals
    assert abs(printed_ppl - ppl) <= ppl_rtol * ppl + 5e-7, (what, printed_ppl, ppl, ppl_rtol)


# ------------------------------------- one function by two routes, in float64

#: Two routes to the same function (book-form cell against lyricnn's fast forms and the
#: fused kernel, one-hot inputs against a lookup, sparse against dense, hybridized against
#: imperative, ...) on the same float64 inputs: outputs and gradients agree to ``ROUTE64``
#: (``assert_allclose(rtol=ROUTE64, atol=ROUTE64)``).
#:
#: Each route evaluates the same sums and products in its own order: m <= 2e5 roundings
#: on any path in the tests using this (T <= 35 steps, V <= 1027, h <= 32, <= 200
#: tokens: per time step at most V + 4h + 2 LIBM_ULPS + 10, forward and backward, plus
#: the softmax and the sums over tokens). The two results then differ by at most
#: 2 m u kappa |x|, kappa how much the computation amplifies a relative perturbation of
#: its intermediate values: 4.5e-11 kappa |x| in float64 (u = 2**-53), or with
#: rounding errors of random sign (Higham & Mary 2019) ~ 10 sqrt(m) u kappa = 5e-13 kappa.
#: kappa is a property of the test's function and inputs, the same on every CPU; only
#: the order, hence which roundings occur, depends on the machine. ROUTE64 = 1e-8 (rtol
#: and atol) holds for kappa up to 200 in the worst case and 2e4 typically.
#: (The worst-case bound gamma(m) |x|_abs, with |x|_abs the evaluation on absolute
#: values, is no help here: with tanh replaced by the identity, 3 layers of weights
#: ~N(0, 0.3^2) make |x|_abs large enough that it allows 1e-4 even in float64.)
#: In float32 the same allowance would be 2e5 * 2**-24 * 200 = 2.4: a float32 rtol of
#: 1e-5 on a 35-step gradient was an observed figure, not a bound.
#: A wrong formulation (gate order, a missing bias, a transposed weight, a state in the
#: wrong layer) changes results by far more than 1e-3.
ROUTE64 = 1e-8


def assert_same_function(got, want, tol=ROUTE64, what=""):
    """Arrays ``got``, ``want`` (iterables, float64) agree to ``tol`` (``ROUTE64``)."""
    got, want = list(got), list(want)
    assert len(got) == len(want)
    for i, (a, b) in enumerate(zip(got, want)):
        a = a.asnumpy() if hasattr(a, "asnumpy") else np.asarray(a)
        b = b.asnumpy() if hasattr(b, "asnumpy") else np.asarray(b)
        assert a.dtype == np.float64 and b.dtype == np.float64, \
            f"{what}[{i}]: compare float64 results ({a.dtype}, {b.dtype})"
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol, err_msg=f"{what}[{i}]")



# ------------------------- gradients whose terms are summed over time in another order

def per_step_abs_gradients(cell, params, init_state, X, vocab_size, num_hiddens):
    """``[sum over time steps t and rows b of |the gradient from (t, b) alone|]`` per
    parameter, for a book-style ``cell(inputs, state, params)`` on one-hot ``X (B, T)``
    from ``init_state`` and the loss ``mean(logits^2) + mean(H_T^2)`` (``H_T`` the final
    ``state[0]``) of tests/test_models.py and tests/test_tracing.py.

    Every row runs alone (rows do not interact; the loss is their sum, each part divided
    by the whole batch's count) and every step gets its own copy of the parameters, so a
    copy's gradient is that (row, step)'s contribution: the magnitude of the terms a
    route sums over rows and steps. (An input weight's entry from one (row, step) is
    one term.)
    """
    from mxnet import autograd

    B, T = X.shape
    total = [np.zeros(p.shape) for p in params]
    for b in range(B):
        copies = [[p.copy() for p in params] for _ in range(T)]
        for step in copies:
            for p in step:
                p.attach_grad()
        with autograd.record():
            state, outputs = init_state(1, num_hiddens, None), []
            for t, step in enumerate(copies):
                out, state = cell([nd.one_hot(X[b:b + 1, t], vocab_size)], state, step)
                outputs += out
            logits = nd.concat(*outputs, dim=0)
            loss = ((logits * logits).sum() / (B * T * vocab_size)
                    + (state[0] * state[0]).sum() / (B * num_hiddens))
        loss.backward()
        for step in copies:
            for i, p in enumerate(step):
                total[i] += np.abs(p.grad.asnumpy())
    return total
