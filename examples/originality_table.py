"""How decoding trades copying for novelty: the originality table of docs/RESULTS.md.

For one checkpoint, generate the same candidates (prefixes x seeds) under each decoding
setting and measure them against the training text (lyricnn.decoding.originality):
the distribution of each candidate's longest verbatim copy and the mean novel-n-gram
curve, beside the same curve for the held-out human lyrics (the human baseline).

    .venv/bin/python examples/originality_table.py --checkpoint runs/lyrics/best

Prints a Markdown table. Nothing is written to disk.
"""
import argparse
import statistics
import sys
import time

import numpy as np

from lyricnn.decoding.engine import Options
from lyricnn.run.checkpoint import load_checkpoint
from lyricnn.run.task import task_of

#: Decoding settings compared (name -> Options fields); all share max_tokens.
SETTINGS = {
    "greedy": {"temperature": 0.0},
    "sample T=1": {"temperature": 1.0},
    "top-k 10": {"temperature": 1.0, "top_k": 10},
    "top-p 0.9": {"temperature": 1.0, "top_p": 0.9},
    "min-p 0.1": {"temperature": 1.0, "min_p": 0.1},
    "top-p 0.9 + DRY 0.8": {"temperature": 1.0, "top_p": 0.9, "dry_multiplier": 0.8},
    "top-p 0.9 + copy guard 8": {"temperature": 1.0, "top_p": 0.9, "max_copy": 8},
}
PREFIXES = ["分开", "不分开", "想要", "天晴", "我们", "爱情", "你说", "回忆"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--length", type=int, default=100, help="tokens per candidate")
    p.add_argument("--n", type=int, default=4, help="candidates per prefix and setting")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    ckpt = load_checkpoint(args.checkpoint)
    task = task_of(ckpt.config)
    index, baseline = task.originality(ckpt.config, ckpt.vocab, ckpt.corpus_text)
    decoder = task.decoder(ckpt.config, ckpt.vocab, ckpt.lm, index)
    prefixes = [task.encode(ckpt.config, ckpt.vocab, x, unknown="skip", empty=True)
                for x in PREFIXES]
    prefixes = [x for x in prefixes if x]
    rows = []
    for name, fields in SETTINGS.items():
        start = time.perf_counter()
        copies, curves = [], []
        for ids in prefixes:
            for c in decoder.generate(ids, Options(max_tokens=args.length, **fields),
                                      n=args.n, seed=args.seed):
                report = index.report(c.tokens)
                copies.append(report["longest_copy"]["length"])
                curves.append(report["novel_ngram_fraction"])
        curve = np.mean(np.array(curves, dtype=float), axis=0)
        rows.append((name, copies, curve, time.perf_counter() - start))
    print(f"checkpoint {ckpt.path} ({ckpt.config.describe()}, epoch {ckpt.epoch}); "
          f"{len(prefixes)} prefixes x {args.n} candidates x {args.length} tokens per setting")
    print()
    ns = (2, 3, 4, 6, 8, 10)
    head = " | ".join(f"novel {n}-grams" for n in ns)
    print(f"| decoding | longest copy: median | max | share > 10 | {head} |")
    print("|---|---|---|---|" + "---|" * len(ns))
    for name, copies, curve, _ in rows:
        share = sum(c > 10 for c in copies) / len(copies)
        cells = " | ".join(f"{curve[n - 1]:.2f}" for n in ns)
        print(f"| {name} | {statistics.median(copies):g} | {max(copies)} | {share:.0%} | "
              f"{cells} |")
    if baseline is not None:
        cells = " | ".join(f"{baseline[n - 1]:.2f}" for n in ns)
        print(f"| **held-out human lyrics** (baseline) | – | – | – | {cells} |")
    else:
        print("(no held-out split in this checkpoint: no human baseline)", file=sys.stderr)


if __name__ == "__main__":
    main()
