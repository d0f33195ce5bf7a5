"""The cost of dynamic evaluation's segment (``lyricnn.training.dynamic``), by its parts.

The model of an earlier two-hour PTB recipe (a tied 2 x 450 LSTM, adaptive softmax
from ranks 2000 and 6000, 10,000 words), fresh weights and random tokens: the cost
does not depend on the values. Times, per segment of 5, 10 and 20 tokens: the forward and
backward (``adapt_step``, batch 1), and the update over every weight written
two ways, as the rule reads (each term a new array) and in place (what
``dynamic_evaluate_loss`` does). Rounds alternate; best and median printed.

    .venv/bin/python benchmarks/bench_dynamic.py --rounds 3

``--quick``: a tiny model, one round (a dry run).
"""
import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--repeat", type=int, default=30, help="segments per timing")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    import lyricnn  # noqa: F401  (before MXNet: it sets MXNet's OpenMP variables)
    import mxnet as mx
    import numpy as np
    from mxnet import nd

    from benchmarks.machine import cpu_model
    from lyricnn.models.word import build_word_lm

    vocab, h, cutoffs = (50, 8, (10, 30)) if args.quick else (10_000, 450, (2000, 6000))
    rounds, repeat = (1, 3) if args.quick else (args.rounds, args.repeat)
    mx.random.seed(0)
    lm = build_word_lm("lstm", vocab, h, h, 2, tied=True, cutoffs=cutoffs)
    weights, grads = lm.weights(), lm.gradients()
    print(f"machine: {cpu_model()}, nproc {os.cpu_count()}; tied 2 x {h} LSTM, adaptive "
          f"softmax {cutoffs}, {vocab} words, {sum(w.size for w in weights):,} weights")
    rng = np.random.RandomState(0)
    originals = [w.copy() for w in weights]
    pulls = [nd.ones_like(w) * 0.01 for w in weights]
    steps = [nd.ones_like(w) * 1e-4 for w in weights]
    keeps = [1 - p for p in pulls]
    anchors = [p * w for p, w in zip(pulls, weights)]

    def by_terms():
        for w, w0, g, pull, step in zip(weights, originals, grads, pulls, steps):
            w[:] = w + pull * (w0 - w) - step * (g / 20)

    def in_place():
        for w, keep, anchor, g, step in zip(weights, keeps, anchors, grads, steps):
            w *= keep
            w += anchor
            g *= 1.0 / 20
            nd.elemwise_mul(g, step, out=g)
            w -= g
            g[:] = 0

    def segment(n):
        X = nd.array(rng.randint(0, vocab, (1, n)))
        Y = nd.array(rng.randint(0, vocab, (1, n)))
        state = lm.begin_state(1)
        return lambda: lm.adapt_step(X, Y, state)[0]

    cases = {f"forward + backward, {n} tokens": segment(n) for n in (5, 10, 20)}
    cases.update({"update, each term a new array": by_terms, "update, in place": in_place})
    times = {name: [] for name in cases}
    for r in range(rounds):
        for name, f in cases.items():
            f()
            nd.waitall()
            start = time.perf_counter()
            for _ in range(repeat):
                out = f()
                if out is not None:
                    out.wait_to_read()
            nd.waitall()
            times[name].append((time.perf_counter() - start) / repeat * 1000)
    for name, ms in times.items():
        print(f"{name:34s} {min(ms):7.1f} ms  (median {statistics.median(ms):.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
