"""The word-level model's fast paths compute exactly what the plain Gluon layers do."""
import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, nd

from lyricnn.models.word import WORD_CELLS, WordRNNModel, build_word_lm


def _reference(net, X, state):
    """The model as written with the Gluon layer called directly (its own concatenation)."""
    emb = net.drop(net.embedding(nd.transpose(X)))
    Y, state = net.rnn(emb, list(state))
    return net.decoder(net.drop(Y).reshape((-3, 0))), state


def _grads(net):
    return {name: p.grad().asnumpy().copy() for name, p in net.collect_params().items()}


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
    results = []
    for forward in (lambda X, s: net(X, s)[:2], lambda X, s: _reference(net, X, s)):
        with autograd.record():
            logits, new_state = forward(X, state)
            total = (logits * head).sum() + sum((s * s).sum() for s in new_state)
        total.backward()
        results.append(([logits.asnumpy()] + [s.asnumpy() for s in new_state], _grads(net)))
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
