"""A reader's cell recorded once and replayed as one graph (lyricnn.models.tracing)."""
import json
import os
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, nd

import lyricnn as d2l
from oracle import book_notebook as book
from oracle import book_notebook_gated as gated
from lyricnn.models import build, interface as models
from lyricnn.models import tracing

from float_error import (as_float64, assert_one_book_step, assert_same_function, gamma,
                         per_step_abs_gradients)

V, H = 30, 8
CELLS = {"rnn": (book.rnn, book.make_get_params, book.init_rnn_state),
         "gru": (gated.gru, gated.make_gru_get_params, gated.init_gru_state),
         "lstm": (gated.lstm, gated.make_lstm_get_params, gated.init_lstm_state)}


def _batch(seed, batch=3, steps=6):
    return nd.array(np.random.RandomState(seed).randint(0, V, (batch, steps)))


def _train_step(lm, X):
    """Forward and backward of a loss on the logits and the last state; outputs and gradients."""
    with autograd.record():
        logits, state = lm(X, lm.begin_state(X.shape[0]))
        loss = (logits * logits).mean() + (state[0] * state[0]).mean()
    loss.backward()
    return [logits.asnumpy(), state[0].asnumpy()] + [p.grad.asnumpy().copy() for p in lm.params]


def _counting(cell, calls):
    def counted(inputs, state, params):
        calls.append(len(inputs))
        return cell(inputs, state, params)
    return counted


@pytest.mark.parametrize("name", sorted(CELLS))
def test_the_replay_gives_the_cells_outputs_and_gradients(name):
    cell, factory, init_state = CELLS[name]
    params = factory(V, H, None)()
    results = {}
    for trace in (False, True):
        lm = models.ScratchLM(cell, params, init_state, H, V, mx.cpu(), sparse_inputs=False,
                              trace=trace)
        results[trace] = [_train_step(lm, _batch(seed)) for seed in (0, 1)]  # 2nd: a replay
    assert lm._forward.untraced is None
    # The replay runs the same operators on the same values, but for the output layer:
    # one product over all steps (output_products_hoisted), whose BLAS may add a logit's
    # h terms in another order. The state is the same bits; each logit is within
    # 2 gamma(h + 1) (sum_k |W_hq[k, j]| + |b_q[j]|), as |H| <= 1 in all three cells.
    # The backward pass accumulates in another order: every parameter's gradient over the
    # T steps and B rows, every step's state gradient over its uses (k <= 6) and products
    # (V output units, h recurrent ones), chained back through the T steps. First order,
    # each route is within gamma(m) of the exact gradient times the magnitude of what it
    # sums, m = T (V + 2h + k + 2) + B T roundings deep; the magnitude taken normwise, per
    # array, as the largest sum of every (row, step)'s absolute contribution
    # (per_step_abs_gradients): an entry's intermediate state gradients carry the rounding
    # of sums that other entries share (a GRU reset-gate entry of 1e-12 is off by 2e-16
    # when its array's magnitude is ~1e-4). float32.
    k = {"rnn": 2, "gru": 5, "lstm": 6}[name]
    for seed, (as_written, replayed) in enumerate(zip(results[False], results[True])):
        W_hq, b_q = params[-2].asnumpy(), params[-1].asnumpy()
        logits_bound = 2 * gamma(H + 1) * (np.abs(W_hq).sum(axis=0) + np.abs(b_q)).max()
        assert np.abs(as_written[0] - replayed[0]).max() <= logits_bound     # logits
        np.testing.assert_array_equal(as_written[1], replayed[1])            # state
        X = _batch(seed)
        B, T = X.shape
        magnitude = per_step_abs_gradients(cell, params, init_state, X, V, H)
        bound = 2 * gamma(T * (V + 2 * H + k + 2) + B * T)
        for a, b, mag in zip(as_written[2:], replayed[2:], magnitude):
            assert np.abs(a - b).max() <= bound * mag.max()


def test_the_cell_is_recorded_once_per_input_shape_then_replayed():
    calls = []
    lm = models.ScratchLM(_counting(book.rnn, calls), book.make_get_params(V, H, None)(),
                          book.init_rnn_state, H, V, mx.cpu())
    for seed in range(3):
        _train_step(lm, _batch(seed))
    assert calls == [6]                      # recorded once, replayed twice
    _train_step(lm, _batch(3, batch=2, steps=4))
    assert calls == [6, 4]                   # a new shape is recorded anew
    assert len(lm._forward._graphs) == 2


def test_outside_training_the_cell_runs_as_written_every_call():
    calls = []
    lm = models.ScratchLM(_counting(book.rnn, calls), book.make_get_params(V, H, None)(),
                          book.init_rnn_state, H, V, mx.cpu())
    for seed in range(2):
        lm(_batch(seed), lm.begin_state(3))                      # evaluation, generation
    with autograd.record(train_mode=False):
        lm(_batch(0), lm.begin_state(3))
    assert calls == [6, 6, 6] and not lm._forward._graphs


