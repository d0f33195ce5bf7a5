"""lyricnn.training.parallel: several devices (mx.cpu(0), mx.cpu(1)) and dist_sync workers give
the parameters of one device on the whole minibatch."""
import os
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

import lyricnn as d2l
from lyricnn.models.build import build_lm
from lyricnn.training.parallel import DataParallel, check_divisible
from lyricnn.training.loop import run_epoch, train_epochs
from lyricnn.models.word import build_word_lm
from lyricnn.run.task import train_word_lm

#: Every test here starts processes or trains for seconds: left out of make test-fast.
pytestmark = pytest.mark.slow

from float_error import (TRAJECTORY64_RTOL, as_float64, assert_same_trajectory, assert_within,
                         clipped_step_reference, float64_lm)

HERE = os.path.dirname(os.path.abspath(__file__))
TWO = [mx.cpu(0), mx.cpu(1)]
CORPUS = d2l.load_data_jay_lyrics()
# Several devices sum the gradients in another order than one device, and training
# amplifies rounding: whole trainings are compared in float64, with a tolerance argued
# in float_error.py (TRAJECTORY64_RTOL), and one float32 step against the exact step.
RTOL = TRAJECTORY64_RTOL


def _params(lm):
    return {k: v.asnumpy() for k, v in lm.named_parameters().items()}


def assert_same_params(a, b, rtol=RTOL, start=None):
    assert_same_trajectory(a, b, start, rtol)


def _train(model, ctx, random_iter, kvstore=None, epochs=2):
    """Two epochs (32 clipped SGD steps) in float64; ``(weights, history, start)``."""
    ci, _, _, V = CORPUS
    d2l.set_seed(7)
    lm = float64_lm(model, V, 16, ctx=None if ctx is None else ctx[0])
    start = _params(lm)
    history = train_epochs(lm, ci[:800], random_iter, 6, 8, 1.0,
                           1e-2 if model.endswith("scratch") else 0.5, range(1, epochs + 1),
                           ctx=ctx, kvstore=kvstore)
    return _params(lm), history, start


@pytest.mark.parametrize("model", ["rnn-scratch", "rnn", "lstm-scratch"])
@pytest.mark.parametrize("random_iter", [True, False])
def test_two_devices_equal_one_device_on_the_whole_batch(model, random_iter):
    one, h1, start = _train(model, None, random_iter)
    two, h2, _ = _train(model, TWO, random_iter)
    assert_same_params(one, two, start=start)
    np.testing.assert_allclose(h1.perplexity, h2.perplexity, rtol=RTOL)


@pytest.mark.parametrize("ctx", [None, TWO])
def test_one_float32_step_is_the_exact_step_on_one_device_or_two(ctx):
    """The float32 path itself: one step (100 characters, 8 rows of 12, 6 steps: one
    minibatch) lands within the float32 rounding bound of the exact float64 step."""
    ci, _, _, V = CORPUS
    d2l.set_seed(7)
    lm = build_lm("rnn", V, 16)
    start = _params(lm)
    (X, Y), = list(d2l.data_iter_consecutive(ci[:100], 8, 6))
    train_epochs(lm, ci[:100], False, 6, 8, 1e2, 1e-2, range(1, 2), ctx=ctx)
    w1, bound, _, _ = clipped_step_reference(start, X.asnumpy(), Y.asnumpy(), 1e2, 1e-2, 2)
    assert_within(_params(lm), w1, bound)


@pytest.mark.parametrize("model", ["rnn-scratch", "rnn"])
def test_replicas_stay_identical_and_move_from_the_start(model):
    """After training, every replica holds the same weights on its own device."""
    ci, _, _, V = CORPUS
    d2l.set_seed(3)
    lm = build_lm(model, V, 16)
    start = _params(lm)
    par = DataParallel(lm, TWO)
    run_epoch(par, d2l.data_iter_consecutive(ci[:400], 8, 6), True, 1.0, 0.5)
    assert [rep.ctx for rep in par.replicas] == TWO and par.replicas[0] is lm
    for w0, w1 in zip(par.replicas[0].weights(), par.replicas[1].weights()):
        assert w1.context == mx.cpu(1)
        np.testing.assert_array_equal(w0.asnumpy(), w1.asnumpy())
    assert any(np.abs(start[k] - v).max() > 1e-3 for k, v in _params(lm).items())


