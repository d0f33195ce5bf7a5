"""Training speed of a word-level recipe's model, between lyricnn checkouts.

``bench_word.py`` sets lyricnn against PyTorch; this measures what a change to lyricnn
does to one model's training step, by timing the library's own loop (``run_epoch``) on
Penn Treebank's training tokens in each checkout given, each measurement a process of
its own, the checkouts alternating (the order rotating every round) since the machine
is shared and noisy. The models (``--recipe``):

* ``awd-450`` (default): the AWD-style recipe the 60- and 120-minute budgets of
  ``examples/ptb_word_lm.py`` used before the two-hour one became word_language_model's:
  a tied 2 x 450 LSTM, adaptive softmax (2000, 6000), weight drop, locked and embedding
  dropout, AR/TAR;
* ``adaptive-650``: ``bench_word.py``'s ``large-tied-adaptive``, the model of the
  issue's 1.5x bar: a tied 2 x 650 LSTM, plain dropout 0.5, adaptive softmax (2000,
  6000).

    git worktree add /tmp/before 4f15b88
    .venv/bin/python benchmarks/bench_recipe_step.py --trees /tmp/before,. --rounds 3
    .venv/bin/python benchmarks/bench_recipe_step.py --recipe adaptive-650 --trees /tmp/before,.

Prints tokens/s per checkout (best round, median in brackets) and the ratio to the
first. ``--quick``: a tiny model on random tokens, one round (a dry run).
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

#: name -> ``build_word_lm`` arguments and the loop's (every model tied, LSTM, 2 layers).
RECIPES = {
    "awd-450": dict(hidden=450, layers=2, batch=20, steps=35, lr=20.0, clip=0.25,
                    cutoffs=(2000, 6000), dropout=0.0,
                    reg=dict(dropout_input=0.4, dropout_hidden=0.3, dropout_output=0.45,
                             dropout_embed=0.1, weight_drop=0.4, ar=2.0, tar=1.0)),
    "adaptive-650": dict(hidden=650, layers=2, batch=20, steps=35, lr=20.0, clip=0.25,
                         cutoffs=(2000, 6000), dropout=0.5, reg={}),
}


def measure(cfg, ptb, warmup, minibatches):
    """Tokens/s of ``minibatches`` minibatches of ``run_epoch`` after ``warmup`` untimed,
    in this process's lyricnn (whichever checkout ``PYTHONPATH`` names)."""
    import lyricnn  # noqa: F401  (before MXNet: it sets MXNet's OpenMP variables)
    import mxnet as mx
    import numpy as np

    from lyricnn.data.sampling import streams
    from lyricnn.models.word import build_word_lm
    from lyricnn.training.loop import run_epoch
    from lyricnn.tuning import retain_freed_memory
    retain_freed_memory()                      # as lyricnn train does
    mx.random.seed(0)
    vocab = 10_000 if ptb else 50
    h = cfg["hidden"]
    lm = build_word_lm("lstm", vocab, h, h, cfg["layers"], cfg["dropout"], tied=True,
                       cutoffs=cfg["cutoffs"], **cfg["reg"])
    size = cfg["batch"] * (cfg["steps"] * (warmup + minibatches) + 1)
    if ptb:
        from lyricnn.data.words import frequency_sorted, load_ptb_corpus
        tokens = np.asarray(frequency_sorted(load_ptb_corpus()).train[:size])
    else:
        tokens = np.random.RandomState(0).randint(0, vocab, size=size)
    cut = cfg["batch"] * (cfg["steps"] * warmup + 1)
    run_epoch(lm, streams(tokens[:cut], cfg["batch"], cfg["steps"], lm.ctx), True, cfg["lr"],
              cfg["clip"])                     # returns a float: synchronised
    counted = []
    start = time.perf_counter()
    run_epoch(lm, streams(tokens[cut - 1:], cfg["batch"], cfg["steps"], lm.ctx), True,
              cfg["lr"], cfg["clip"], on_batch=counted.append)
    seconds = time.perf_counter() - start
    return sum(counted) / seconds, lyricnn.__file__


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trees", default=".",
                        help="comma-separated lyricnn checkouts (default: this one)")
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="awd-450",
                        help="the model (the module docstring; default awd-450)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--minibatches", type=int, default=40)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    cfg = RECIPES[args.recipe]
    if args.quick:
        cfg = dict(cfg, hidden=8, batch=4, steps=7, cutoffs=(10, 30))
    if args.quick:
        args.rounds, args.warmup, args.minibatches = 1, 1, 2
    if args.worker:
        rate, where = measure(cfg, not args.quick, args.warmup, args.minibatches)
        print(json.dumps({"tokens_per_s": rate, "lyricnn": where}))
        return 0
    # The parent only: a worker must import lyricnn from its own checkout (PYTHONPATH).
    sys.path.insert(0, str(ROOT))
    from benchmarks.machine import cpu_model
    trees = [str(Path(t).resolve()) for t in args.trees.split(",")]
    print(f"machine: {cpu_model()}, nproc {os.cpu_count()}; the {'tiny ' if args.quick else ''}{args.recipe}"
          f" model, {args.rounds} rounds x {args.minibatches} timed minibatches after "
          f"{args.warmup}", flush=True)
    rates = [[] for _ in trees]
    for r in range(args.rounds):
        order = list(range(len(trees)))
        for i in order[r % len(trees):] + order[:r % len(trees)]:
            tree = trees[i]
            env = dict(os.environ, PYTHONPATH=tree)
            out = subprocess.run([sys.executable, __file__, "--worker",
                                  "--recipe", args.recipe, "--warmup", str(args.warmup),
                                  "--minibatches", str(args.minibatches)]
                                 + (["--quick"] if args.quick else []),
                                 env=env, capture_output=True, text=True, cwd=tree)
            if out.returncode != 0:
                print(out.stderr, file=sys.stderr)
                return out.returncode
            result = json.loads(out.stdout.strip().splitlines()[-1])
            if not result["lyricnn"].startswith(tree):
                print(f"{tree}: imported lyricnn from {result['lyricnn']}", file=sys.stderr)
                return 1
            rates[i].append(result["tokens_per_s"])
    for tree, rate in zip(trees, rates):
        print(f"{tree}: {max(rate):,.0f} tokens/s ({statistics.median(rate):,.0f}), "
              f"{max(rate) / max(rates[0]):.2f}x the first", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
