"""Seconds per training epoch of the GRU and LSTM: d2lzh (the book) against lyricnn.

The book's sections 6.7-6.8 on the same corpus, hyperparameters (hidden 256,
35 steps, batch 32, consecutive sampling) and device, in one process,
alternating round by round.  Scratch: d2lzh's ``train_and_predict_rnn`` with
the notebook's ``gru``/``lstm`` (``book_notebook_gated.py``) against lyricnn's
with ``lyricnn.gated``; Gluon: ``train_and_predict_rnn_gluon`` with each
package's ``RNNModel(rnn.GRU/LSTM(256))``.  Reuses ``bench_train``'s timer.

    .venv/bin/python benchmarks/bench_gated.py
    .venv/bin/python benchmarks/bench_gated.py --cells lstm --impls scratch --rounds 5
"""
import argparse
import os
import sys
from pathlib import Path

# lyricnn first: it picks MXNet's OpenMP thread count before MXNet loads.
import lyricnn  # noqa: E402  (isort: skip)
import d2lzh
import mxnet as mx
from mxnet.gluon import rnn as gluon_rnn

from lyricnn import gated

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import book_notebook_gated as book  # noqa: E402
from benchmarks.bench_train import BATCH, CLIP, HIDDEN, LR, STEPS, compare  # noqa: E402

SCRATCH = {
    "gru": (book.gru, book.make_gru_get_params, book.init_gru_state,
            gated.gru, gated.get_gru_params, gated.init_gru_state),
    "lstm": (book.lstm, book.make_lstm_get_params, book.init_lstm_state,
             gated.lstm, gated.get_lstm_params, gated.init_lstm_state),
}
GLUON = {"gru": gluon_rnn.GRU, "lstm": gluon_rnn.LSTM}


def scratch_runners(cell, data, epochs, ctx):
    """The book's notebook cell through d2lzh and lyricnn's cell through lyricnn."""
    ci, c2i, i2c, V = data
    book_cell, book_get_params, book_init, cell_fn, factory, init_state = SCRATCH[cell]
    common = (HIDDEN, V, ctx, ci, i2c, c2i, False, epochs, STEPS, LR, CLIP, BATCH,
              epochs + 1, 1, ["分开"])
    return {
        "d2lzh": lambda: d2lzh.train_and_predict_rnn(
            book_cell, book_get_params(V, HIDDEN, ctx), book_init, *common),
        "lyricnn": lambda: lyricnn.train_and_predict_rnn(
            cell_fn, lyricnn.params_getter(V, HIDDEN, ctx, factory=factory), init_state,
            *common),
    }


def gluon_runners(cell, data, epochs, ctx):
    """Each package's ``RNNModel`` around a fresh ``rnn.GRU/LSTM(HIDDEN)``."""
    ci, c2i, i2c, V = data
    common = (HIDDEN, V, ctx, ci, i2c, c2i, epochs, STEPS, LR, CLIP, BATCH, epochs + 1, 1,
              ["分开"])
    return {
        "d2lzh": lambda: d2lzh.train_and_predict_rnn_gluon(
            d2lzh.RNNModel(GLUON[cell](HIDDEN), V), *common),
        "lyricnn": lambda: lyricnn.train_and_predict_rnn_gluon(
            lyricnn.RNNModel(GLUON[cell](HIDDEN), V), *common),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", default="gru,lstm",
                        help="comma-separated: gru, lstm (default: both)")
    parser.add_argument("--impls", default="scratch,gluon",
                        help="comma-separated: scratch, gluon (default: both)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per timed run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    args = parser.parse_args()
    ctx = mx.cpu()
    data = lyricnn.load_data_jay_lyrics()
    print(f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '(unset)')}, "
          f"hidden {HIDDEN}, steps {STEPS}, batch {BATCH}, vocab {data[3]}, "
          f"consecutive sampling")
    runners = {"scratch": scratch_runners, "gluon": gluon_runners}
    for impl in args.impls.split(","):
        for cell in args.cells.split(","):
            label = f"{impl} {cell}" if impl == "scratch" else f"gluon rnn.{cell.upper()}"
            compare(label, runners[impl](cell, data, args.epochs, ctx), args.epochs, args.rounds)


if __name__ == "__main__":
    main()