def test_trace_false_runs_the_cell_every_minibatch():
    calls = []
    lm = models.ScratchLM(_counting(book.rnn, calls), book.make_get_params(V, H, None)(),
                          book.init_rnn_state, H, V, mx.cpu(), trace=False)
    for seed in range(3):
        _train_step(lm, _batch(seed))
    assert calls == [6, 6, 6]


def test_a_cell_that_makes_its_own_arrays_runs_as_written():
    calls = []

    def cell(inputs, state, params):
        calls.append(1)
        outputs, state = book.rnn(inputs, state, params)
        return [y + nd.zeros(y.shape) for y in outputs], state   # a constant the record lacks

    params = book.make_get_params(V, H, None)()
    lm = models.ScratchLM(cell, params, book.init_rnn_state, H, V, mx.cpu())
    got = [_train_step(lm, _batch(seed)) for seed in (0, 1)]
    assert "makes itself" in lm._forward.untraced
    assert len(calls) == 1 + 2          # the attempt to record, then every minibatch as written
    reference = models.ScratchLM(book.rnn, params, book.init_rnn_state, H, V, mx.cpu(),
                                 trace=False)
    # y + 0 is y: the same logits, bit for bit (no update ran between the calls)
    np.testing.assert_array_equal(got[1][0], _train_step(reference, _batch(1))[0])


def test_a_cell_with_random_operators_runs_as_written():
    def cell(inputs, state, params):
        outputs, state = book.rnn(inputs, state, params)
        return [nd.Dropout(y, p=0.5) for y in outputs], state

    lm = models.ScratchLM(cell, book.make_get_params(V, H, None)(), book.init_rnn_state, H, V,
                          mx.cpu())
    _train_step(lm, _batch(0))
    assert "other values" in lm._forward.untraced


def test_one_hot_products_become_gathers_and_nothing_else_changes():
    params = book.make_get_params(V, H, None)()
    lm = models.ScratchLM(book.rnn, params, book.init_rnn_state, H, V, mx.cpu())
    X = _batch(0, steps=5)
    copies = [X.copy(), nd.zeros((3, H))] + [p.copy() for p in params]
    for a in copies:
        a.attach_grad()
    with autograd.record():
        logits, _ = lm._forward.record(copies[0], (copies[1],), copies[2:])
    recorded = autograd.get_symbol(logits)

    def ops(graph):
        return [n["op"] for n in json.loads(graph.tojson())["nodes"]]

    before, after = ops(recorded), ops(tracing.one_hot_products_as_gathers(recorded))
    assert before.count("dot") == 3 * 5 and "take" not in before    # X W_xh, H W_hh, H W_hq
    assert after.count("dot") == 2 * 5 and after.count("take") == 5  # W_xh's products only
    rewritten = tracing.one_hot_products_as_gathers(recorded)
    assert sorted(recorded.list_inputs()) == sorted(rewritten.list_inputs())  # (in another order)


def test_a_transposed_product_of_a_one_hot_is_left_alone():
    idx, W = nd.array([1, 2]), nd.ones((3, 4))
    idx.attach_grad()
    W.attach_grad()
    with autograd.record():
        y = nd.dot(nd.one_hot(idx, 4), W, transpose_b=True)
    graph = tracing.one_hot_products_as_gathers(autograd.get_symbol(y))
    assert [n["op"] for n in json.loads(graph.tojson())["nodes"]].count("dot") == 1


def _recorded_book_rnn(steps=5):
    params = book.make_get_params(V, H, None)()
    lm = models.ScratchLM(book.rnn, params, book.init_rnn_state, H, V, mx.cpu())
    copies = [_batch(0, steps=steps).copy(), nd.zeros((3, H))] + [p.copy() for p in params]
    for a in copies:
        a.attach_grad()
    with autograd.record():
        logits, _ = lm._forward.record(copies[0], (copies[1],), copies[2:])
    return autograd.get_symbol(logits), copies


def _ops(graph):
    return [n["op"] for n in json.loads(graph.tojson())["nodes"]]


def test_the_output_layer_becomes_one_product_over_all_steps():
    recorded, copies = _recorded_book_rnn(steps=5)
    hoisted = tracing.output_products_hoisted(recorded)
    # X W_xh, H W_hh and H W_hq at each of 5 steps; then one H W_hq over all steps.
    assert _ops(recorded).count("dot") == 3 * 5 and _ops(hoisted).count("dot") == 2 * 5 + 1
    assert sorted(recorded.list_inputs()) == sorted(hoisted.list_inputs())
    names = {autograd.get_symbol(a).list_inputs()[0]: a for a in copies}
    args = {name: names[name] for name in recorded.list_inputs()}
    a, b = recorded.eval(ctx=mx.cpu(), **args)[0], hoisted.eval(ctx=mx.cpu(), **args)[0]
    # Each logit is the same h products plus the bias either way; a BLAS may add them in
    # another order. With |H| <= 1 (tanh) both results are within gamma(h + 1) of the exact
    # sum times sum_k |W_hq[k, j]| + |b_q[j]|, so they differ by at most twice that.
    W_hq, b_q = copies[-2], copies[-1]
    scale = (nd.abs(W_hq).sum(axis=0) + nd.abs(b_q)).max().asscalar()
    assert float(nd.abs(a - b).max().asscalar()) <= 2 * gamma(H + 1) * scale
    assert float(nd.abs(a).max().asscalar()) > 0


