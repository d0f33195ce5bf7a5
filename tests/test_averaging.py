"""NT-ASGD (``lyricnn.training.averaging``): the trigger, the mean of the iterates."""
import mxnet as mx
import numpy as np
import pytest
from mxnet import nd

from lyricnn.models import fused
from lyricnn.models.word import build_word_lm
from lyricnn.training.averaging import Averaging, triggered
from lyricnn.training.loop import History, train_epochs
from tests.float_error import gamma


def mean_bound(count, iterates):
    """How far float32's running mean ``m += (w - m) / k`` (k = 1..count: a difference, a
    product by the rounded 1/k, a sum: 4 roundings per step, each of a value no larger
    than the largest iterate) can be from the exact mean: ``gamma(4 count)`` times the
    largest magnitude (docs/TOLERANCES.md's notation)."""
    return gamma(4 * count) * max(float(np.abs(it).max()) for it in iterates)


@pytest.mark.parametrize("valid, n, fires", [
    ([10, 9, 8, 9], 1, False),          # 9 is not worse than min(10, 9)
    ([10, 9, 8, 8.5, 9.5], 1, True),    # 9.5 > min(10, 9, 8)
    ([10, 9, 8, 8.5, 9.5], 3, False),   # only epoch 1 lies before the last 3: 9.5 < 10
    ([10, 11], 1, False),               # needs more than n + 1 epochs
    ([10, 9, 11], 1, True),             # 11 > min(10)
])
def test_the_trigger_is_awd_lstms(valid, n, fires):
    assert triggered(valid, n) is fires


def test_the_averaged_weights_are_the_mean_of_the_iterates():
    lm = build_word_lm("lstm", 5, 3, 3)
    avg = Averaging(1)
    rs = np.random.RandomState(0)
    iterates = []
    for _ in range(3):   # three hand-made iterates, each one SGD step's weights
        for w in lm.weights():
            w[:] = nd.array(rs.normal(size=w.shape))
        iterates.append([w.asnumpy().copy() for w in lm.weights()])
        avg.add(lm.weights())
    last = [w.asnumpy().copy() for w in lm.weights()]
    with avg.applied(lm):
        for w, *its in zip(lm.weights(), *iterates):
            exact = (its[0].astype(np.float64) + its[1] + its[2]) / 3   # by hand
            np.testing.assert_allclose(w.asnumpy(), exact, rtol=0, atol=mean_bound(3, its))
            assert np.abs(w.asnumpy() - its[-1]).max() > 100 * mean_bound(3, its)
        assert set(avg.iterate) == {n for n, a in lm.named_parameters().items()}
    for w, l in zip(lm.weights(), last):   # the SGD iterate is back after the block
        np.testing.assert_array_equal(w.asnumpy(), l)


def test_training_validates_the_mean_of_every_update_since_the_trigger():
    mx.random.seed(7)
    rs = np.random.RandomState(3)
    train, valid = rs.randint(0, 12, 400).tolist(), rs.randint(0, 12, 60).tolist()
    lm = build_word_lm("lstm", 12, 6, 6)
    avg = Averaging(1)
    avg.active = True   # from the first update
    seen = []

    def on_batch(tokens):   # after each update (and its addition to the mean)
        seen.append([w.asnumpy().astype(np.float64) for w in lm.weights()])

    def on_epoch_end(epoch, history):
        for w, column in zip(lm.weights(), zip(*seen)):
            np.testing.assert_allclose(w.asnumpy(), np.mean(column, axis=0), rtol=0,
                                       atol=mean_bound(len(seen), column))
        assert history.averaged[-1] == len(seen)
        checked.append(epoch)

    checked = []
    history = train_epochs(lm, train, False, 5, 4, 1.0, 1.0, range(1, 3), valid_indices=valid,
                           on_epoch_end=on_epoch_end, on_batch=on_batch, averaging=avg)
    assert checked == [1, 2] and isinstance(history, History)
    # After training, lm trains on (holds) the SGD iterate, not the mean.
    np.testing.assert_array_equal(lm.weights()[0].asnumpy(), seen[-1][0].astype(np.float32))


def test_the_checkpoints_iterate_file_is_checked_before_use(tmp_path):
    from lyricnn.run.checkpoint import _params_bytes
    from lyricnn.run.parse import parse_iterate
    from lyricnn.run.store import ITERATE, CheckpointError
    lm = build_word_lm("lstm", 6, 3, 3)
    named = {n: a for n, a in lm.named_parameters().items()}
    good = _params_bytes(named)
    averaged, plain = History(), History()
    averaged.append(1, 5.0, 1.0, 5.0, 1.0, averaged=12)
    plain.append(1, 5.0, 1.0, 5.0, 1.0)
    assert set(parse_iterate(tmp_path, {ITERATE: good}, lm, averaged)) == set(named)
    assert parse_iterate(tmp_path, {}, lm, plain) is None
    # An iterate saved before the flat layer vectors (each layer as four arrays) is read
    # under today's names.
    legacy = {n: a for n, a in named.items() if not n.startswith("rnn.")}
    legacy.update({f"rnn.l0_{part}": piece for part, piece in
                   fused.split(named["rnn.l0_flat"], lm.model.rnn.shapes[0]).items()})
    read = parse_iterate(tmp_path, {ITERATE: _params_bytes(legacy)}, lm, averaged)
    assert set(read) == set(named)
    np.testing.assert_array_equal(read["rnn.l0_flat"].asnumpy(), named["rnn.l0_flat"].asnumpy())
    cases = [({}, averaged, "missing: history.json says 12 updates"),
             ({ITERATE: good}, plain, "present, but history.json says no update"),
             ({ITERATE: b"not a parameter file"}, averaged, "not an MXNet parameter file"),
             ({ITERATE: _params_bytes({n: a[:1] for n, a in named.items()})}, averaged,
              "holds"),
             ({ITERATE: _params_bytes({("x" + n): a for n, a in named.items()})}, averaged,
              "are not the model's weights"),
             ({ITERATE: _params_bytes({n: a * float("nan") for n, a in named.items()})},
              averaged, "are not the model's weights")]
    for contents, history, message in cases:
        with pytest.raises(CheckpointError, match=message):
            parse_iterate(tmp_path, contents, lm, history)
