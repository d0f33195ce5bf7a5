"""The layout of the fused kernel's parameter vector, on both callers of ``fused.flatten``.

MXNet's ``RNN`` operator reads one flat vector of every weight and bias per layer.
``lyricnn.models.fused.flatten`` concatenates a layer's four arrays as ``(-1,
gates·h)`` blocks; Gluon's own layer (and lyricnn's scratch path before the
one-stack redesign) concatenates 1-D views. (The word model keeps each layer's
vector as one Parameter, ``fused.Stack``, and concatenates nothing:
``bench_flat_params.py`` measures that.) This times one training minibatch (forward + backward,
``wait_to_read``) of each model through both layouts, alternating, in one
process, and prints the medians:

    .venv/bin/python benchmarks/bench_fused_layout.py --rounds 7

Models: the book's Gluon RNN (6.5: vocabulary 1027, 256 hidden, batch 32, 35
steps), the book's scratch RNN (the same sizes, fused) and a Gluon LSTM 2 x 200
(the same data). ``--quick``: tiny sizes, 2 rounds (a smoke test).
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

BLOCKS = fused.flatten


def flat_1d(F, weights, biases, width):
    """``fused.flatten`` concatenating 1-D views (Gluon's way)."""
    return F.concat(*[a.reshape((-1,)) for a in list(weights) + list(biases)], dim=0)


def models(quick):
    if quick:
        return {"gluon rnn (tiny)": (lambda: build_lm("rnn", 50, 16), 50, 4, 5),
                "gluon lstm 2 layers (tiny)": (lambda: build_lm("lstm", 60, 8, 2), 60, 4, 5)}
    return {
        "book Gluon RNN 256": (lambda: build_lm("rnn", 1027, 256), 1027, 32, 35),
        "book scratch RNN 256": (lambda: build_lm("rnn-scratch", 1027, 256), 1027, 32, 35),
        # 200, not 256: 4 x 256 gates exceed 0.8 x 1027, where RNNModel keeps Gluon's
        # own one-hot path (fused.worth_it) and neither layout would be timed.
        "book Gluon LSTM 2x200": (lambda: build_lm("lstm", 1027, 200, 2), 1027, 32, 35),
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
            fused.flatten = run                         # the model is compiled with this layout
            lms[layout] = build()
            model = getattr(lms[layout], "model", None)
            if model is not None and not model._gather:   # RNNModel's choice of path
                raise SystemExit(f"{name}: the one-hot path, which never builds the vector")
        for _ in range(rounds):                     # alternate: the machine's noise is shared
            for layout in ("blocks", "1-D"):
                fused.flatten = BLOCKS if layout == "blocks" else flat_1d
                results[layout].append(step_ms(lms[layout], V, batch, steps, args.repeats))
        fused.flatten = BLOCKS
        a, b = statistics.median(results["blocks"]), statistics.median(results["1-D"])
        print(f"{name:<24} {a:>10.1f} {b:>10.1f} {b / a:>13.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
