"""What one large copy on the Python thread costs every later minibatch.

MXNet copies arrays of more than ``MXNET_CPU_PARALLEL_SIZE`` elements
(default 200,000) with OpenMP on the calling thread. libgomp gives every
thread that opens a parallel region a team of its own; once the Python
thread has one beside the engine worker's, libgomp counts more OpenMP
threads than CPUs and cuts every idle thread's spin to 100, and each small
operator afterwards wakes its threads through the kernel. ``import lyricnn``
sets the threshold out of reach (``lyricnn/__init__.py``); this benchmark
measures both settings, each run in a fresh process, alternating:

* ``lyricnn``: lyricnn's setting (``MXNET_CPU_PARALLEL_SIZE=2147483647``);
* ``MXNet's 200,000``: MXNet's own threshold.

Two training loops (``lyricnn.training.loop.run_epoch``), each after a warm-up
and then ``asnumpy()`` of every parameter, as loading a checkpoint does (its
check reads every parameter):

* ``book RNN cell``: the book's notebook ``rnn`` cell (vocabulary 1027, 256
  hidden, batch 32, 35 steps), replayed as one graph (``lyricnn.models.tracing``);
* ``word LSTM 2x200``: Zaremba et al.'s "small" word LSTM (vocabulary
  10,000, batch 20, 20 steps, ``lyricnn.data.words``).

Prints milliseconds and context switches (``getrusage``, all threads) per
minibatch, and the process's threads, medians over the rounds.

    .venv/bin/python benchmarks/bench_openmp_team.py              # 3 rounds
    .venv/bin/python benchmarks/bench_openmp_team.py --quick      # dry run, seconds
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
SETTINGS = {"lyricnn": None, "MXNet's 200,000": "200000"}
LOOPS = ("book RNN cell", "word LSTM 2x200")


def worker(loop, minibatches):
    """``{"ms": …, "switches": …, "threads": …}`` per minibatch of ``loop`` in this process."""
    import resource

    from lyricnn.data.sampling import batch_to_device
    import mxnet as mx
    import numpy as np
    from mxnet import nd

    from tests.oracle import book_notebook as book
    from lyricnn.models.interface import ScratchLM
    from lyricnn.training.loop import run_epoch
    from lyricnn.models.word import build_word_lm
    from lyricnn.data.sampling import streams
    mx.random.seed(0)
    rng = np.random.RandomState(0)
    if loop == "book RNN cell":
        V, batch, steps = 1027, 32, 35
        lm = ScratchLM(book.rnn, book.make_get_params(V, 256, mx.cpu())(), book.init_rnn_state,
                       256, V, mx.cpu())
        carry = False

        def batches(n):
            for _ in range(n):
                X = rng.randint(0, V, (batch, steps + 1))
                yield (batch_to_device(X[:, :-1]),
                       batch_to_device(X[:, 1:]))
    else:
        V, batch, steps = 10000, 20, 20
        lm = build_word_lm("lstm", V, 200, 200, 2, 0.0, False)
        carry = True

        def batches(n):
            return streams(rng.randint(0, V, batch * (steps * n + 1)), batch, steps,
                                lm.ctx)
    run_epoch(lm, batches(3), carry, 1.0, 5.0)          # warm-up (and the cell's record)
    for array in lm.named_parameters().values():
        array.asnumpy()                                  # as loading a checkpoint does
    nd.waitall()
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    run_epoch(lm, batches(minibatches), carry, 1.0, 5.0)  # returns a float: synchronised
    seconds, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    switches = (after.ru_nvcsw + after.ru_nivcsw) - (before.ru_nvcsw + before.ru_nivcsw)
    return {"ms": seconds / minibatches * 1e3, "switches": switches / minibatches,
            "threads": len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task")
            else 0}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--minibatches", type=int, default=40)
    parser.add_argument("--quick", action="store_true", help="dry run: 1 round of 3 minibatches")
    parser.add_argument("--worker", choices=LOOPS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.minibatches = 1, 3
    if args.worker:
        print(json.dumps(worker(args.worker, args.minibatches)))
        return 0
    from benchmarks.machine import cpu_model
    print(f"machine: {cpu_model()}, nproc {os.cpu_count()}; {args.minibatches} minibatches after "
          f"asnumpy() of every parameter, medians of {args.rounds} rounds, one process per run")
    runs = {(loop, s): [] for loop in LOOPS for s in SETTINGS}
    for r in range(args.rounds):
        for loop in LOOPS:
            order = list(SETTINGS) if r % 2 == 0 else list(SETTINGS)[::-1]
            for setting in order:
                env = {k: v for k, v in os.environ.items() if k != "MXNET_CPU_PARALLEL_SIZE"}
                if SETTINGS[setting] is not None:
                    env["MXNET_CPU_PARALLEL_SIZE"] = SETTINGS[setting]
                cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", loop,
                       "--minibatches", str(args.minibatches)]
                out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env,
                                     check=True)
                runs[(loop, setting)].append(json.loads(out.stdout.strip().splitlines()[-1]))
    for loop in LOOPS:
        for setting in SETTINGS:
            got = runs[(loop, setting)]
            ms = [g["ms"] for g in got]
            print(f"  {loop:<16} {setting:<16} {statistics.median(ms):7.1f} ms/minibatch  "
                  f"{statistics.median(g['switches'] for g in got):7.0f} context switches/minibatch"
                  f"  {statistics.median(g['threads'] for g in got):3.0f} threads  "
                  f"(runs: {', '.join(f'{t:.1f}' for t in ms)})")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
