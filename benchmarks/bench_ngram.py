"""Benchmark of the Kneser-Ney n-gram models on the Penn Treebank (issue 4).

Scale target: an order-5 interpolated modified Kneser-Ney model fitted on a
1,000,000-token corpus, plus the perplexity of a 100,000-token held-out set,
in under 60 s and 2 GB of RAM on a 2-core machine.

Two parts, nothing asserted (this is not a test; figures are printed):

1. scale: fit an order-``--scale-order`` model on train + valid (1,003,349
   tokens) and score 100,000 held-out tokens: PTB test (82,430 tokens)
   followed by its first 17,570 tokens again (PTB has no more unseen text;
   the perplexity is then close to the test figure, the timing is what counts);
2. quality: for each ``--orders``, fit on PTB train (929,589 tokens) and
   report valid and test perplexity (reference: 141.2 on test for a KN 5-gram,
   Mikolov et al. 2011).

Peak RSS is ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` of this process,
which includes numpy/mxnet imported by the package (shown separately).

    .venv/bin/python benchmarks/bench_ngram.py --orders 2 3 4 5
"""
import argparse
import resource
import sys
import time

from lyricnn.ngram.model import NGramLM
from lyricnn.data.tokenize import load_ptb, words

HELD_OUT = 100_000


def peak_rss_mib():
    """Peak resident set size of this process in MiB (Linux reports KiB)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024 if sys.platform != "darwin" else kib / 2**20


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def quality(orders, smoothing, train, valid, test):
    print(f"== quality: fit on PTB train ({len(train):,} tokens), {smoothing}")
    print("order  fit_s  eval_s  valid_ppl  test_ppl  discounts(top order)")
    for order in orders:
        model, fit_s = timed(NGramLM(order, smoothing, tokenizer=words).fit, train)
        (valid_ppl, test_ppl), eval_s = timed(
            lambda: (model.perplexity(valid), model.perplexity(test)))
        top = model.discounts(order) if smoothing == "kneser-ney" else ()
        print(f"{order:5d}  {fit_s:5.2f}  {eval_s:6.2f}  {valid_ppl:9.2f}  {test_ppl:8.2f}  "
              + " ".join(f"{d:.3f}" for d in top))


def scale(order, smoothing, train, held_out):
    print(f"== scale: order {order} {smoothing}, fit on {len(train):,} tokens, "
          f"perplexity of {len(held_out):,} held-out tokens")
    model, fit_s = timed(NGramLM(order, smoothing, tokenizer=words).fit, train)
    ppl, eval_s = timed(model.perplexity, held_out)
    grams = [len(keys) for keys in model.counts.keys[1:]]
    print(f"distinct n-grams per order: {grams}")
    print(f"fit_s {fit_s:.2f}  eval_s {eval_s:.2f}  total_s {fit_s + eval_s:.2f}  "
          f"perplexity {ppl:.2f}  peak_rss_mib {peak_rss_mib():.0f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, nargs="*", default=[2, 3, 4, 5],
                        help="orders of the quality table (default: 2 3 4 5; none to skip)")
    parser.add_argument("--scale-order", type=int, default=5,
                        help="order of the scale run (default: 5; 0 to skip)")
    parser.add_argument("--smoothing", default="kneser-ney",
                        choices=["mle", "add-k", "kneser-ney"],
                        help="estimator for both parts (default: kneser-ney)")
    args = parser.parse_args(argv)

    print(f"peak_rss_mib after imports {peak_rss_mib():.0f}")
    (train, valid, test), load_s = timed(lambda: [load_ptb(s) for s in ("train", "valid", "test")])
    print(f"loaded PTB in {load_s:.2f} s: train {len(train):,}, valid {len(valid):,}, "
          f"test {len(test):,} tokens")
    # The scale run goes first so that its peak RSS is not the quality table's.
    if args.scale_order:
        held_out = (test + test)[:HELD_OUT]
        scale(args.scale_order, args.smoothing, train + valid, held_out)
    if args.orders:
        quality(args.orders, args.smoothing, train, valid, test)
    print(f"peak_rss_mib {peak_rss_mib():.0f}")


if __name__ == "__main__":
    main()
