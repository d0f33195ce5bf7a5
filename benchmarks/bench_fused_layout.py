"""The layout of the fused kernel's parameter vector, on both callers of ``fused.run``.

MXNet's ``RNN`` operator reads one flat vector of every weight and bias.
``lyricnn.models.fused.run`` concatenates them as ``(-1, gates·h)`` blocks;
Gluon's own layer (and lyricnn's scratch path before the one-stack redesign)
concatenates 1-D views. This times one training minibatch (forward + backward,
``wait_to_read``) of each model through both layouts, alternating, in one
process, and prints the medians:

    .venv/bin/python benchmarks/bench_fused_layout.py --rounds 7

Models: the book's Gluon RNN (6.5: vocabulary 1027, 256 hidden, batch 32, 35
steps), the book's scratch RNN (the same sizes, fused), the word LSTM 2 x 200
and the tied 2 x 650 (vocabulary 10,000, batch 20, 35 steps). ``--quick``: tiny
sizes, 2 rounds (a smoke test).
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import lyricnn  # noqa: E402,F401  (first: process tuning before MXNet loads)
import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402
from mxnet import autograd, nd  # noqa: E402
from mxnet.gluon import loss as gloss  # noqa: E402

from lyricnn.models import fused  # noqa: E402
from lyricnn.models.build import build_lm  # noqa: E402
from lyricnn.models.word import build_word_lm  # noqa: E402

BLOCKS = fused.run


def flat_1d(F, X, states, weights, biases, *, mode, num_hiddens, num_layers, dropout=0.0,
            **lstm_clip):
    """``fused.run`` with the parameter vector concatenated from 1-D views (Gluon's way)."""
    flat = F.concat(*[a.reshape((-1,)) for a in list(weights) + list(biases)], dim=0)
    out = F.RNN(X, flat, *states, state_size=num_hiddens, num_layers=num_layers, mode=mode,
                p=dropout, state_outputs=True, **lstm_clip)
    return out[0], list(out[1:])


def models(quick):
    if quick:
        return {"gluon rnn (tiny)": (lambda: build_lm("rnn", 50, 16), 50, 4, 5),
                "word lstm (tiny)": (lambda: build_word_lm("lstm", 60, 16, 16, 2), 60, 4, 5)}
    return {
        "book Gluon RNN 256": (lambda: build_lm("rnn", 1027, 256), 1027, 32, 35),
        "book scratch RNN 256": (lambda: build_lm("rnn-scratch", 1027, 256), 1027, 32, 35),
        "word LSTM 2x200": (lambda: build_word_lm("lstm", 10000, 200, 200, 2), 10000, 20, 35),
        "word LSTM 2x650 tied": (lambda: build_word_lm("lstm", 10000, 650, 650, 2, tied=True),
                                 10000, 20, 35),
    }


def step_ms(lm, V, batch, steps, repeats):
    rng = np.random.RandomState(0)
    X = nd.array(rng.randint(0, V, (batch, steps)))
    Y = nd.array(rng.randint(0, V, (batch, steps))).T.reshape((-1,))
    times = []
    for _ in range(repeats + 1):                   # the first call compiles: not counted
        start = time.perf_counter()
        with autograd.record():
            logits, _ = lm(X, lm.begin_state(batch))
            loss = gloss.SoftmaxCrossEntropyLoss()(logits, Y).mean()
        loss.backward()
        nd.waitall()
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times[1:])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--repeats", type=int, default=5, help="minibatches per round")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    rounds = 2 if args.quick else args.rounds
    mx.random.seed(0)
    print(f"{'model':<24} {'blocks ms':>10} {'1-D ms':>10} {'1-D / blocks':>13}")
    for name, (build, V, batch, steps) in models(args.quick).items():
        results = {"blocks": [], "1-D": []}
        lms = {}
        for layout, run in (("blocks", BLOCKS), ("1-D", flat_1d)):
            fused.run = run                         # the model is compiled with this layout
            lms[layout] = build()
        for _ in range(rounds):                     # alternate: the machine's noise is shared
            for layout in ("blocks", "1-D"):
                fused.run = BLOCKS if layout == "blocks" else flat_1d
                results[layout].append(step_ms(lms[layout], V, batch, steps, args.repeats))
        fused.run = BLOCKS
        a, b = statistics.median(results["blocks"]), statistics.median(results["1-D"])
        print(f"{name:<24} {a:>10.1f} {b:>10.1f} {b / a:>13.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
