"""AWD-LSTM's regularisers in ``lyricnn.models.word``: locked and embedding dropout, weight
drop, AR/TAR, each against its definition."""
import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, nd

from lyricnn.models import fused
from lyricnn.models.word import WordRNNModel, build_word_lm, check_regularisers
from tests.float_error import ROUTE64   # one function by two routes in float64: TOLERANCES.md


def test_locked_dropout_masks_are_constant_across_time_steps():
    mx.random.seed(0)
    x = nd.ones((12, 5, 40))                                  # (num_steps, batch, units)
    with autograd.train_mode():
        y = WordRNNModel._dropout(nd, x, 0.5).asnumpy()
    assert (y == y[:1]).all()                                 # the same at every step
    kept = y[0] != 0
    assert 0.2 < kept.mean() < 0.8                            # and a real mask
    assert np.allclose(y[0][kept], 2.0)                       # scaled by 1 / (1 - p)
    with autograd.predict_mode():
        assert (WordRNNModel._dropout(nd, x, 0.5).asnumpy() == 1).all()


def _h2h_grads(lm, X, state):
    with autograd.record():
        logits, _ = lm(X, state)
        logits.sum().backward()
    return _layer0_grad(lm, "h2h_weight")


def _layer0_grad(lm, part):
    """The gradient of one of layer 1's four arrays (a piece of its flat vector)."""
    stack = lm.model.rnn
    return fused.split(stack.l0_flat.grad(), stack.shapes[0])[part].asnumpy().copy()


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_weight_drop_is_resampled_per_minibatch_and_off_at_evaluation(cell):
    mx.random.seed(3)
    lm = build_word_lm(cell, 11, 8, 8, weight_drop=0.5)
    plain = build_word_lm(cell, 11, 8, 8)
    plain.load_named_parameters(lm.named_parameters())
    X = nd.array(np.random.RandomState(1).randint(0, 11, (2, 6)))
    state = lm.begin_state(2)
    first, second = _h2h_grads(lm, X, state), _h2h_grads(lm, X, state)
    # A dropped weight gets no gradient; each minibatch (forward call) drops others.
    assert 0.2 < (first == 0).mean() < 0.8 and 0.2 < (second == 0).mean() < 0.8
    assert ((first == 0) != (second == 0)).any()
    # The input-to-hidden weights are not dropped.
    assert (_layer0_grad(lm, "i2h_weight") != 0).mean() > 0.95
    # Nor the biases (the last two pieces of the vector): every one gets a gradient.
    assert (_layer0_grad(lm, "h2h_bias") != 0).all()
    for model in (lm, plain):   # float64, R64: see the next test for why not bit for bit
        model.model.cast("float64")
    state = [s.astype("float64") for s in state]
    with autograd.predict_mode():   # evaluation: the whole matrix, as without weight drop
        ours, _ = lm(X, state)
        theirs, _ = plain(X, state)
    np.testing.assert_allclose(ours.asnumpy(), theirs.asnumpy(), rtol=ROUTE64, atol=ROUTE64)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_locked_dropout_between_layers_runs_the_layers_one_by_one_like_the_stack(cell):
    """At evaluation (no mask) the per-layer kernel calls that make room for locked dropout
    between layers compute what the one call of the whole stack computes, state included."""
    mx.random.seed(8)
    lm = build_word_lm(cell, 13, 6, 7, num_layers=3, dropout_hidden=0.4)
    stack = build_word_lm(cell, 13, 6, 7, num_layers=3)
    stack.load_named_parameters(lm.named_parameters())
    for model in (lm, stack):
        model.model.cast("float64")
    rs = np.random.RandomState(4)
    X = nd.array(rs.randint(0, 13, (2, 5)))
    state = [nd.array(rs.normal(size=s.shape), dtype="float64") for s in lm.begin_state(2)]
    ours, our_state = lm(X, state)
    theirs, their_state = stack(X, state)
    # The same per-layer kernel calls, the identity dropout's copy between them: in
    # float32 oneDNN may then block a product differently (1 ulp apart for rnn_tanh), so
    # float64 and R64 (docs/TOLERANCES.md).
    np.testing.assert_allclose(ours.asnumpy(), theirs.asnumpy(), rtol=ROUTE64, atol=ROUTE64)
    for a, b in zip(our_state, their_state):
        np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=ROUTE64, atol=ROUTE64)


def test_embedding_dropout_drops_whole_words():
    mx.random.seed(4)
    lm = build_word_lm("lstm", 50, 6, 6, dropout_embed=0.5)
    net = lm.model
    X = nd.array(np.tile(np.arange(50), (4, 1)))             # every word in every row
    with autograd.record():
        logits, _ = lm(X, lm.begin_state(4))
        logits.sum().backward()
    grad = net.embedding.weight.grad().asnumpy()             # (50, 6)
    dropped = (grad == 0).all(axis=1)
    assert 0.2 < dropped.mean() < 0.8                        # whole rows: whole words
    assert (grad[~dropped] != 0).all()


