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

``clipped_step_reference`` applies this to one step of lyricnn's training
(``run_epoch``: one minibatch, its gradient summed over devices, clipped SGD)
for the Gluon RNN (``--model rnn``: one ReLU layer, the fused kernel on
gathered columns). It computes, in float64, the exact step from given weights
and the bound on how far a float32 run of that step may land from it.
"""
import math

import numpy as np
from mxnet import autograd, nd

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
    assert n * u < 0.01, "the bound is only meaningful for n u << 1"
    return n * u / (1 - n * u)


def _onehot(labels, V):
    y = np.zeros((len(labels), V))
    y[np.arange(len(labels)), labels.astype(int)] = 1.0
    return y


def _float64_copy(lm, weights):
    """``lm`` (a fresh Gluon ``rnn`` LanguageModel) in float64 holding ``weights``."""
    lm.model.cast("float64")
    lm.load_named_parameters({k: nd.array(v, dtype="float64") for k, v in weights.items()})
    return lm


def _forward_backward(lm, X, dlogits_of):
    """Logits of ``lm`` on ``X`` from the zero state and the gradient for upstream
    gradient ``dlogits_of(logits)``: ``(logits, {name: gradient})`` as float64 NumPy."""
    state = [s.astype("float64") for s in lm.begin_state(X.shape[0])]
    with autograd.record():
        logits, _ = lm(X, state)
    out = logits.asnumpy()
    logits.backward(nd.array(dlogits_of(out), dtype="float64"))
    return out, {k: p.grad(lm.ctx).asnumpy() for k, p in lm.model.named_parameters().items()}


def clipped_step_reference(make_lm, weights, X, Y, lr, theta, devices):
    """The exact (float64) result of one training step and the float32 error bounds.

    ``make_lm()``: a fresh Gluon ``rnn`` LanguageModel of the run's architecture
    (its own weights are replaced); ``weights``: ``{name: float32 array}``, the
    weights before the step; ``X``, ``Y``: the minibatch ``(B, T)``; ``lr``,
    ``theta``: the clipped SGD's; ``devices``: how many devices x workers the
    float32 run splits the minibatch over (only the last summation depends on it).

    Returns ``(w1, bound, ppl, ppl_rtol)``: the exact weights after the step,
    ``|float32 w1 - w1| <= bound`` entrywise for any float32 run, the exact
    training perplexity of the step (what ``History.perplexity`` records for a
    one-minibatch epoch) and the relative bound of a float32 run's perplexity.

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
    exact ``G``, ``A`` the gradient of the absolute evaluation: the same network
    with ``|W|`` for every weight and ``p + y`` for ``|p - y|`` (ReLU'
    <= 1 and ReLU(x) <= |x|: every term of the backward expression is bounded
    by the matching term of this one). The clipped update
    ``w - lr * min(theta / (s ||G||), 1) * s * G`` (``s = 1/n``, lyricnn's
    ``clipped_sgd``) then adds: the norm, a sum of ``P`` squares (relative
    ``gamma(P)``) shifted by at most ``||gamma(m) A||``; ``sqrt``, ``* s``,
    ``theta /``, ``* s``: 4; the GEMM ``alpha (f g) + w``: 2 on the step and
    ``u |w1|`` on the sum. A ReLU pre-activation within its own rounding of 0
    could take the other branch (a discontinuity no bound covers); with
    weights drawn from N(0, 0.01^2) the pre-activations are ~1e-2 against
    rounding ~1e-8.
    """
    X = nd.array(X)
    labels = Y.T.reshape(-1)                      # time-major, as the logits
    B, T = X.shape
    n = B * T
    exact = _float64_copy(make_lm(), weights)
    probs = []

    def dlogits(logits):
        z = logits - logits.max(axis=1, keepdims=True)
        p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        probs.append(p)
        return p - _onehot(labels, p.shape[1])

    logits, G = _forward_backward(exact, X, dlogits)
    p = probs[0]
    V = p.shape[1]
    absolute = _float64_copy(make_lm(), {k: np.abs(v) for k, v in weights.items()})
    abs_logits, A = _forward_backward(absolute, X, lambda _: p + _onehot(labels, V))
    L = np.abs(abs_logits).max()
    h = next(v for k, v in weights.items() if k.endswith("h2h_weight")).shape[0]
    P = sum(v.size for v in weights.values())

    m_fwd = T * (2 * h + 2) + h + 1
    m = (m_fwd + (V + 1 + LIBM_ULPS) + 2 * L * m_fwd + 1      # forward, softmax, p - y
         + V + T * (2 * h + 2) + n + T + devices)  # backward, sums over tokens and devices

    s = 1.0 / n
    norm = math.sqrt(sum((g ** 2).sum() for g in G.values()))
    norm_A = math.sqrt(sum((a ** 2).sum() for a in A.values()))
    factor = min(theta / (s * norm), 1.0) * s
    w1 = {k: w.astype(np.float64) - lr * factor * G[k] for k, w in weights.items()}

    def bound_at(u):
        """|a run in unit roundoff u - the exact w1|, entrywise."""
        g_m = gamma(m, u)
        # Relative error of the factor: through the norm when clipped (else only s's
        # rounding, which this covers).
        phi = g_m * norm_A / norm + gamma(P, u) + 4 * u
        return {k: lr * factor * (g_m * A[k] + (phi + 3 * u) * (np.abs(G[k]) + g_m * A[k]))
                + u * np.abs(w1[k]) * (1 + 1e-6) for k in weights}

    # The float32 run's bound, plus the float64 reference's own (the same, in 2**-53).
    bound32, bound64 = bound_at(U32), bound_at(U64)
    bound = {k: bound32[k] + bound64[k] for k in weights}

    # Perplexity: per-token loss -(x_y - max - log sum exp(x - max)); every logit within
    # gamma(m_fwd) L (2x: x_y and the log-sum-exp both move), the sum of V exps within
    # gamma(V + LIBM_ULPS) relative (the same absolute error after the log), and
    # log_softmax's own result within LIBM_ULPS u of its magnitude (<= L + lse + loss);
    # the mean of n positive losses (float32, per device, then summed in float64) and
    # the product by the token count gamma(n + 2) relative.
    token_loss = -np.log(p[np.arange(n), labels.astype(int)])
    mean_loss = token_loss.mean()
    lse = np.abs(np.log(np.exp(logits - logits.max(axis=1, keepdims=True)).sum(axis=1))
                 + logits.max(axis=1)).max()
    per_token = (2 * gamma(m_fwd) * L + gamma(V + LIBM_ULPS)
                 + gamma(LIBM_ULPS) * (L + lse + token_loss.max()))
    ppl_rtol = gamma(n + 2) * mean_loss + per_token + 1e-12   # + the float64 reference's
    ppl_rtol = ppl_rtol * (1 + 2 * ppl_rtol)      # exp: e^d - 1 <= d (1 + 2d) for small d
    # Not vacuous: in every array the step moves some weight by far more than the bound.
    for k, w in weights.items():
        assert np.abs(w1[k] - w).max() >= 100 * bound[k].max(), k
    return w1, bound, math.exp(mean_loss), ppl_rtol


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

    from lyricnn.checkpoint import build_model, load_checkpoint
    from lyricnn.context import set_seed
    from lyricnn.sampling import data_iter_consecutive

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
    return clipped_step_reference(lambda: build_model(config, mx.cpu()), before, X, Y,
                                  config.lr, config.clipping_theta, devices)


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


def as_float64(lm):
    """``lm`` (a ``lyricnn.models.LanguageModel``) converted in place to float64: weights,
    gradients and begin_state. MXNet 1.9.1's CPU kernels that lyricnn trains with (the fused
    RNN kernel, Embedding, FullyConnected, dot, softmax, the KVStore's sums) all run in
    float64."""
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