def test_an_output_read_elsewhere_or_with_other_weights_is_left_alone():
    W1, W2, b, h1, h2 = (nd.ones(s) for s in [(4, 5), (4, 5), (5,), (2, 4), (2, 4)])
    for a in (W1, W2, b, h1, h2):
        a.attach_grad()
    with autograd.record():
        other = nd.concat(nd.dot(h1, W1) + b, nd.dot(h2, W2) + b, dim=0)   # two weights
        first = nd.dot(h1, W1) + b
        read = nd.concat(first, nd.dot(h2, W1) + b, dim=0) + first.sum()   # a part read again
    for y in (other, read):
        graph = autograd.get_symbol(y)
        assert _ops(tracing.output_products_hoisted(graph)) == _ops(graph)


@pytest.mark.slow
def test_book_training_through_the_replay_matches_d2lzh():
    """The reader's own cell, traced, against the book's code: one epoch of one minibatch,
    each within the float32 rounding bound of the exact step (float_error.py; several
    steps at lr 100 amplify rounding with no bound one can derive)."""
    import contextlib
    import io
    import re

    import d2lzh
    ci, c2i, i2c, vocab = d2l.load_data_jay_lyrics()
    ci = ci[:100]                    # 99 // 10 = 9 windows: one minibatch of 8
    d2l.set_seed(5)
    start = [p.asnumpy() for p in book.make_get_params(vocab, 32, None)()]
    d2l.set_seed(5)
    (X, Y), = list(d2l.data_iter_random(ci, 8, 10))
    for name, train in [("d2lzh", d2lzh.train_and_predict_rnn),
                        ("lyricnn", d2l.train_and_predict_rnn)]:
        d2l.set_seed(5)
        made = []

        def get_params(factory=book.make_get_params(vocab, 32, None)):
            made.append(factory())
            return made[-1]

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            train(book.rnn, get_params, book.init_rnn_state, 32, vocab, None, ci, i2c, c2i,
                  True, 1, 10, 1e2, 1e-2, 8, 1, 5, ["分开"])
        ppl = [float(x) for x in re.findall(r"perplexity ([\d.]+)", out.getvalue())]
        assert len(ppl) == 1
        assert_one_book_step([p.asnumpy() for p in made[0]], ppl[0], start, X.asnumpy(),
                             Y.asnumpy(), 1e2, 1e-2, f"{name}: ")


def _threads_after_a_large_copy(parallel_size=None):
    """Threads of a fresh process before and after ``asnumpy()`` of 2M floats."""
    env = {k: v for k, v in os.environ.items() if k != "MXNET_CPU_PARALLEL_SIZE"}
    env["OMP_NUM_THREADS"] = "2"
    if parallel_size is not None:
        env["MXNET_CPU_PARALLEL_SIZE"] = parallel_size
    code = ("import json, os, lyricnn, mxnet as mx\n"
            "from mxnet import nd\n"
            "a = nd.ones((64, 64)); b = nd.dot(a, a); b.wait_to_read()\n"
            "before = len(os.listdir('/proc/self/task'))\n"
            "nd.ones((2_000_000,)).asnumpy()\n"
            "print(json.dumps([before, len(os.listdir('/proc/self/task'))]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True)
    return json.loads(out.stdout)


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux /proc")
def test_a_large_copy_on_the_python_thread_starts_no_openmp_team():
    before, after = _threads_after_a_large_copy()             # lyricnn's setting
    assert after == before
    # MXNet's own threshold: the copy opens a parallel region on the Python thread
    before, after = _threads_after_a_large_copy("200000")
    assert after > before


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("model", build.SCRATCH_MODELS)
def test_lyricnns_own_cells_are_replayed_with_the_same_results(model, num_layers):
    lm = as_float64(build.build_lm(model, V, H, num_layers, mx.cpu()))   # ROUTE64
    as_written = models.ScratchLM(lm.cell, lm.params, lm.init_state, H, V, mx.cpu(),
                                  trace=False)
    for seed in (0, 1):
        expected, got = _train_step(as_written, _batch(seed)), _train_step(lm, _batch(seed))
        assert_same_function(got, expected)
    assert lm._forward.untraced is None and len(lm._forward._graphs) == 1