def test_gluon_replicas_start_from_the_models_own_device():
    """A model trained on 2 devices, then loaded on its first device only: a new 2-device
    run starts from what was loaded (Gluon's reset_ctx would average the stale copy in)."""
    ci, _, _, V = CORPUS
    lm = build_lm("rnn", V, 16)
    train_epochs(lm, ci[:400], False, 6, 8, 1.0, 0.5, range(1, 2), ctx=TWO)
    fresh = {k: np.full(v.shape, 0.01, dtype=np.float32) for k, v in _params(lm).items()}
    lm.load_named_parameters({k: mx.nd.array(v) for k, v in fresh.items()})
    par = DataParallel(lm, TWO)
    for rep in par.replicas:
        np.testing.assert_array_equal(rep.weights()[0].asnumpy(), 0.01)


def test_the_books_trainers_accept_a_list_of_devices(capsys):
    """In float64 (the book's functions take float64 parameters and models as they are)."""
    ci, c2i, i2c, V = CORPUS

    def init_state64(*args):
        return tuple(s.astype("float64") for s in d2l.init_rnn_state(*args))

    runs = []
    for ctx in (mx.cpu(), TWO):
        d2l.set_seed(5)
        params = [p.astype("float64") for p in d2l.get_params(V, 16)]
        for p in params:
            p.attach_grad()
        got = []
        history = d2l.train_and_predict_rnn(
            d2l.rnn, lambda: params, init_state64, 16, V, ctx, ci[:600], i2c, c2i, False,
            2, 6, 1.0, 1e-2, 8, 2, 5, ["分开"])
        got.append(history.perplexity)
        d2l.set_seed(5)
        # tanh: MXNet's float64 kernel rounds ReLU outputs to float32 (float_error.float64_lm)
        model = d2l.RNNModel(mx.gluon.rnn.RNN(16, activation="tanh"), V)
        model.cast("float64")
        history = d2l.train_and_predict_rnn_gluon(model, 16, V, ctx, ci[:600], i2c, c2i, 2, 6,
                                                  1.0, 0.5, 8, 2, 5, ["分开"])
        assert model.dense.weight.data(mx.cpu()).dtype == np.float64
        got.append(history.perplexity)
        runs.append(got)
    np.testing.assert_allclose(runs[0], runs[1], rtol=RTOL)
    assert capsys.readouterr().out.count("epoch 2, perplexity") == 4


def test_word_level_two_devices_equal_one():
    words = ("the cat sat on the mat <eos> a dog ran to the cat <eos> " * 30).split()
    vocab = {w: i for i, w in enumerate(sorted(set(words)))}
    train = [vocab[w] for w in words]
    out = []
    for ctx in (None, TWO):
        d2l.set_seed(2)
        lm = as_float64(build_word_lm("lstm", len(vocab), 8, 8, num_layers=2,
                                      ctx=None if ctx is None else ctx[0]))
        start = _params(lm)
        history = train_word_lm(lm, train, train[:80], range(1, 3), batch_size=4, num_steps=5,
                                lr=1.0, clipping_theta=0.5, lr_decay=1, ctx=ctx)
        out.append((_params(lm), history))
    assert_same_params(out[0][0], out[1][0], start=start)
    np.testing.assert_allclose(out[0][1].valid_perplexity, out[1][1].valid_perplexity,
                               rtol=RTOL)


def test_a_batch_that_does_not_split_evenly_is_refused_before_training():
    ci, _, _, V = CORPUS
    lm = build_lm("rnn", V, 8)
    before = _params(lm)
    with pytest.raises(ValueError, match=r"batch_size 7 cannot be split evenly over 2 device\(s\) "
                                         r"x 1 worker\(s\) = 2 shards; use a multiple of 2"):
        train_epochs(lm, ci[:400], False, 6, 7, 1.0, 0.5, range(1, 2), ctx=TWO)
    assert all(np.array_equal(before[k], v) for k, v in _params(lm).items())
    with pytest.raises(ValueError, match="e.g. 30"):
        check_divisible(31, 3, 3, 1)


