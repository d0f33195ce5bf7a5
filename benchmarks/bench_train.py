"""Seconds per training epoch: d2lzh (the book) against lyricnn, side by side.

Both run in this one process on the same corpus, hyperparameters and device,
alternating round by round so that machine noise hits both alike.  Prints
seconds per epoch, the ratio d2lzh / lyricnn, and for the scratch RNN a lower
bound: the model's FLOPs per epoch over the GEMM throughput measured here.

    .venv/bin/python benchmarks/bench_train.py                 # scratch + gluon
    .venv/bin/python benchmarks/bench_train.py --models scratch --rounds 5
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_train.py
"""
import argparse
import contextlib
import io
import os
import statistics
import sys
import time
from pathlib import Path

# lyricnn first: it picks MXNet's OpenMP thread count before MXNet loads, and
# d2lzh then runs with the very same setting.
import lyricnn  # noqa: E402  (isort: skip)
import d2lzh
import mxnet as mx
from mxnet import nd
from mxnet.gluon import rnn as gluon_rnn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import book_notebook as book  # noqa: E402

HIDDEN, STEPS, BATCH, LR, CLIP = 256, 35, 32, 1e2, 1e-2


def timed(fn, epochs):
    """Seconds per epoch of ``fn()``, its printing swallowed."""
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        fn()
    nd.waitall()
    return (time.perf_counter() - start) / epochs


def scratch_runners(data, epochs, ctx, random_iter):
    ci, c2i, i2c, V = data
    common = (HIDDEN, V, ctx, ci, i2c, c2i, random_iter, epochs, STEPS, LR, CLIP, BATCH,
              epochs + 1, 1, ["分开"])
    return {
        "d2lzh": lambda: d2lzh.train_and_predict_rnn(
            book.rnn, book.make_get_params(V, HIDDEN, ctx), book.init_rnn_state, *common),
        "lyricnn": lambda: lyricnn.train_and_predict_rnn(
            lyricnn.rnn, lyricnn.params_getter(V, HIDDEN, ctx), lyricnn.init_rnn_state,
            *common),
    }


def gluon_runners(data, epochs, ctx):
    ci, c2i, i2c, V = data
    common = (HIDDEN, V, ctx, ci, i2c, c2i, epochs, STEPS, LR, CLIP, BATCH, epochs + 1, 1,
              ["分开"])
    return {
        "d2lzh": lambda: d2lzh.train_and_predict_rnn_gluon(
            d2lzh.RNNModel(gluon_rnn.RNN(HIDDEN), V), *common),
        "lyricnn": lambda: lyricnn.train_and_predict_rnn_gluon(
            lyricnn.RNNModel(gluon_rnn.RNN(HIDDEN), V), *common),
    }


