"""The word-level model's recurrent stack (``fused.Stack``: one flat Parameter per layer, one
kernel call per layer) computes what Gluon's own layer computes on the same values."""
import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, nd

from mxnet.gluon import rnn as gluon_rnn

from lyricnn.models import fused
from lyricnn.models.gluon import layer_parameters
from lyricnn.models.word import WORD_CELLS, WordRNNModel, build_word_lm, merge_layer_arrays


def _gluon_layer(net, cell):
    """The Gluon layer of ``net``'s recurrent stack, holding the same values (its four
    Parameters per layer cut from the stack's flat vectors)."""
    stack = net.rnn
    kwargs = dict(num_layers=stack.num_layers, input_size=stack.shapes[0][0][1][1])
    layer = {"rnn": lambda h, **k: gluon_rnn.RNN(h, **k),
             "rnn_tanh": lambda h, **k: gluon_rnn.RNN(h, activation="tanh", **k),
             "gru": gluon_rnn.GRU, "lstm": gluon_rnn.LSTM}[cell](stack.num_hiddens, **kwargs)
    layer.initialize()
    own = layer_parameters(layer)
    for l, shapes in enumerate(stack.shapes):
        for part, array in fused.split(getattr(stack, f"l{l}_flat").data(), shapes).items():
            own[f"l{l}_{part}"].set_data(array.copy())
    return layer


def _reference(net, layer, X, state):
    """The model as written with the Gluon layer (its own concatenation, one kernel call)."""
    emb = net.drop(net.embedding(nd.transpose(X)))
    Y, state = layer(emb, list(state))
    return net.decoder(net.drop(Y).reshape((-3, 0))), state


def _stack_grads(net, l):
    return getattr(net.rnn, f"l{l}_flat").grad().asnumpy()


def _gluon_grads(layer, shapes, l):
    """Layer ``l``'s four gradients of the Gluon ``layer``, joined in the kernel's order."""
    own = layer_parameters(layer)
    return np.concatenate([own[f"l{l}_{part}"].grad().asnumpy().ravel() for part, _ in shapes])


def _grads(net, recurrent):
    """Every gradient by name, ``rnn.lL`` as a flat vector from ``recurrent(l)``."""
    grads = {name: p.grad().asnumpy().copy() for name, p in net.named_parameters().items()
             if not name.startswith("rnn.")}
    grads.update({f"rnn.l{l}": recurrent(l).copy() for l in range(net.rnn.num_layers)})
    return grads


@pytest.mark.parametrize("cell", WORD_CELLS)
@pytest.mark.parametrize("hybridize", [False, True])
def test_recurrent_call_equals_the_gluon_layers_own(cell, hybridize):
    mx.random.seed(3)
    lm = build_word_lm(cell, 23, 6, 5 if cell != "lstm" else 6, num_layers=3)
    net = lm.model
    if not hybridize:
        net.hybridize(active=False)
    rs = np.random.RandomState(0)
    X = nd.array(rs.randint(0, 23, (4, 7)))
    state = [s + nd.array(rs.normal(size=s.shape)) for s in lm.begin_state(4)]
    head = nd.array(rs.normal(size=(28, 23)))
    layer = _gluon_layer(net, cell)
    routes = [(lambda X, s: net(X, s)[:2], lambda l: _stack_grads(net, l)),
              (lambda X, s: _reference(net, layer, X, s),
               lambda l: _gluon_grads(layer, net.rnn.shapes[l], l))]
    results = []
    for forward, recurrent in routes:
        with autograd.record():
            logits, new_state = forward(X, state)
            total = (logits * head).sum() + sum((s * s).sum() for s in new_state)
        total.backward()
        results.append(([logits.asnumpy()] + [s.asnumpy() for s in new_state],
                        _grads(net, recurrent)))
    (ours, our_grads), (theirs, their_grads) = results
    assert len(ours) == len(theirs) == (3 if cell == "lstm" else 2)
    # The same fused operator on the same bytes, forward: the same bits (per layer or as
    # one stack, each layer's products are the same; the stack's call is Gluon's).
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)
    assert our_grads.keys() == their_grads.keys()
    for name in our_grads:
        # fused.run calls the kernel per layer, Gluon once for the stack: the same products
        # summed in another order, so a gradient may differ in its last bit (float32:
        # relative 2**-23 per rounding, a handful of roundings apart).
        np.testing.assert_allclose(our_grads[name], their_grads[name], rtol=1e-6, atol=1e-9,
                                   err_msg=name)
        assert np.abs(our_grads[name]).sum() > 0, name