def test_ar_and_tar_match_a_hand_computation():
    rs = np.random.RandomState(5)
    lm = build_word_lm("lstm", 7, 4, 4, ar=2.0, tar=1.5)
    dropped, Y = rs.normal(size=(5, 3, 4)), rs.normal(size=(5, 3, 4))
    expected = 2.0 * (dropped ** 2).mean() + 1.5 * ((Y[1:] - Y[:-1]) ** 2).mean()
    got = lm.penalty(nd.array(dropped, dtype="float64"), nd.array(Y, dtype="float64"))
    assert float(got.asscalar()) == pytest.approx(expected, rel=ROUTE64)
    # One step: no h_(t-1), no TAR.
    one = lm.penalty(nd.array(dropped[:1], dtype="float64"), nd.array(Y[:1], dtype="float64"))
    assert float(one.asscalar()) == pytest.approx(2.0 * (dropped[:1] ** 2).mean(), rel=ROUTE64)


def _assert_train_step_is_autograd_of(lm, vocab, seed, summed_loss):
    """``lm.train_step``'s loss and every gradient (float64) equal autograd's of
    ``summed_loss(out, labels) + tokens * (2 mean(dropped^2) + mean((h_t - h_(t-1))^2))``,
    the model's AR = 2 and TAR = 1 written out (no dropout: the dropped output is the
    output)."""
    lm.model.cast("float64")
    rs = np.random.RandomState(seed)
    X, Y = nd.array(rs.randint(0, vocab, (3, 6))), nd.array(rs.randint(0, vocab, (3, 6)))
    state = [s.astype("float64") for s in lm.begin_state(3)]
    params = list(lm.model.collect_params().values())
    with autograd.record():
        out, _, dropped, hidden = lm.model(X, state)
        nll = summed_loss(out, Y.T.reshape((-1,)))
        total = nll + Y.size * (2.0 * nd.mean(nd.square(dropped)) +
                                nd.mean(nd.square(hidden[1:] - hidden[:-1])))
    total.backward()
    expected = [p.grad().asnumpy().copy() for p in params]
    # Twice: a second step's gradients are its own, whatever grad_req (a tied adaptive
    # model's embedding 'add's into what its decoder wrote) -- nothing accumulates.
    for step in range(2):
        loss, _ = lm.train_step(X, Y, state)
        assert float(loss.asscalar()) == pytest.approx(float(nll.asscalar()) / Y.size,
                                                       rel=ROUTE64)
        for p, e in zip(params, expected):
            np.testing.assert_allclose(p.grad().asnumpy(), e, rtol=ROUTE64, atol=ROUTE64,
                                       err_msg=f"{p.name}, step {step}")


def test_the_training_step_adds_ar_and_tar_to_the_summed_loss():
    """train_step's gradient is that of sum(cross-entropy) + tokens * (AR + TAR)."""
    mx.random.seed(6)
    lm = build_word_lm("lstm", 9, 5, 5, num_layers=2, ar=2.0, tar=1.0)
    _assert_train_step_is_autograd_of(
        lm, 9, 2, lambda logits, labels: -nd.pick(nd.log_softmax(logits), labels).sum())


@pytest.mark.parametrize("given, message", [
    ({"dropout_input": 1.0}, "dropout_input must be < 1"),
    ({"dropout_hidden": -0.1}, "dropout_hidden"),
    ({"weight_drop": float("nan")}, "weight_drop"),
    ({"dropout_embed": "half"}, "dropout_embed"),
    ({"ar": -1}, "ar"),
    ({"tar": 1e9}, "tar"),
    ({"dropout": 0.3, "dropout_output": 0.4}, "one or the other"),
    ({"drop_everything": 0.1}, "unknown regulariser"),
])
def test_bad_regularisers_are_named(given, message):
    with pytest.raises(ValueError, match=message):
        check_regularisers(**given)
    with pytest.raises(ValueError, match=message):
        build_word_lm("lstm", 5, 4, 4, **given)


@pytest.mark.parametrize("tied", [False, True])
def test_the_training_step_with_an_adaptive_softmax_is_its_summed_loss_and_penalty(tied):
    """With an adaptive softmax, train_step's fast gradients (loss_and_gradients) equal
    autograd's of loss_sum + tokens * (AR + TAR), on every parameter (float64)."""
    mx.random.seed(9)
    lm = build_word_lm("lstm", 12, 5, 5, num_layers=2, tied=tied, cutoffs=(4, 8), ar=2.0,
                       tar=1.0)
    _assert_train_step_is_autograd_of(lm, 12, 3, lm.model.decoder.loss_sum)
