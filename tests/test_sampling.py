import random

import d2lzh
import mxnet as mx
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from lyricnn.data.sampling import data_iter_consecutive, data_iter_random

SEQ = list(range(50))


def _batches(it):
    return [(X.asnumpy(), Y.asnumpy()) for X, Y in it]


def test_consecutive_matches_the_seed_output():
    batches = _batches(data_iter_consecutive(SEQ, batch_size=3, num_steps=4))
    expected_X = [
        [[0, 1, 2, 3], [16, 17, 18, 19], [32, 33, 34, 35]],
        [[4, 5, 6, 7], [20, 21, 22, 23], [36, 37, 38, 39]],
        [[8, 9, 10, 11], [24, 25, 26, 27], [40, 41, 42, 43]],
    ]
    assert len(batches) == 3
    for (X, Y), ex in zip(batches, expected_X):
        assert X.dtype == np.float32
        np.testing.assert_array_equal(X, ex)
        np.testing.assert_array_equal(Y, np.array(ex) + 1)


def test_random_matches_the_seed_structure_and_python_random():
    random.seed(2019)
    batches = _batches(data_iter_random(SEQ, batch_size=3, num_steps=4))
    assert len(batches) == 4
    starts = [int(row[0]) for X, _ in batches for row in X]
    assert sorted(starts) == list(range(0, 48, 4))
    for X, Y in batches:
        assert X.shape == (3, 4)
        np.testing.assert_array_equal(X, X[:, :1] + np.arange(4))
        np.testing.assert_array_equal(Y, X + 1)
    # The order is exactly Python's random.shuffle of the 12 window numbers.
    random.seed(2019)
    order = list(range(12))
    random.shuffle(order)
    assert starts == [4 * j for j in order]


def test_random_order_repeats_with_the_seed_and_changes_without():
    random.seed(5)
    a = _batches(data_iter_random(SEQ, 3, 4))
    random.seed(5)
    b = _batches(data_iter_random(SEQ, 3, 4))
    c = _batches(data_iter_random(SEQ, 3, 4))
    assert all((x == y).all() for (x, _), (y, _) in zip(a, b))
    assert not all((x == y).all() for (x, _), (y, _) in zip(a, c))


@pytest.mark.parametrize("sampler", [data_iter_random, data_iter_consecutive])
def test_batches_land_on_the_requested_context(sampler):
    for X, Y in sampler(SEQ, 3, 4, ctx=mx.cpu(1)):
        assert X.context == mx.cpu(1) and Y.context == mx.cpu(1)


corpora = st.integers(min_value=2, max_value=400)
sizes = st.integers(min_value=1, max_value=9)


def _enough(length, batch_size, num_steps, consecutive):
    need = batch_size * (num_steps + 1) if consecutive else batch_size * num_steps + 1
    return length >= need


@settings(max_examples=60, deadline=None)
@given(length=corpora, batch_size=sizes, num_steps=sizes, seed=st.integers(0, 2**31))
def test_random_properties_and_equality_with_d2lzh(length, batch_size, num_steps, seed):
    if not _enough(length, batch_size, num_steps, consecutive=False):
        with pytest.raises(ValueError, match="needs at least"):
            list(data_iter_random(list(range(length)), batch_size, num_steps))
        return
    corpus = list(range(length))
    random.seed(seed)
    ours = _batches(data_iter_random(corpus, batch_size, num_steps))
    random.seed(seed)
    theirs = _batches(d2lzh.data_iter_random(corpus, batch_size, num_steps))
    num_windows = (length - 1) // num_steps
    assert len(ours) == len(theirs) == num_windows // batch_size
    seen = []
    for (X, Y), (tX, tY) in zip(ours, theirs):
        np.testing.assert_array_equal(X, tX)
        np.testing.assert_array_equal(Y, tY)
        assert X.shape == Y.shape == (batch_size, num_steps)
        np.testing.assert_array_equal(Y, X + 1)  # corpus is 0..n-1: label = next token
        assert np.all(X[:, 0] % num_steps == 0)
        seen += list(X[:, 0])
    assert len(seen) == len(set(seen))  # no window twice within an epoch
    assert len(seen) == batch_size * len(ours)


@pytest.mark.slow
@settings(max_examples=60, deadline=None)
@given(length=corpora, batch_size=sizes, num_steps=sizes)
def test_consecutive_properties_and_equality_with_d2lzh(length, batch_size, num_steps):
    corpus = list(range(length))
    if not _enough(length, batch_size, num_steps, consecutive=True):
        with pytest.raises(ValueError, match="needs at least"):
            list(data_iter_consecutive(corpus, batch_size, num_steps))
        return
    ours = _batches(data_iter_consecutive(corpus, batch_size, num_steps))
    theirs = _batches(d2lzh.data_iter_consecutive(corpus, batch_size, num_steps))
    batch_len = length // batch_size
    assert len(ours) == len(theirs) == (batch_len - 1) // num_steps
    for i, ((X, Y), (tX, tY)) in enumerate(zip(ours, theirs)):
        np.testing.assert_array_equal(X, tX)
        np.testing.assert_array_equal(Y, tY)
        assert X.shape == Y.shape == (batch_size, num_steps)
        np.testing.assert_array_equal(Y, X + 1)
        if i:  # each row continues where the same row of the previous batch stopped
            np.testing.assert_array_equal(X[:, 0], ours[i - 1][0][:, -1] + 1)
    starts = [X[r, 0] for X, _ in ours for r in range(batch_size)]
    assert len(starts) == len(set(starts))