def torch_runner(data, epochs):
    """The Gluon experiment in PyTorch: nn.RNN (ReLU) + Linear, plain SGD, global-norm
    clipping, consecutive batches from lyricnn's sampler, state detached per minibatch.
    ``None`` when torch is not installed (it is an optional extra: ``.[bench]``)."""
    try:
        import torch
    except ImportError:
        return None
    ci, _, _, V = data
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))

    class TorchRNN(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = torch.nn.RNN(V, HIDDEN, nonlinearity="relu")
            self.dense = torch.nn.Linear(HIDDEN, V)

        def forward(self, X, state):  # X: (batch, steps) int64
            Y, state = self.rnn(torch.nn.functional.one_hot(X.T, V).float(), state)
            return self.dense(Y.reshape(-1, HIDDEN)), state

    def run():
        model = TorchRNN()
        opt = torch.optim.SGD(model.parameters(), lr=LR)
        loss = torch.nn.CrossEntropyLoss()
        for _ in range(epochs):
            state = torch.zeros(1, BATCH, HIDDEN)
            for X, Y in lyricnn.data_iter_consecutive(ci, BATCH, STEPS):
                X = torch.from_numpy(X.asnumpy().astype("int64"))
                Y = torch.from_numpy(Y.asnumpy().astype("int64"))
                logits, state = model(X, state.detach())
                l = loss(logits, Y.T.reshape(-1))
                opt.zero_grad()
                l.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
                opt.step()
    return run


def gemm_gflops(vocab_size, repeats=20):
    """FullyConnected throughput at the output layer's shape, GFLOP/s (best of 3)."""
    H = nd.random.normal(shape=(STEPS * BATCH, HIDDEN))
    W = nd.random.normal(shape=(vocab_size, HIDDEN))
    b = nd.zeros(vocab_size)
    flops = 2 * STEPS * BATCH * HIDDEN * vocab_size
    best = 0.0
    for _ in range(3):
        nd.FullyConnected(H, W, b, num_hidden=vocab_size).wait_to_read()
        start = time.perf_counter()
        for _ in range(repeats):
            out = nd.FullyConnected(H, W, b, num_hidden=vocab_size)
        out.wait_to_read()
        best = max(best, flops * repeats / (time.perf_counter() - start) / 1e9)
    return best


def scratch_flops_per_epoch(num_tokens, vocab_size):
    """GEMM FLOPs of lyricnn's scratch RNN per epoch (forward + two backward products)."""
    batches = ((num_tokens - 1) // STEPS) // BATCH
    per_batch = 2 * STEPS * BATCH * (HIDDEN * HIDDEN + HIDDEN * vocab_size)
    return 3 * per_batch * batches


def compare(name, runners, epochs, rounds):
    times = {k: [] for k in runners}
    for _ in range(rounds):
        for key, run in runners.items():
            times[key].append(timed(run, epochs))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{name:<22} d2lzh {med['d2lzh']:.3f} s/epoch   lyricnn {med['lyricnn']:.3f} s/epoch"
          f"   ratio {med['d2lzh'] / med['lyricnn']:.2f}x   "
          f"(median of {rounds} rounds x {epochs} epochs)")
    return med


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="scratch,gluon",
                        help="comma-separated: scratch, gluon (default: both)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per timed run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    args = parser.parse_args()
    ctx = mx.cpu()
    data = lyricnn.load_data_jay_lyrics()
    print(f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '(unset)')}, "
          f"hidden {HIDDEN}, steps {STEPS}, batch {BATCH}, vocab {data[3]}")
    models = args.models.split(",")
    if "scratch" in models:
        for random_iter in (True, False):
            label = "scratch, " + ("random" if random_iter else "consecutive")
            med = compare(label, scratch_runners(data, args.epochs, ctx, random_iter),
                          args.epochs, args.rounds)
        gflops = gemm_gflops(data[3])
        bound = scratch_flops_per_epoch(len(data[0]), data[3]) / (gflops * 1e9)
        print(f"{'scratch lower bound':<22} {bound:.3f} s/epoch = "
              f"{scratch_flops_per_epoch(len(data[0]), data[3]) / 1e9:.2f} GFLOP / "
              f"{gflops:.0f} GFLOP/s (FullyConnected here); lyricnn is at "
              f"{bound / med['lyricnn']:.0%} of it")
    if "gluon" in models:
        runners = gluon_runners(data, args.epochs, ctx)
        med = compare("gluon rnn.RNN", runners, args.epochs, args.rounds)
        torch_run = torch_runner(data, args.epochs)
        if torch_run is None:
            print("torch not installed: pip install -e '.[bench]' to compare with PyTorch")
        else:
            t = statistics.median(timed(torch_run, args.epochs) for _ in range(args.rounds))
            print(f"{'torch nn.RNN(relu)':<22} {t:.3f} s/epoch   lyricnn gluon / torch "
                  f"{med['lyricnn'] / t:.2f}x the time   d2lzh / torch {med['d2lzh'] / t:.2f}x")


if __name__ == "__main__":
    main()