def test_recurrent_call_refuses_a_wrong_state_shape_like_the_layer():
    net = WordRNNModel("lstm", 10, 4, 4, num_layers=2)
    net.initialize()
    with pytest.raises(ValueError, match=r"Invalid recurrent state shape. Expecting \(2, 3, 4\)"):
        net(nd.zeros((3, 5)), net.begin_state(batch_size=2))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_seed_initialises_the_stack_as_gluon_initialised_its_four_parameters(cell):
    """Same seed, same values as the model had when its layer was ``gluon.rnn.LSTM`` (or
    GRU): the flat vectors are drawn piece by piece in Gluon's order, biases zero, so the
    published recipes start from the weights they started from."""
    mx.random.seed(11)
    lm = build_word_lm(cell, 30, 6, 5, num_layers=2)
    mx.random.seed(11)
    embedding = mx.gluon.nn.Embedding(30, 6)        # drawn first, as in the model
    layer = (gluon_rnn.GRU if cell == "gru" else gluon_rnn.LSTM)(5, 2, input_size=6)
    embedding.initialize(mx.init.Uniform(0.1))
    layer.initialize(mx.init.Uniform(0.1))
    own = layer_parameters(layer)
    np.testing.assert_array_equal(lm.model.embedding.weight.data().asnumpy(),
                                  embedding.weight.data().asnumpy())
    for l, shapes in enumerate(lm.model.rnn.shapes):
        expected = np.concatenate([own[f"l{l}_{part}"].data().asnumpy().ravel()
                                   for part, _ in shapes])
        flat = getattr(lm.model.rnn, f"l{l}_flat").data().asnumpy()
        np.testing.assert_array_equal(flat, expected)
        assert np.abs(flat[:shapes[0][1][0] * shapes[0][1][1]]).max() > 0.05   # drawn
        assert (flat[-2 * shapes[2][1][0]:] == 0).all()                        # biases


def test_split_cuts_a_layer_vector_into_views_and_refuses_a_wrong_size():
    shapes = fused.layer_shapes("gru", 2, 3)               # 6 rows: (6,3) (6,2) (6,) (6,)
    vector = nd.arange(18 + 12 + 6 + 6)
    pieces = fused.split(vector, shapes)
    assert {k: v.shape for k, v in pieces.items()} == dict(shapes)
    assert pieces["h2h_weight"][0, 0].asscalar() == 18 and pieces["h2h_bias"][-1].asscalar() == 41
    pieces["i2h_bias"][:] = -1                              # a view: writes reach the vector
    assert (vector[30:36].asnumpy() == -1).all()
    with pytest.raises(ValueError, match="41 values does not hold"):
        fused.split(nd.arange(41), shapes)


def test_a_gluon_layers_four_arrays_per_layer_load_and_compute_what_that_layer_computes():
    """What a word checkpoint held before the flat layout: a ``gluon.rnn.LSTM``'s own
    Parameters under ``rnn.lL_i2h_weight`` …  (``merge_layer_arrays``, via
    ``load_named_parameters``). Made by Gluon here, not by cutting our own vectors."""
    mx.random.seed(2)
    lm = build_word_lm("lstm", 9, 4, 3, num_layers=2)
    layer = gluon_rnn.LSTM(3, 2, input_size=4)
    layer.initialize(mx.init.Uniform(0.5))                 # values unlike the model's
    legacy = {name: a for name, a in lm.named_parameters().items() if not name.startswith("rnn.")}
    legacy.update({f"rnn.{name}": p.data() for name, p in layer_parameters(layer).items()})
    assert {"rnn.l1_i2h_weight", "rnn.l1_h2h_bias"} <= set(legacy)
    lm.load_named_parameters(legacy)
    rs = np.random.RandomState(5)
    emb = nd.array(rs.normal(size=(5, 2, 4)))
    state = [nd.array(rs.normal(size=(2, 2, 3))) for _ in range(2)]
    ours, theirs = lm.model.rnn(emb, state), layer(emb, state)
    # The same products on the same values, per layer: the same bits (as above).
    for a, b in zip([ours[0]] + ours[1], [theirs[0]] + theirs[1]):
        np.testing.assert_array_equal(a.asnumpy(), b.asnumpy())

    shapes = lm.model.rnn.shapes
    wrong = dict(legacy, **{"rnn.l0_h2h_weight": nd.zeros((12, 4))})
    with pytest.raises(ValueError, match=r"'rnn.l0_h2h_weight' has shape \(12, 4\), the model "
                                         r"needs \(12, 3\)"):
        lm.load_named_parameters(wrong)
    # Left for the name check to report: an incomplete layer, both forms of one layer.
    partial = {k: v for k, v in legacy.items() if k != "rnn.l1_h2h_bias"}
    merged = merge_layer_arrays(partial, shapes)
    assert "rnn.l0_flat" in merged and "rnn.l1_flat" not in merged
    with pytest.raises(ValueError, match=r"missing \['rnn.l1_flat'\].*'rnn.l1_h2h_weight'"):
        lm.load_named_parameters(partial)
    both = dict(legacy, **{"rnn.l0_flat": lm.named_parameters()["rnn.l0_flat"]})
    with pytest.raises(ValueError, match=r"unexpected \['rnn.l0_h2h_bias'"):
        lm.load_named_parameters(both)


def test_the_stacks_initializer_survives_its_json_form():
    """A Parameter's symbol records its initializer as ``dumps()``; MXNet rebuilds it by
    name (``mx.init.create``), shapes and all."""
    stack = fused.Stack("gru", 3, 2, 5)
    for l in range(2):
        recorded = getattr(stack, f"l{l}_flat").init.dumps()
        rebuilt = mx.init.create(recorded)
        assert rebuilt.shapes == stack.shapes[l] == fused.layer_shapes("gru", 3, 5 if l == 0 else 3)
    stack.initialize(mx.init.Uniform(0.2))
    X, state = nd.ones((4, 2, 5)), stack.begin_state(batch_size=2)
    assert [s.shape for s in state] == [(2, 2, 3)]
    assert stack(X, state)[0].shape == (4, 2, 3)