def test_bad_device_lists_are_refused():
    ci, _, _, V = CORPUS
    lm = build_lm("rnn-scratch", V, 8)
    with pytest.raises(ValueError, match="lists a device twice"):
        DataParallel(lm, [mx.cpu(0), mx.cpu(0)])
    with pytest.raises(ValueError, match=r"the model lives on cpu\(0\) but ctx starts with "
                                         r"cpu\(1\); build the model on the first device"):
        DataParallel(lm, [mx.cpu(1), mx.cpu(0)])
    with pytest.raises(ValueError, match="kvstore must be one of 'local', 'device', 'dist_sync'"):
        DataParallel(lm, TWO, "dist_async")


def test_context_lists_parse():
    assert d2l.resolve_ctx_list("cpu:0, cpu:1") == TWO
    assert d2l.resolve_ctx_list(mx.cpu(1)) == [mx.cpu(1)]
    assert d2l.resolve_ctx_list(["cpu", "cpu:1"]) == TWO
    with pytest.raises(ValueError, match="ctx 'cpu:x' is not a device"):
        d2l.resolve_ctx_list("cpu:0,cpu:x")
    with pytest.raises(ValueError, match="empty list"):
        d2l.resolve_ctx_list([])
    with pytest.raises(ValueError, match=r"cannot use gpu\(7\).*cpu:0,cpu:1"):
        d2l.resolve_ctx_list("gpu:7")


# ------------------------------------------------------- dist_sync on loopback

def _worker_outputs(tmp_path, ctx=None):
    """Run tests/parallel_worker.py as 2 dist_sync workers (1 server) through the launcher."""
    from lyricnn.training.launch import launch
    import io
    out = io.StringIO()
    command = [sys.executable, os.path.join(HERE, "parallel_worker.py"), str(tmp_path),
               "dist_sync"] + ([ctx] if ctx else [])
    code = launch(command, workers=2, servers=1, timeout=240, output=out)
    assert code == 0, out.getvalue()[-3000:]
    return out.getvalue()


@pytest.mark.parametrize("ctx", [None, "cpu:0,cpu:1"])
def test_two_dist_sync_workers_equal_one_process(tmp_path, ctx):
    sys.path.insert(0, HERE)
    try:
        import parallel_worker
    finally:
        sys.path.remove(HERE)
    single = tmp_path / "single"
    single.mkdir()
    parallel_worker.main(str(single), "none")
    _worker_outputs(tmp_path, ctx)   # 2 workers x (1 or 2 devices)
    for name, *_ in parallel_worker.CASES:
        alone = dict(np.load(single / f"{name}-rank0.npz"))
        ranks = [dict(np.load(tmp_path / f"{name}-rank{r}.npz")) for r in (0, 1)]
        np.testing.assert_allclose(alone.pop("_perplexity"), ranks[0].pop("_perplexity"),
                                   rtol=RTOL)
        ranks[1].pop("_perplexity")
        start = {k[len("_start."):]: alone.pop(k) for k in list(alone) if k.startswith("_start.")}
        for r in ranks:
            for k in [k for k in r if k.startswith("_start.")]:
                r.pop(k)
        assert_same_params(alone, ranks[0], start=start)   # float64 (parallel_worker.py)
        for k in alone:   # every worker applied the same update to the same weights
            np.testing.assert_array_equal(ranks[0][k], ranks[1][k])


def test_two_cpu_devices_at_the_books_size_do_not_hang(tmp_path):
    """Regression: with both CPU replicas updating at once, the book's Gluon RNN (256 hidden,
    batch 32) hung MXNet 1.9.1 at 100 % CPU on the second minibatch (DataParallel.update)."""
    script = tmp_path / "run.py"
    script.write_text(
        "import mxnet as mx, lyricnn as d2l\n"
        "from lyricnn.models.build import build_lm\n"
        "from lyricnn.training.loop import train_epochs\n"
        "ci, _, _, V = d2l.load_data_jay_lyrics()\n"
        "lm = build_lm('rnn', V, 256)\n"
        "h = train_epochs(lm, ci[:32 * 35 * 6], False, 35, 32, 1e2, 1e-2, range(1, 2),\n"
        "                 ctx=[mx.cpu(0), mx.cpu(1)])\n"
        "print('perplexity', h.perplexity[-1])\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and "perplexity" in out.stdout, out.stderr


def test_dist_sync_outside_a_launched_job_is_a_clear_error(monkeypatch):
    from lyricnn.training.parallel import kvstore
    monkeypatch.delenv("DMLC_ROLE", raising=False)
    with pytest.raises(ValueError, match="no DMLC_\\* environment: run it under lyricnn launch"):
        kvstore("dist_sync")
