"""Why the samplers copy one minibatch at a time: milliseconds per training step.

The book's scratch RNN (vocabulary 1027, 256 hidden, batch 32, 35 steps,
random sampling) trains through ``lyricnn.training.loop.run_epoch`` on a corpus of
``--chars`` random characters, with its minibatches made three ways, each in
a fresh process, alternating:

* ``zero-copy per batch``: ``lyricnn.data.sampling.batch_to_device`` per
  minibatch (what the samplers do: ``nd.from_numpy``, no wait);
* ``per-batch``: one ``nd.array`` copy per minibatch (the first release's
  samplers; each copy waits for the operators queued before it);
* ``per-epoch``: the whole epoch copied once and yielded as views (no wait);
* ``per-batch + ballast``: per-batch copies, plus one unused array of the
  corpus's size held while training.

docs/RESULTS.md has the figures. The first runs (code 15edd6b) made the
per-epoch copy and the ballast 1.5x slower per step; the cause was not the
array being held but how it was made: ``nd.array`` of a large array copies
with OpenMP on the Python thread, which gives that thread an OpenMP team of
its own, and with more OpenMP threads than CPUs libgomp cut every idle
thread's spin to 100 for the rest of the run. Since ``import lyricnn`` keeps
such copies single-threaded (``MXNET_CPU_PARALLEL_SIZE`` in
``lyricnn/__init__.py``) the four modes run alike. Medians of minibatches 10-70.

    .venv/bin/python benchmarks/bench_batch_copies.py                # 2 rounds, 1M characters
    .venv/bin/python benchmarks/bench_batch_copies.py --quick        # dry run, seconds
"""
import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODES = ("zero-copy per batch", "per-batch", "per-epoch", "per-batch + ballast")


def worker(mode, chars, first, last):
    """Milliseconds per minibatch over minibatches ``first``..``last`` in this process."""
    import random

    import lyricnn as d2l
    import mxnet as mx
    import numpy as np
    from mxnet import nd

    from lyricnn.models.interface import ScratchLM
    from lyricnn.data.sampling import batch_to_device
    from lyricnn.training.loop import run_epoch
    mx.random.seed(0)
    random.seed(0)
    V, steps, batch = 1027, 35, 32
    corpus = np.random.RandomState(0).randint(0, V, chars).astype(np.float32)
    lm = ScratchLM(d2l.rnn, d2l.params_getter(V, 256, mx.cpu())(), d2l.init_rnn_state, 256, V,
                   mx.cpu())
    windows = list(range((chars - 1) // steps))
    random.shuffle(windows)
    count = len(windows) // batch
    # starts[i, b]: first index of window b of minibatch i
    starts = (np.asarray(windows[:count * batch]).reshape((count, batch, 1)) * steps
              + np.arange(steps))
    ballast = None
    if mode == "zero-copy per batch":
        batches = ((batch_to_device(corpus[s]), batch_to_device(corpus[s + 1])) for s in starts)
    elif mode == "per-epoch":
        X, Y = nd.array(corpus[starts]), nd.array(corpus[starts + 1])
        batches = ((X[i], Y[i]) for i in range(count))
    else:
        if mode.endswith("ballast"):
            ballast = nd.array(np.zeros(chars, dtype=np.float32))  # noqa: F841  (held)
        batches = ((nd.array(corpus[s]), nd.array(corpus[s + 1])) for s in starts)
    marks = []

    def on_batch(_):
        marks.append(time.perf_counter())
        if len(marks) > last:
            raise StopIteration

    try:
        run_epoch(lm, batches, False, 100.0, 0.01, on_batch=on_batch)
    except (StopIteration, RuntimeError):   # a generator turns StopIteration into RuntimeError
        pass
    nd.waitall()
    steps_ms = [(b - a) * 1e3 for a, b in zip(marks[first:last], marks[first + 1:last + 1])]
    return statistics.median(steps_ms)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chars", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="dry run: 40,000 characters, 1 round")
    parser.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    first, last = (2, 8) if args.quick else (10, 70)
    if args.quick:
        args.chars, args.rounds = 40_000, 1
    if args.worker:
        print(worker(args.worker, args.chars, first, last))
        return 0
    from benchmarks.machine import cpu_model
    print(f"machine: {cpu_model()}; {args.chars:,} characters, medians of minibatches "
          f"{first}-{last}, {args.rounds} rounds, one process per run")
    times = {m: [] for m in MODES}
    for r in range(args.rounds):
        for mode in MODES[r % len(MODES):] + MODES[:r % len(MODES)]:
            cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", mode,
                   "--chars", str(args.chars)] + ["--quick"] * args.quick
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=True)
            times[mode].append(float(out.stdout.strip().splitlines()[-1]))
    for mode in MODES:
        print(f"  {mode:<22} {statistics.median(times[mode]):7.1f} ms/minibatch  "
              f"(runs: {', '.join(f'{t:.1f}' for t in times[mode])})")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