@pytest.mark.parametrize("sampler", [data_iter_random, data_iter_consecutive])
@pytest.mark.parametrize("name,kwargs", [
    ("batch_size", dict(batch_size=0, num_steps=4)),
    ("batch_size", dict(batch_size=2.0, num_steps=4)),
    ("batch_size", dict(batch_size=True, num_steps=4)),
    ("num_steps", dict(batch_size=2, num_steps=-1)),
    ("num_steps", dict(batch_size=2, num_steps="4")),
])
def test_bad_sizes_name_the_parameter(sampler, name, kwargs):
    with pytest.raises(ValueError, match=name):
        sampler(SEQ, **kwargs).__next__()


@pytest.mark.parametrize("sampler,minimum", [(data_iter_random, 3 * 4 + 1),
                                             (data_iter_consecutive, 3 * 5)])
def test_too_short_corpus_names_the_minimum(sampler, minimum):
    with pytest.raises(ValueError, match=f"at least {minimum}"):
        next(sampler(list(range(minimum - 1)), 3, 4))
    assert len(list(sampler(list(range(minimum)), 3, 4))) == 1


# -- issue 12: ctx misuse, NumPy sizes, bad corpora ---------------------------------


@pytest.mark.parametrize("sampler", [data_iter_random, data_iter_consecutive])
def test_ctx_string_cpu_is_resolved(sampler):
    batches = list(sampler(SEQ, 3, 4, ctx="cpu"))  # was an AttributeError deep in nd.array
    assert batches and all(X.context == mx.cpu() and Y.context == mx.cpu() for X, Y in batches)
    assert _batches(sampler(SEQ, 3, 4, ctx="cpu"))[0][0].shape == (3, 4)


@pytest.mark.parametrize("sampler", [data_iter_random, data_iter_consecutive])
@pytest.mark.parametrize("ctx, message", [
    ("tpu", "ctx must be None, 'cpu', 'gpu', 'cpu:N', 'gpu:N' or an mx.Context, got 'tpu'"),
    (0, "ctx must be None, 'cpu', 'gpu', 'cpu:N', 'gpu:N' or an mx.Context, got 0 (int)"),
    ([mx.cpu()], "ctx must be None, 'cpu', 'gpu', 'cpu:N', 'gpu:N' or an mx.Context, got [cpu(0)] (list); "
                 "pass one context, not a list"),
])
def test_bad_ctx_is_a_value_error_at_the_call(sampler, ctx, message):
    with pytest.raises(ValueError) as err:
        sampler(SEQ, 3, 4, ctx=ctx)  # at the call: no next() needed
    assert str(err.value) == message


@pytest.mark.parametrize("sampler", [data_iter_random, data_iter_consecutive])
def test_numpy_sizes_give_the_same_batches(sampler):
    random.seed(3)
    plain = _batches(sampler(SEQ, 3, 4))
    random.seed(3)
    numpy_sized = _batches(sampler(np.array(SEQ), np.int64(3), np.int32(4)))
    assert len(plain) == len(numpy_sized) > 0
    for (a, b), (c, d) in zip(plain, numpy_sized):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)


@pytest.mark.parametrize("sampler", [data_iter_random, data_iter_consecutive])
def test_iterators_and_ndarrays_are_accepted_as_corpora(sampler):
    random.seed(1)
    expected = _batches(sampler(SEQ, 2, 3))
    random.seed(1)
    assert len(_batches(sampler(iter(SEQ), 2, 3))) == len(expected)
    random.seed(1)
    got = _batches(sampler(mx.nd.array(SEQ), 2, 3))
    np.testing.assert_array_equal(got[0][0], expected[0][0])


@pytest.mark.parametrize("sampler", [data_iter_random, data_iter_consecutive])
@pytest.mark.parametrize("corpus, message", [
    ("abcdefghijklmnopqrstuvwxyz", "corpus_indices must be a sequence of token indices, got a "
                                   "string; encode it first"),
    ([0, 1, -2] + SEQ, "corpus_indices must be >= 0, found -2"),
    ([0.5] + SEQ, "corpus_indices must hold integer token indices, got dtype float64"),
    (["a"] * 50, "corpus_indices must hold integer token indices, got dtype <U1"),
    ([[0, 1]] * 30, "corpus_indices must be a flat sequence of token indices, got shape (30, 2)"),
    (5, "corpus_indices must be a sequence of token indices, got 5 (int)"),
])
def test_bad_corpus_indices_are_named(sampler, corpus, message):
    with pytest.raises(ValueError) as err:
        sampler(corpus, 2, 3)
    assert str(err.value).startswith(message)


def test_batch_to_device_copies_values_to_the_device_without_aliasing_the_source():
    from lyricnn.data.sampling import batch_to_device
    source = np.arange(12, dtype=np.float32).reshape(3, 4)
    for ctx in (None, mx.cpu(), mx.cpu(1)):
        out = batch_to_device(source[:, 1:3], ctx)      # a non-contiguous view
        assert out.dtype == np.float32 and out.shape == (3, 2)
        assert out.context == (ctx or mx.context.current_context())
        np.testing.assert_array_equal(out.asnumpy(), source[:, 1:3])
    out = batch_to_device(source)                         # contiguous float32: still a copy
    source[0, 0] = 99.0
    assert source.flags.writeable and out.asnumpy()[0, 0] == 0.0
