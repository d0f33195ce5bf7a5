"""The rnn-scratch chapter's own training loop (6.4), run with ``d2l`` = lyricnn or d2lzh.

The chapter defines ``train_and_predict_rnn`` itself and calls the package every
minibatch: ``d2l.data_iter_random`` for the batches, ``d2l.to_onehot`` for the
inputs and ``d2l.sgd`` for the update (its ``grad_clipping`` and ``predict_rnn``
are the chapter's own). So lyricnn's argument checks in those three functions
run on every minibatch, and this measures what they cost against d2lzh's
unchecked ones. Each run is a fresh process (the package loaded as a reader loads
it, d2lzh under lyricnn's OpenMP settings so that only the package differs), the
two alternating round by round, which goes first alternating too; medians of s/epoch:

    .venv/bin/python benchmarks/bench_book_loop.py --rounds 2 --epochs 20

``--quick``: 2 epochs on 2,000 characters, one round (a smoke test).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.machine import cpu_model  # noqa: E402

# The chapter's code as the tutorial gives it (its own grad_clipping; d2l.* for the rest).
CHAPTER = r'''
import json, math, sys, time
sys.path.insert(0, {root!r})
import lyricnn                       # lyricnn's process settings for both packages
import {package} as d2l
from mxnet import autograd, nd
from mxnet.gluon import loss as gloss
from tests.oracle import book_notebook as book

corpus_indices, char_to_idx, idx_to_char, vocab_size = lyricnn.load_data_jay_lyrics(
    num_chars={num_chars})
ctx, num_hiddens = lyricnn.try_gpu(), 256
lyricnn.set_seed(0)
get_params = book.make_get_params(vocab_size, num_hiddens, ctx)


def grad_clipping(params, theta, ctx):
    norm = nd.array([0], ctx)
    for param in params:
        norm += (param.grad ** 2).sum()
    norm = norm.sqrt().asscalar()
    if norm > theta:
        for param in params:
            param.grad[:] *= theta / norm


def train(rnn, init_rnn_state, num_epochs, num_steps=35, lr=1e2, clipping_theta=1e-2,
          batch_size=32):
    params = get_params()
    loss = gloss.SoftmaxCrossEntropyLoss()
    seconds = []
    for epoch in range(num_epochs):
        l_sum, n, start = 0.0, 0, time.time()
        for X, Y in d2l.data_iter_random(corpus_indices, batch_size, num_steps, ctx):
            state = init_rnn_state(batch_size, num_hiddens, ctx)
            with autograd.record():
                inputs = d2l.to_onehot(X, vocab_size)
                outputs, state = rnn(inputs, state, params)
                outputs = nd.concat(*outputs, dim=0)
                y = Y.T.reshape((-1,))
                l = loss(outputs, y).mean()
            l.backward()
            grad_clipping(params, clipping_theta, ctx)
            d2l.sgd(params, lr, 1)
            l_sum += l.asscalar() * y.size
            n += y.size
        seconds.append(time.time() - start)
    return seconds, math.exp(l_sum / n)


train(book.rnn, book.init_rnn_state, 1)                       # warm-up, not counted
seconds, ppl = train(book.rnn, book.init_rnn_state, {epochs})
print(json.dumps({{"seconds": seconds, "perplexity": ppl}}))
'''


def run(package, epochs, num_chars):
    code = CHAPTER.format(root=str(ROOT), package=package, epochs=epochs, num_chars=num_chars)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, env=dict(os.environ), check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    rounds, epochs, chars = (1, 2, 2000) if args.quick else (args.rounds, args.epochs, 10000)
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; "
          f"the chapter's loop, "
          f"{epochs} epochs x {rounds} rounds, {chars} characters", flush=True)
    results = {"d2lzh": [], "lyricnn": []}
    for i in range(rounds):
        # Alternating which goes first: the second process of a pair may find the
        # machine warmer or busier.
        for package in (("d2lzh", "lyricnn") if i % 2 == 0 else ("lyricnn", "d2lzh")):
            start = time.time()
            out = run(package, epochs, chars)
            results[package].append(statistics.median(out["seconds"]))
            print(f"  {package:<8} {results[package][-1]:.3f} s/epoch (median), perplexity "
                  f"{out['perplexity']:.3f}, {time.time() - start:.0f} s", flush=True)
    d2lzh, ours = (statistics.median(results[k]) for k in ("d2lzh", "lyricnn"))
    print(f"the chapter's loop: d2lzh {d2lzh:.3f} s/epoch, lyricnn {ours:.3f} s/epoch: "
          f"lyricnn {d2lzh / ours:.2f}x d2lzh's speed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
