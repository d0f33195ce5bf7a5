"""A worker of tests/test_parallel.py's distributed tests: trains small models on the
lyrics, data-parallel, and saves their final parameters for the test to compare.

Run as ``python parallel_worker.py OUT_DIR KVSTORE [CTX]``: every case of ``CASES``
is trained in float64 (float_error.py: whole trainings are compared in float64) with
``kvstore=KVSTORE`` (``'none'`` for a single process) on devices ``CTX`` (default
``cpu``), and the parameters of case ``name`` are written to
``OUT_DIR/<name>-rank<R>.npz`` (rank 0 of the KVStore; 0 without one), with the
perplexities as ``_perplexity`` and the initial weights as ``_start.<name>``.
"""
import os
import sys

import numpy as np

import lyricnn as d2l
from lyricnn.training.parallel import worker_info
from lyricnn.training.loop import train_epochs

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from float_error import float64_lm  # noqa: E402

#: (name, model, random sampler?, clipping theta): the book's scratch RNN and Gluon RNN.
CASES = [("scratch-random", "rnn-scratch", True, 1e-2),
         ("scratch-consecutive", "rnn-scratch", False, 1e-2),
         ("gluon-random", "rnn", True, 0.5),
         ("gluon-consecutive", "rnn", False, 0.5)]


def main(out, kvstore, ctx="cpu"):
    kvstore = None if kvstore == "none" else kvstore
    rank, _ = worker_info(kvstore)
    corpus, _, _, vocab_size = d2l.load_data_jay_lyrics()
    for name, model, random_iter, theta in CASES:
        d2l.set_seed(7)
        lm = float64_lm(model, vocab_size, 16, ctx=ctx.split(",")[0])
        start = {f"_start.{k}": v.asnumpy() for k, v in lm.named_parameters().items()}
        history = train_epochs(lm, corpus[:800], random_iter, 6, 8, 1.0, theta, range(1, 3),
                               ctx=ctx, kvstore=kvstore)
        arrays = {k: v.asnumpy() for k, v in lm.named_parameters().items()}
        arrays["_perplexity"] = np.array(history.perplexity)
        arrays.update(start)
        np.savez(os.path.join(out, f"{name}-rank{rank}.npz"), **arrays)


if __name__ == "__main__":
    main(*sys.argv[1:])
