"""The cells: one recurrence each, and every route through it computes the book's numbers."""
import dataclasses

import mxnet as mx
import numpy as np
import pytest
from gradcheck import loss_and_grads
from mxnet import nd

from oracle import book_notebook as book_rnn
from oracle import book_notebook_gated as book_gated
from lyricnn.models import cells
from lyricnn.models.onehot import to_onehot

from float_error import assert_same_function

V, H = 30, 8
NOTEBOOK = {"rnn": book_rnn.rnn, "gru": book_gated.gru, "lstm": book_gated.lstm}


def _params(cell, num_layers, seed=0, scale=0.3, dtype="float64"):
    """Parameters large enough that every term matters (init's 0.01 would hide errors);
    float64, so that routes are compared to a tolerance derived from float64 rounding
    (float_error.ROUTE64)."""
    rs = np.random.RandomState(seed)
    shapes = [p.shape for p in cells.init_params(cell, V, H, num_layers)]
    params = [nd.array(rs.normal(scale=scale, size=s), dtype=dtype) for s in shapes]
    for p in params:
        p.attach_grad()
    return params


def _state(cell, num_layers, batch, seed=1, dtype="float64"):
    rs = np.random.RandomState(seed)
    return tuple(nd.array(rs.normal(scale=0.5, size=(batch, H)), dtype=dtype)
                 for _ in range(num_layers * cell.num_states))


def _one_hot(step_fn):
    def forward(X, state, params):
        inputs = [x.astype(params[0].dtype) for x in to_onehot(X, V)]
        outputs, state = step_fn(inputs, state, params)
        return nd.concat(*outputs, dim=0), state
    return forward


def _data(batch, steps, seed=2):
    rs = np.random.RandomState(seed)
    return (nd.array(rs.randint(0, V, (batch, steps))), nd.array(rs.randint(0, V, (batch, steps))))


def _assert_same(a, b):
    assert_same_function(a[0] + a[1], b[0] + b[1])


ROUTES = {
    "unrolled": lambda cell: _one_hot(lambda i, s, p: cells.unrolled(cell, i, s, p)),
    "python": lambda cell: lambda X, s, p: cells.sequence(cell, X, s, p, fused=False),
    "fused": lambda cell: lambda X, s, p: cells.sequence(cell, X, s, p, fused=True),
}


@pytest.mark.parametrize("batch,steps", [(3, 7), (1, 1), (4, 35)])
@pytest.mark.parametrize("name", ["rnn", "gru", "lstm"])
def test_every_route_equals_the_books_notebook_cell(name, batch, steps):
    """Outputs, final state and every gradient, against the code the book prints."""
    cell = cells.get_cell(name)
    X, Y = _data(batch, steps)
    params, state = _params(cell, 1), _state(cell, 1, batch)
    reference = loss_and_grads(_one_hot(NOTEBOOK[name]), X, Y, params, state)
    for route in ROUTES.values():
        _assert_same(loss_and_grads(route(cell), X, Y, params, state), reference)


@pytest.mark.parametrize("num_layers", [2, 3])
@pytest.mark.parametrize("name", ["rnn", "lstm"])
def test_fused_kernel_equals_the_python_recurrence_in_deep_stacks(name, num_layers):
    """Layer order, gate order (LSTM: book i,f,o,c vs kernel i,f,g,o), state layout."""
    cell = cells.get_cell(name)
    X, Y = _data(3, 6)
    params, state = _params(cell, num_layers), _state(cell, num_layers, 3)
    fused = loss_and_grads(ROUTES["fused"](cell), X, Y, params, state)
    unrolled = loss_and_grads(ROUTES["unrolled"](cell), X, Y, params, state)
    if name == "rnn" and num_layers >= 3:
        # Outputs and final states only: in float64 MXNet's own kernel gets the middle
        # layers' gradients wrong (the next test); the 2-layer stack checks lyricnn's part
        # of the gradient (the lookup of layer 1's columns, the flat parameter vector).
        assert_same_function(fused[0], unrolled[0])
    else:
        _assert_same(fused, unrolled)


