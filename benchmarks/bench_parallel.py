"""Data-parallel training throughput: 1 and 2 devices, 1 and 2 dist_sync workers.

Each setting trains the same model on the same minibatches with
``lyricnn.training.loop.run_epoch`` (via ``lyricnn.training.parallel.DataParallel``), in
its own process(es), after a few untimed minibatches:

* ``1 device``: one process, ``ctx=cpu``, no KVStore (the ordinary path);
* ``2 devices``: one process, ``ctx=cpu:0,cpu:1``, KVStore ``local``;
* ``1 worker`` / ``2 workers``: ``lyricnn launch`` jobs (1 server), KVStore
  ``dist_sync``, one device per worker; each worker reads its half of every
  minibatch.

Reported: tokens/s of the whole job (all devices and workers together), and
the communication cost per step: the milliseconds of one
``DataParallel.reduce_gradients`` (push + pull of every gradient, device
synchronised before and after), measured separately on the trained model.

On a 2-core machine no speed-up is expected (two devices or workers share the
same two cores: the work per token is unchanged and the KVStore adds copies);
the point is what the communication costs, and that the path to more
machines works. Models: the book's Gluon RNN (6.5: 256 hidden, the lyrics'
1,027 characters, batch 32, 35 steps) and Zaremba's "small" word-level LSTM
(2 x 200, vocabulary 10,000, batch 20, 20 steps, random tokens).

    .venv/bin/python benchmarks/bench_parallel.py               # both models
    .venv/bin/python benchmarks/bench_parallel.py --models char --minibatches 40
    .venv/bin/python benchmarks/bench_parallel.py --quick       # dry run, seconds
"""
import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.machine import cpu_model  # noqa: E402  (standard library only)

MODELS = {
    "char": dict(kind="char", hidden=256, vocab=1027, batch=32, steps=35),
    "word": dict(kind="word", hidden=200, vocab=10_000, batch=20, steps=20),
}
QUICK = {"char": dict(MODELS["char"], hidden=8, vocab=40, batch=4, steps=5),
         "word": dict(MODELS["word"], hidden=8, vocab=50, batch=4, steps=5)}
SETTINGS = [("1 device", "cpu", None, 1), ("2 devices", "cpu:0,cpu:1", None, 1),
            ("1 worker", "cpu", "dist_sync", 1), ("2 workers", "cpu", "dist_sync", 2)]


# ----------------------------------------------------------------------------- worker

def _build(cfg, ctx):
    from lyricnn.models.build import build_lm
    from lyricnn.models.word import build_word_lm
    if cfg["kind"] == "char":
        return build_lm("rnn", cfg["vocab"], cfg["hidden"], ctx=ctx)
    return build_word_lm("lstm", cfg["vocab"], cfg["hidden"], cfg["hidden"], num_layers=2,
                         ctx=ctx)


def _batches(cfg, n, seed):
    import numpy as np
    from mxnet import nd
    rs = np.random.RandomState(seed)
    rows = rs.randint(0, cfg["vocab"], size=(cfg["batch"], cfg["steps"] * n + 1))
    for i in range(n):
        s = i * cfg["steps"]
        yield (nd.array(rows[:, s:s + cfg["steps"]]),
               nd.array(rows[:, s + 1:s + 1 + cfg["steps"]]))


def worker(cfg, ctx, kvstore, warmup, minibatches, out):
    """Time ``minibatches`` minibatches and ``reduce_gradients``; rank 0 writes JSON to ``out``."""
    import lyricnn  # noqa: F401  (before MXNet: it sets MXNet's OpenMP variables)
    import mxnet as mx
    from lyricnn.context import resolve_ctx_list, set_seed
    from lyricnn.training.parallel import DataParallel
    from lyricnn.training.loop import run_epoch

    set_seed(0)
    ctxs = resolve_ctx_list(ctx)
    par = DataParallel(_build(cfg, ctxs[0]), ctxs, kvstore)
    par.check_batch(cfg["batch"])
    run_epoch(par, _batches(cfg, warmup, 1), True, 1.0, 5.0)   # returns a float: synced
    start = time.perf_counter()
    run_epoch(par, _batches(cfg, minibatches, 2), True, 1.0, 5.0)
    seconds = time.perf_counter() - start
    comm = []
    for _ in range(max(5, minibatches // 4)):
        mx.nd.waitall()
        t = time.perf_counter()
        par.reduce_gradients()
        mx.nd.waitall()
        comm.append(time.perf_counter() - t)
    if par.rank == 0:
        tokens = cfg["batch"] * cfg["steps"] * minibatches
        Path(out).write_text(json.dumps({"tokens_per_s": tokens / seconds,
                                         "ms_per_step": 1e3 * seconds / minibatches,
                                         "comm_ms": 1e3 * sorted(comm)[len(comm) // 2]}))


# ----------------------------------------------------------------------------- driver

def measure(model, cfg, setting, warmup, minibatches):
    name, ctx, kvstore, workers = setting
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        command = [sys.executable, __file__, "--worker", json.dumps(cfg), ctx,
                   kvstore or "none", str(warmup), str(minibatches), out]
        if kvstore is None:
            proc = subprocess.run(command, capture_output=True, text=True, timeout=1800)
            if proc.returncode:
                raise RuntimeError(f"{model}, {name}: {proc.stderr[-2000:]}")
        else:
            from lyricnn.training.launch import launch
            log = io.StringIO()
            code = launch(command, workers=workers, servers=1, timeout=1800, output=log)
            if code:
                raise RuntimeError(f"{model}, {name}: launch exited {code}: {log.getvalue()[-2000:]}")
        return json.loads(Path(out).read_text())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="char,word", help="comma-separated: char, word")
    p.add_argument("--minibatches", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="tiny models, 3 minibatches: a dry run")
    args = p.parse_args(argv)
    configs = QUICK if args.quick else MODELS
    minibatches = 3 if args.quick else args.minibatches
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs; OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'unset')} (launch gives each of N workers "
          "cpu_count // N threads)")
    print(f"{minibatches} timed minibatches after {args.warmup} untimed; each setting in its "
          "own process(es)")
    for model in args.models.split(","):
        cfg = configs[model]
        print(f"\n{model}: {cfg}")
        print(f"{'setting':<12} {'tokens/s':>10} {'ms/step':>9} {'comm ms/step':>13}")
        for setting in SETTINGS:
            r = measure(model, cfg, setting, args.warmup, minibatches)
            print(f"{setting[0]:<12} {r['tokens_per_s']:>10,.0f} {r['ms_per_step']:>9.1f} "
                  f"{r['comm_ms']:>13.2f}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        cfg, ctx, kvstore, warmup, minibatches, out = sys.argv[2:]
        worker(json.loads(cfg), ctx, None if kvstore == "none" else kvstore, int(warmup),
               int(minibatches), out)
    else:
        main()
