import d2lzh
import numpy as np
import pytest
from mxnet import nd
import mxnet as mx

from lyricnn.models.onehot import to_onehot


def test_to_onehot_matches_seed_example():
    X = nd.arange(10).reshape((2, 5))
    inputs = to_onehot(X, 10)
    assert len(inputs) == 5
    for t, step in enumerate(inputs):
        assert step.shape == (2, 10)
        expected = np.zeros((2, 10), dtype=np.float32)
        expected[0, t] = expected[1, t + 5] = 1
        np.testing.assert_array_equal(step.asnumpy(), expected)


def test_to_onehot_equals_d2lzh():
    X = nd.array(np.random.RandomState(0).randint(0, 30, size=(4, 7)))
    ours, theirs = to_onehot(X, 30), d2lzh.to_onehot(X, 30)
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a.asnumpy(), b.asnumpy())


def test_to_onehot_keeps_context():
    X = nd.array([[1, 2], [3, 4]], ctx=mx.cpu(1))
    assert all(step.context == mx.cpu(1) for step in to_onehot(X, 5))


def test_concatenated_matmul_identity():
    # Section 2 of the tutorial: X·W_xh + H·W_hh == [X, H]·[W_xh; W_hh].
    X, W_xh = nd.random.normal(shape=(3, 1)), nd.random.normal(shape=(1, 4))
    H, W_hh = nd.random.normal(shape=(3, 4)), nd.random.normal(shape=(4, 4))
    separate = nd.dot(X, W_xh) + nd.dot(H, W_hh)
    joined = nd.dot(nd.concat(X, H, dim=1), nd.concat(W_xh, W_hh, dim=0))
    # The same 5 products per entry summed in two orders, each within gamma(5) of the exact
    # sum times the sum of their absolute values (float32, u = 2**-24; any order).
    u = 2.0 ** -24
    terms = (np.abs(X.asnumpy()) @ np.abs(W_xh.asnumpy())
             + np.abs(H.asnumpy()) @ np.abs(W_hh.asnumpy()))
    bound = 2 * (5 * u / (1 - 5 * u)) * terms
    assert (np.abs(separate.asnumpy() - joined.asnumpy()) <= bound).all()


# -- issue 12: a bad size is a ValueError naming size, before MXNet ------------------


@pytest.mark.parametrize("size, shown", [(-1, "-1"), (0, "0"), (True, "True (bool)"),
                                         (2.0, "2.0 (float)"), ("10", "'10' (str)")])
def test_bad_size_names_size(size, shown, monkeypatch):
    def no_mxnet(*args, **kwargs):
        raise AssertionError("MXNet was called")

    monkeypatch.setattr(nd, "one_hot", no_mxnet)
    with pytest.raises(ValueError) as err:
        to_onehot(nd.zeros((2, 3)), size)
    assert str(err.value) == (f"size must be an integer between 1 and 16777216, got {shown}; "
                              "size is the vocabulary size (vocab_size); float32 indices are "
                              "exact below 2**24")


def test_numpy_size_is_accepted():
    steps = to_onehot(nd.array([[0, 1, 2]]), np.int64(4))
    assert len(steps) == 3 and steps[0].shape == (1, 4)
    np.testing.assert_array_equal(steps[2].asnumpy(), [[0, 0, 1, 0]])


@pytest.mark.parametrize("X, shown", [(np.zeros((2, 3)), "ndarray of shape (2, 3)"),
                                      (nd.zeros((6,)), "NDArray of shape (6,)"),
                                      ([[0, 1]], "list")])
def test_X_must_be_a_2d_ndarray(X, shown):
    with pytest.raises(ValueError) as err:
        to_onehot(X, 4)
    assert str(err.value) == f"X must be a 2-D NDArray (batch_size, num_steps), got {shown}"


@pytest.mark.parametrize("steps", [1, 5])
def test_sparse_one_hot_has_the_same_values(steps):
    X = nd.array(np.random.RandomState(0).randint(0, 7, (3, steps)))
    dense, sparse = to_onehot(X, 7), to_onehot(X, 7, sparse=True)
    assert len(sparse) == steps and all(s.stype == "csr" for s in sparse)
    for d, s in zip(dense, sparse):
        np.testing.assert_array_equal(d.asnumpy(), s.asnumpy())