def test_a_deep_stack_is_right_on_the_native_kernel_too():
    """MXNet 1.9.1's native CPU RNN kernel (float64, or float32 with
    MXNET_USE_MKLDNN_RNN=0) computes wrong gradients for the middle layers of a stack run
    as *one* call (this was a strict xfail). lyricnn.models.fused.run calls it once per
    layer (oneDNN's kernel ignores dropout between layers otherwise), which also steers
    clear of that bug: the 3-layer float64 stack now equals the unrolled reference."""
    cell = cells.get_cell("rnn")
    X, Y = _data(3, 6)
    params, state = _params(cell, 3), _state(cell, 3, 3)
    _assert_same(loss_and_grads(ROUTES["fused"](cell), X, Y, params, state),
                 loss_and_grads(ROUTES["unrolled"](cell), X, Y, params, state))


def test_the_gru_never_takes_the_fused_kernel():
    # MXNet's fused GRU computes R ⊙ (H W_hh + b), not the book's (R ⊙ H) W_hh.
    assert cells.GRU.fused_mode is None
    assert cells.RNN.fused_mode == "rnn_tanh" and cells.LSTM.fused_mode == "lstm"


@pytest.mark.parametrize("route", ["unrolled", "python"])
def test_the_step_a_reader_opens_is_the_step_that_runs(route):
    """Editing a cell's step changes what the book form and the fast loop compute."""
    calls = []

    def recording_step(XW, state, hidden):
        calls.append(XW.shape)
        return cells.gru_step(XW, state, hidden)

    edited = dataclasses.replace(cells.GRU, step=recording_step)
    X, _ = _data(2, 4)
    ROUTES[route](edited)(X, _state(edited, 2, 2), _params(edited, 2))
    assert calls == [(2, 3 * H)] * 8  # 4 steps x 2 layers, each seeing X W_x of 3 gates


@pytest.mark.parametrize("name", ["rnn", "gru", "lstm"])
def test_fused_and_python_routes_keep_the_context(name):
    cell, ctx = cells.get_cell(name), mx.cpu(1)
    params = cells.init_params(cell, V, H, 2, ctx)
    state = cell.zero_state(2, 1, H, ctx)
    logits, new_state = cells.sequence(cell, nd.array([[1, 2]], ctx=ctx), state, params)
    assert logits.context == ctx and all(s.context == ctx for s in new_state)
    assert logits.shape == (2, V) and len(new_state) == 2 * cell.num_states


def test_param_names_follow_the_book():
    assert cells.RNN.param_names() == ["W_xh", "W_hh", "b_h"]
    assert cells.GRU.param_names()[:3] == ["W_xz", "W_hz", "b_z"]
    assert cells.LSTM.param_names()[-3:] == ["W_xc", "W_hc", "b_c"]


def test_init_draws_in_the_books_order():
    """Same seed, same values as the book's get_params (W_xh, W_hh, then W_hq)."""
    mx.random.seed(7)
    ours = cells.init_params(cells.LSTM, V, H)
    mx.random.seed(7)
    theirs = book_gated.make_lstm_get_params(V, H, None)()
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a.asnumpy(), b.asnumpy())
    assert all(p.grad is not None for p in ours)


@pytest.mark.parametrize("call,name", [
    (lambda: cells.get_cell("transformer"), "cell"),
    (lambda: cells.init_params(cells.RNN, np.int64(V), 0), "num_hiddens"),
    (lambda: cells.init_params(cells.RNN, V, H, True), "num_layers"),
    (lambda: cells.split_params(cells.GRU, [nd.zeros(1)] * 10), "params"),
    (lambda: cells.split_state(cells.LSTM, (nd.zeros(1),) * 3, 2), "state"),
])
def test_bad_arguments_name_themselves(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_numpy_integers_are_accepted():
    params = cells.init_params(cells.GRU, np.int64(V), np.int32(H), np.int64(1))
    assert params[0].shape == (V, H)


@pytest.mark.parametrize("name,hidden,expect_fused", [("rnn", 256, True), ("lstm", 256, False),
                                                      ("lstm", 128, True), ("gru", 64, False)])
def test_auto_takes_the_kernel_where_it_was_measured_faster(monkeypatch, name, hidden,
                                                            expect_fused):
    """At the book's vocabulary (1027): the RNN's width 256 is far below it, the LSTM's
    4 x 256 = 1024 is not (its identity product costs what the one-hot one did)."""
    taken = []
    real = cells.fused_kernel.scratch_layers
    monkeypatch.setattr(cells.fused_kernel, "scratch_layers",
                        lambda *a: taken.append(True) or real(*a))
    cell = cells.get_cell(name)
    params = cells.init_params(cell, 1027, hidden)
    cells.sequence(cell, nd.array([[1, 2]]), cell.zero_state(1, 1, hidden, None), params)
    assert bool(taken) == expect_fused
