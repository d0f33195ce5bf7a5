"""Benchmark of the verbatim-copy index (lyricnn.decoding.originality).

For the Jay Chou lyrics (characters, ~63k) and Penn Treebank train (words,
~930k): the time to build the suffix-array index, the time of ``report()`` on a
100-token candidate, and the time per decoding step of ``allowed_mask`` (and of
``extends_copy_beyond`` for one candidate id) while a 100-token text is decoded
with ``limit`` 8. Two candidates each: ``copied`` (100 tokens taken verbatim from
the corpus: the longest matches, the slowest case) and ``sampled`` (100 ids drawn
from the corpus's unigram distribution: short matches). Also the human baseline
(novelty curve of PTB valid against PTB train). Nothing is asserted: figures are
printed, with the machine's CPU model.

    .venv/bin/python benchmarks/bench_originality.py
"""
import argparse
import platform
import resource
import shutil
import subprocess
import sys
import time

import numpy as np

from lyricnn.data.corpus import load_corpus_chars
from lyricnn.data.tokenize import load_ptb
from lyricnn.decoding.originality import OriginalityIndex, human_baseline

LENGTH = 100
LIMIT = 8


def cpu_model():
    """``lscpu``'s model name (``/proc/cpuinfo`` or the platform without lscpu)."""
    if shutil.which("lscpu"):
        out = subprocess.run(["lscpu"], check=False, capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def peak_rss_mib():
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024 if sys.platform != "darwin" else kib / 2**20


def best_of(repeats, fn, *args):
    """(result, the fastest of ``repeats`` wall times in seconds)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn(*args)
        times.append(time.perf_counter() - start)
    return result, min(times)


def to_ids(tokens):
    """Token list -> (ids (N,) int64, token_to_idx, sorted vocabulary)."""
    vocab = sorted(set(tokens))
    token_to_idx = {t: i for i, t in enumerate(vocab)}
    return np.array([token_to_idx[t] for t in tokens], np.int64), token_to_idx, vocab


def candidates(ids, rng):
    """The two 100-token candidates: a verbatim corpus slice and a unigram sample."""
    start = int(rng.integers(0, len(ids) - LENGTH))
    return {"copied": ids[start:start + LENGTH],
            "sampled": rng.choice(ids, LENGTH)}


def per_step(index, cand, vocab_size):
    """Mean seconds per decoding step of allowed_mask and extends_copy_beyond."""
    start = time.perf_counter()
    for t in range(1, len(cand)):
        index.allowed_mask(cand[:t], vocab_size, LIMIT)
    mask_s = (time.perf_counter() - start) / (len(cand) - 1)
    start = time.perf_counter()
    for t in range(1, len(cand)):
        index.extends_copy_beyond(cand[:t], int(cand[t]), LIMIT)
    return mask_s, (time.perf_counter() - start) / (len(cand) - 1)


def bench(name, tokens, line_break, repeats, rng):
    ids, token_to_idx, vocab = to_ids(tokens)
    print(f"== {name}: {len(ids):,} tokens, {len(vocab):,} distinct")
    index, build_s = best_of(repeats, OriginalityIndex, ids, {token_to_idx[line_break]})
    memory = len(index._buf) + index._sa.nbytes
    print(f"build {build_s * 1e3:8.1f} ms  ({index!r}; text + suffix array "
          f"{memory / 2**20:.1f} MiB = {memory / len(ids):.0f} B/token)")
    print(f"{'candidate':9s} {'longest':>7s} {'report ms':>9s} {'mask ms/step':>12s} "
          f"{'extends ms/call':>15s} {'banned/step':>11s}")
    for kind, cand in candidates(ids, rng).items():
        report, report_s = best_of(repeats, index.report, cand)
        mask_s, extends_s = per_step(index, cand, len(vocab))
        banned = np.mean([(~index.allowed_mask(cand[:t], len(vocab), LIMIT)).sum()
                          for t in range(LIMIT, len(cand))])
        print(f"{kind:9s} {report['longest_copy']['length']:7d} {report_s * 1e3:9.2f} "
              f"{mask_s * 1e3:12.3f} {extends_s * 1e3:15.3f} {banned:11.2f}")
    return index, token_to_idx


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timings keep the best of these")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    print(f"machine: {cpu_model()}, {len(__import__('os').sched_getaffinity(0))} CPUs, "
          f"Python {platform.python_version()}, NumPy {np.__version__}")
    print(f"candidates of {LENGTH} tokens; decode guard limit {LIMIT}")
    bench("Jay Chou lyrics (chars)", load_corpus_chars(num_chars=None), " ", args.repeats, rng)
    index, token_to_idx = bench("PTB train (words)", load_ptb("train"), "<eos>", args.repeats,
                                rng)
    valid = np.array([token_to_idx[w] for w in load_ptb("valid")])  # PTB valid has no OOV
    curve, base_s = best_of(1, human_baseline, None, valid, 10, index)
    print(f"== human baseline: PTB valid ({len(valid):,} words) vs train in {base_s:.2f} s; "
          "novel n-gram fraction n=1..10:")
    print("   " + " ".join(f"{x:.3f}" for x in curve))
    print(f"peak_rss_mib {peak_rss_mib():.0f}")


if __name__ == "__main__":
    main()
