import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, nd
from mxnet.gluon import loss as gloss

from oracle import book_notebook as book
from lyricnn.models.onehot import to_onehot
from lyricnn.book.trainers import FAST_FORMS, scratch_lm
from lyricnn.models import cells
from lyricnn.models.interface import sequence_forward
from lyricnn.book.scratch import get_params, init_rnn_state, params_getter, rnn, rnn_sequence

from float_error import assert_same_function

V, H = 40, 16


def _random_params(seed=0, scale=0.3, dtype="float32"):
    """Parameters large enough that every term matters (init's 0.01 would hide errors)."""
    rs = np.random.RandomState(seed)
    shapes = [(V, H), (H, H), (H,), (H, V), (V,)]
    params = [nd.array(rs.normal(scale=scale, size=s), dtype=dtype) for s in shapes]
    for p in params:
        p.attach_grad()
    return params


def test_get_params_shapes_init_and_grads():
    mx.random.seed(0)
    W_xh, W_hh, b_h, W_hq, b_q = params = get_params(1027, 256)
    assert [p.shape for p in params] == [(1027, 256), (256, 256), (256,), (256, 1027), (1027,)]
    assert abs(float(W_xh.asnumpy().std()) - 0.01) < 0.0005
    assert abs(float(W_hq.asnumpy().mean())) < 0.001
    assert not b_h.asnumpy().any() and not b_q.asnumpy().any()
    assert all(p.grad is not None for p in params)


def test_params_getter_is_the_books_zero_argument_call():
    get = params_getter(V, H, mx.cpu(1))
    a, b = get(), get()
    assert [p.shape for p in a] == [(V, H), (H, H), (H,), (H, V), (V,)]
    assert all(p.context == mx.cpu(1) for p in a)
    assert not np.array_equal(a[0].asnumpy(), b[0].asnumpy())  # fresh every call


def test_book_shapes_from_the_seed():
    X = nd.arange(10).reshape((2, 5))
    state = init_rnn_state(X.shape[0], 256, None)
    outputs, state_new = rnn(to_onehot(X, 1027), state, get_params(1027, 256))
    assert (len(outputs), state_new[0].shape, outputs[0].shape) == (5, (2, 256), (2, 1027))
    assert isinstance(state, tuple) and state[0].shape == (2, 256)


def _loss_and_grads(forward, X, Y, params, state):
    """The training loss (cross-entropy, as the book) plus a term on the last state."""
    with autograd.record():
        logits, (H_last,) = forward(X, state, params)
        loss = gloss.SoftmaxCrossEntropyLoss()(logits, Y.T.reshape((-1,))).mean() \
            + H_last.mean()
    loss.backward()
    return logits.asnumpy(), H_last.asnumpy(), [p.grad.asnumpy().copy() for p in params]


def _book_forward(X, state, params):
    outputs, state = book.rnn([x.astype(params[0].dtype) for x in to_onehot(X, V)], state,
                              params)
    return nd.concat(*outputs, dim=0), state


@pytest.mark.parametrize("batch,steps", [(3, 7), (1, 1), (4, 35)])
def test_fast_form_equals_the_book_one_hot_formulation(batch, steps):
    """In float64, to float_error.ROUTE64 (derived from float64 rounding)."""
    rs = np.random.RandomState(batch * 100 + steps)
    X, Y = (nd.array(rs.randint(0, V, size=(batch, steps))) for _ in range(2))
    state = (nd.array(rs.normal(size=(batch, H)), dtype="float64"),)
    params = _random_params(seed=steps, dtype="float64")
    ref = _loss_and_grads(_book_forward, X, Y, params, state)
    fast = _loss_and_grads(rnn_sequence, X, Y, params, state)
    assert max(np.abs(g).max() for g in ref[2]) > 1e-3  # the comparison is not vacuous
    assert fast[0].shape == (steps * batch, V)
    assert_same_function(fast[:2] + tuple(fast[2]), ref[:2] + tuple(ref[2]))


def test_the_books_rnn_trains_in_the_rnn_cells_fast_form():
    assert FAST_FORMS[rnn] is cells.RNN
    assert scratch_lm(rnn, [], None, 4, V, None)._forward.forward.args == (cells.RNN,)


def test_sequence_forward_runs_any_book_cell_on_one_hot_inputs():
    calls = []

    def my_cell(inputs, state, params):
        calls.append([x.shape for x in inputs])
        return book.rnn(inputs, state, params)

    params = _random_params()
    X = nd.array([[1, 2, 3], [4, 5, 6]])
    logits, _ = sequence_forward(my_cell, V)(X, init_rnn_state(2, H, None), params)
    assert calls == [[(2, V)] * 3]
    # The cell's own numbers on dense one-hot inputs, bit for bit: the sparse product of a
    # one-hot row copies a row of W_xh, the dense one adds exact zeros to it (equal to
    # rnn_sequence's in float64: test_fast_form_equals_the_book_one_hot_formulation).
    expected, _ = _book_forward(X, init_rnn_state(2, H, None), params)
    np.testing.assert_array_equal(logits.asnumpy(), expected.asnumpy())


def test_fast_form_keeps_the_context():
    ctx = mx.cpu(1)
    params = get_params(V, H, ctx)
    logits, (H_last,) = rnn_sequence(nd.array([[1, 2]], ctx=ctx), init_rnn_state(1, H, ctx),
                                     params)
    assert logits.context == ctx and H_last.context == ctx
