"""Tune dynamic evaluation on the validation split, then score the test split with it.

Dynamic evaluation (Krause et al. 2018; ``lyricnn.training.dynamic``) keeps
training the model on the text it has just scored. Its learning rate and decay
are chosen here on the first ``--tune-tokens`` tokens of the validation split
(never the test split), as Krause et al.'s ``dynamiceval.py --gridfast`` does;
the best setting then reads the whole test split, beside two static figures:
``lyricnn evaluate``'s (10 streams) and one stream (the context dynamic
evaluation reads with, so the difference is the adaptation alone):

    python examples/dynamic_eval.py --checkpoint runs/ptb-120/best

``--grid`` lists the settings as ``LR:DECAY:SEGMENT`` (segment = tokens per
update). ``lyricnn evaluate --dynamic`` uses ``lyricnn.training.dynamic``'s defaults,
which came from this script's default grid (docs/RESULTS.md).
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import lyricnn  # noqa: E402,F401  (before MXNet: it sets MXNet's OpenMP variables)
import numpy as np  # noqa: E402
from lyricnn.checks import check_int  # noqa: E402
from lyricnn.cli.common import corpus_of  # noqa: E402
from lyricnn.context import resolve_ctx  # noqa: E402
from lyricnn.run.checkpoint import load_checkpoint  # noqa: E402
from lyricnn.training import dynamic  # noqa: E402
from lyricnn.training.evaluate import EVAL_BATCH_SIZE, evaluate_perplexity  # noqa: E402

#: Around Krause et al.'s lr 5e-5 (for 5-token segments) at 20-token segments, and their
#: decay x 4 (their grid scales both with the segment; lr x 4, 2e-4, is in the grid), and
#: one 10-token setting.
GRID = "2e-5:0.008:20,5e-5:0.008:20,7e-5:0.008:20,1e-4:0.008:20,2e-4:0.008:20," \
       "5e-5:0.002:20,5e-5:0.02:20,3e-5:0.004:10"


def setting(text):
    try:
        lr, decay, steps = text.split(":")
        lr, decay = dynamic.check_settings(float(lr), float(decay))[:2]
        return lr, decay, check_int("segment", int(steps))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"--grid {text!r}: {err} (expected LR:DECAY:SEGMENT, "
                                         "e.g. 5e-5:0.008:20)") from None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True, help="a word-level checkpoint (DIR/best)")
    p.add_argument("--grid", default=GRID, type=lambda t: [setting(s) for s in t.split(",")])
    p.add_argument("--tune-tokens", type=lambda v: check_int("tune_tokens", int(v), 2),
                   default=5000, help="validation tokens the grid reads (default 5000)")
    p.add_argument("--stats-batches", type=lambda v: check_int("stats_batches", int(v)),
                   default=dynamic.STATS_BATCHES)
    p.add_argument("--no-test", action="store_true", help="tune only")
    args = p.parse_args(argv)
    ckpt = load_checkpoint(args.checkpoint, resolve_ctx("cpu"))
    corpus = corpus_of(ckpt.config, ckpt.corpus_text)
    if corpus.valid is None:
        p.error("the checkpoint's corpus has no validation split to tune on")
    lm, tune = ckpt.lm, corpus.valid[:args.tune_tokens]
    start = time.time()
    rms = dynamic.gradient_statistics(lm, corpus.train, max_batches=args.stats_batches)
    print(f"gradient statistics: up to {args.stats_batches} minibatches, "
          f"{time.time() - start:.0f} s", flush=True)
    static = evaluate_perplexity(lm, tune, 1, max(s for _, _, s in args.grid))
    print(f"first {len(tune)} validation tokens: static perplexity {static:.3f}", flush=True)
    results = []
    for lr, decay, steps in args.grid:
        start = time.time()
        value = dynamic.dynamic_evaluate_perplexity(lm, tune, rms, lr, decay, num_steps=steps)
        results.append((value, lr, decay, steps))
        print(f"lr {lr:g}, decay {decay:g}, {steps}-token segments: {value:.3f} "
              f"({time.time() - start:.0f} s)", flush=True)
    finite = [r for r in results if np.isfinite(r[0])]
    if not finite:
        print("every setting diverged; try smaller learning rates", file=sys.stderr)
        return 1
    best, lr, decay, steps = min(finite)
    print(f"best: lr {lr:g}, decay {decay:g}, {steps}-token segments ({best:.3f})", flush=True)
    if args.no_test or corpus.test is None:
        return 0
    static = evaluate_perplexity(lm, corpus.test, EVAL_BATCH_SIZE, ckpt.config.num_steps)
    one = evaluate_perplexity(lm, corpus.test, 1, ckpt.config.num_steps)
    start = time.time()
    value = dynamic.dynamic_evaluate_perplexity(lm, corpus.test, rms, lr, decay,
                                                num_steps=steps)
    print(f"test perplexity {static:.3f} static ({EVAL_BATCH_SIZE} streams), {one:.3f} static "
          f"(one stream), {value:.3f} dynamic ({time.time() - start:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
