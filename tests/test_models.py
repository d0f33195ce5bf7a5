"""The one model interface: build_lm, parameters by name, the fast-form mapping."""
import mxnet as mx
import numpy as np
import pytest
from mxnet import nd

from oracle import book_notebook as book
from lyricnn.models import build, interface as models

from float_error import gamma, per_step_abs_gradients

V, H = 25, 8


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("model", build.MODELS)
def test_every_model_builds_and_runs_on_its_context(model, num_layers):
    ctx = mx.cpu(1)
    lm = build.build_lm(model, V, H, num_layers, ctx)
    assert isinstance(lm, models.LanguageModel)
    state = lm.begin_state(3)
    logits, new_state = lm(nd.array(np.arange(12).reshape(3, 4) % V, ctx=ctx), state)
    assert logits.shape == (4 * 3, V) and logits.context == ctx
    assert [s.shape for s in new_state] == [s.shape for s in state]
    assert len(lm.weights()) == len(lm.gradients()) == len(lm.named_parameters())


def test_checkpoint_names_are_the_books_and_gluons():
    assert list(build.build_lm("rnn-scratch", V, H).named_parameters()) == [
        "W_xh", "W_hh", "b_h", "W_hq", "b_q"]
    deep = list(build.build_lm("gru-scratch", V, H, 2).named_parameters())
    assert deep[:2] == ["l1.W_xz", "l1.W_hz"] and deep[9] == "l2.W_xz" and deep[-1] == "b_q"
    gluon = build.build_lm("lstm", V, H, 2).named_parameters()
    assert {"rnn.l0_i2h_weight", "rnn.l1_h2h_bias", "dense.weight", "dense.bias"} <= set(gluon)


def test_gluon_names_do_not_depend_on_how_many_models_exist():
    a = build.build_lm("gru", V, H)
    b = build.build_lm("gru", V, H)
    assert list(a.named_parameters()) == list(b.named_parameters())


@pytest.mark.parametrize("model", ["lstm-scratch", "gru"])
def test_load_named_parameters_reproduces_the_model(model):
    mx.random.seed(0)
    a = build.build_lm(model, V, H, 2)
    mx.random.seed(1)
    b = build.build_lm(model, V, H, 2)
    X = nd.array([[1, 2, 3]])
    before, _ = b(X, b.begin_state(1))
    b.load_named_parameters(a.named_parameters())
    after, _ = b(X, b.begin_state(1))
    expected, _ = a(X, a.begin_state(1))
    assert not np.allclose(before.asnumpy(), expected.asnumpy())
    np.testing.assert_array_equal(after.asnumpy(), expected.asnumpy())


def test_load_named_parameters_is_all_or_nothing():
    lm = build.build_lm("rnn-scratch", V, H)
    kept = {k: v.asnumpy().copy() for k, v in lm.named_parameters().items()}
    other = build.build_lm("rnn-scratch", V + 1, H).named_parameters()
    other["W_xh"] = nd.zeros((V, H))  # the first one fits, a later one does not
    with pytest.raises(ValueError, match=r"'W_hq' has shape \(8, 26\), the model needs \(8, 25\)"):
        lm.load_named_parameters(other)
    for k, v in lm.named_parameters().items():
        np.testing.assert_array_equal(v.asnumpy(), kept[k])
    with pytest.raises(ValueError, match=r"missing \['b_q'\]"):
        lm.load_named_parameters({k: v for k, v in kept.items() if k != "b_q"})


def test_cells_run_their_fast_form_and_book_functions_one_hot():
    from lyricnn.models import cells
    traced = models.sequence_forward(cells.RNN, V)            # traced in training
    assert traced.forward.func is cells.sequence and traced.forward.args == (cells.RNN,)
    plain = models.sequence_forward(cells.LSTM, V, trace=False)
    assert plain.func is cells.sequence and plain.args == (cells.LSTM,)
    # a book-style function, e.g. a reader's own cell, runs on one-hot inputs, as in the book
    assert models.sequence_forward(book.rnn, V).forward.__name__ == "one_hot_forward"


def test_default_sampler_is_the_books():
    assert build.default_sampler("gru-scratch") == "random"
    assert build.default_sampler("lstm") == "consecutive"


@pytest.mark.parametrize("args,name", [(("cnn", V, H), "model"), (("rnn", 0, H), "vocab_size"),
                                       (("rnn", V, 2.5), "num_hiddens"),
                                       (("rnn-scratch", V, H, 0), "num_layers"),
                                       (("rnn", V, H, 1, "tpu"), "ctx")])
def test_build_lm_names_bad_arguments(args, name):
    with pytest.raises(ValueError, match=name):
        build.build_lm(*args)


NOTEBOOK_CELLS = {  # the book's notebook code: (cell, get_params factory, init_state)
    "rnn": (book.rnn, book.make_get_params, book.init_rnn_state),
}


def _notebook_cells():
    from oracle import book_notebook_gated as gated
    return {**NOTEBOOK_CELLS,
            "gru": (gated.gru, gated.make_gru_get_params, gated.init_gru_state),
            "lstm": (gated.lstm, gated.make_lstm_get_params, gated.init_lstm_state)}


@pytest.mark.parametrize("name", ["rnn", "gru", "lstm"])
def test_a_readers_cell_gets_sparse_inputs_with_identical_outputs_and_gradients(name):
    from mxnet import autograd
    cell, factory, init_state = _notebook_cells()[name]
    params = factory(V, H, None)()
    X = nd.array(np.random.RandomState(0).randint(0, V, (3, 6)))
    results = []
    for sparse in (False, True):
        lm = models.ScratchLM(cell, params, init_state, H, V, mx.cpu(), sparse_inputs=sparse,
                              trace=False)   # as written (traced training is dense)
        with autograd.record():
            logits, state = lm(X, lm.begin_state(3))
            loss = (logits * logits).mean() + (state[0] * state[0]).mean()
        loss.backward()
        results.append([logits.asnumpy()] + [p.grad.asnumpy().copy() for p in params])
    # Outputs identical: a one-hot row times W is a copy of a row either way (the dense
    # product adds exact zeros). So is every gradient but the input weights' W_x*, whose
    # entry (v, j) sums the same terms dpre[t, b, j] over the k <= 18 tokens x[t, b] = v in
    # another order: within 2 gamma(k - 1) sum |terms| (float_error.py) of each other.
    np.testing.assert_array_equal(results[0][0], results[1][0])
    assert all(len(set(row)) == len(row) for row in X.asnumpy().T.tolist())  # distinct per step
    magnitude = per_step_abs_gradients(cell, params, init_state, X, V, H)
    n = X.size
    for i, (dense, sparse) in enumerate(zip(results[0][1:], results[1][1:])):
        if params[i].shape[0] == V and params[i].ndim == 2:      # an input weight W_x*
            assert (np.abs(dense - sparse) <= 2 * gamma(n - 1) * magnitude[i]).all()
        else:
            np.testing.assert_array_equal(dense, sparse)


def test_a_cell_that_needs_dense_inputs_can_ask_for_them():
    seen = []

    def cell(inputs, state, params):
        seen.append(inputs[0].stype)
        return book.rnn(inputs, state, params)

    params = book.make_get_params(V, H, None)()
    for sparse in (True, False):
        models.ScratchLM(cell, params, book.init_rnn_state, H, V, None,
                         sparse_inputs=sparse)(nd.array([[1, 2]]), book.init_rnn_state(1, H, None))
    assert seen == ["csr", "default"]
