"""Candidates as one batch against the same candidates one after another.

``n`` sampled candidates of ``length`` characters from one prefix, through the decoding
engine: one ``Decoder.generate(..., n=n)`` (one forward call per step for all rows)
against ``n`` calls of ``generate(..., n=1)`` with the same seeds (which give the same
texts, up to float32 rounding). Rounds alternate which goes first; medians:

    .venv/bin/python benchmarks/bench_decoding.py --checkpoint runs/demo --rounds 5

Without ``--checkpoint``, the book's scratch RNN (256 hidden units, 1,027 characters)
with its initial weights: the cost of a step does not depend on the values.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.machine import cpu_model  # noqa: E402


def decoder_and_prefix(checkpoint):
    import lyricnn as d2l
    from lyricnn.decoding.engine import Decoder, Vocabulary
    from lyricnn.run.checkpoint import load_checkpoint
    from lyricnn.run.task import task_of
    if checkpoint:
        ckpt = load_checkpoint(checkpoint)
        task = task_of(ckpt.config)
        prefix = ckpt.corpus_text[:2]
        return task.decoder(ckpt.config, ckpt.vocab, ckpt.lm), \
            task.encode(ckpt.config, ckpt.vocab, prefix), ckpt.config.describe()
    _, char_to_idx, idx_to_char, V = d2l.load_data_jay_lyrics()
    lm = d2l.build_lm("rnn-scratch", V, 256)
    return (Decoder(lm, Vocabulary(idx_to_char, char_to_idx[" "])),
            [char_to_idx[c] for c in "分开"], "the book's rnn-scratch, 256 hidden, untrained")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint")
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--length", type=int, default=100)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args(argv)
    from lyricnn.decoding.engine import Options
    decoder, prefix, what = decoder_and_prefix(args.checkpoint)
    options = Options(max_tokens=args.length, temperature=1.0, top_k=40)
    decoder.generate(prefix, options, n=args.n, seed=0)          # warm-up (graph, memory)

    def batched():
        return decoder.generate(prefix, options, n=args.n, seed=0)

    def sequential():
        return [decoder.generate(prefix, options, n=1, seed=i)[0] for i in range(args.n)]
    times = {"batch": [], "sequential": []}
    for r in range(args.rounds):
        order = [("batch", batched), ("sequential", sequential)]
        for name, f in (order if r % 2 == 0 else order[::-1]):
            start = time.perf_counter()
            out = f()
            times[name].append(time.perf_counter() - start)
            assert len(out) == args.n and all(len(c.tokens) == args.length for c in out)
    b, s = statistics.median(times["batch"]), statistics.median(times["sequential"])
    print(f"machine: {cpu_model()}")
    print(f"model: {what}; {args.n} candidates of {args.length} tokens, top-k 40, "
          f"{args.rounds} rounds, medians")
    print(f"one batch   {b:8.3f} s  ({args.n * args.length / b:8.0f} tokens/s)")
    print(f"sequential  {s:8.3f} s  ({args.n * args.length / s:8.0f} tokens/s)")
    print(f"batch speed-up: {s / b:.2f}x")


if __name__ == "__main__":
    main()
