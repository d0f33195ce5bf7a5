"""Book 6.7-6.9: GRU and LSTM on the Jay Chou lyrics, from scratch and with Gluon.

Defaults are the book's experiment (consecutive sampling, 160 epochs, hidden
256, report every 40 epochs) for all four combinations; flags pick a subset,
shorten it or stack layers:

    python examples/gated.py                                  # GRU+LSTM x scratch+Gluon
    python examples/gated.py --cell lstm --impl scratch --epochs 40
    python examples/gated.py --cell gru --layers 2            # deep GRU (book 6.9)
"""
import argparse

import lyricnn as d2l  # first, as in the book: it sets MXNet's OpenMP threads
from mxnet.gluon import rnn

from book_flags import add_book_flags, book_config

GLUON = {"gru": rnn.GRU, "lstm": rnn.LSTM}


def run(cell, impl, config, train, data, ctx):
    """Train one model with the book's loop; returns its ``History``."""
    corpus_indices, char_to_idx, idx_to_char, vocab_size = data
    h, layers = config.num_hiddens, config.num_layers
    d2l.set_seed(config.seed)
    common = (train.num_epochs, config.num_steps, config.lr, config.clipping_theta,
              config.batch_size, train.pred_period, train.pred_len, ["分开", "不分开"])
    if impl == "scratch":  # the deep forms with 1 layer are gru/lstm themselves
        return d2l.train_and_predict_rnn(
            d2l.deep_gru if cell == "gru" else d2l.deep_lstm,
            d2l.deep_params_getter(cell, vocab_size, h, layers, ctx),
            d2l.deep_state_initializer(cell, layers), h, vocab_size, ctx, corpus_indices,
            idx_to_char, char_to_idx, False, *common)
    model = d2l.RNNModel(GLUON[cell](h, num_layers=layers), vocab_size)
    return d2l.train_and_predict_rnn_gluon(model, h, vocab_size, ctx, corpus_indices,
                                           idx_to_char, char_to_idx, *common)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cell", choices=["gru", "lstm", "both"], default="both",
                        help="recurrent cell: gru (6.7), lstm (6.8) or both (default)")
    parser.add_argument("--impl", choices=["scratch", "gluon", "both"], default="both",
                        help="from scratch (lyricnn.book.gated), Gluon rnn.GRU/LSTM, or both (default)")
    add_book_flags(parser, num_epochs=160, pred_period=40, layers=True)
    args = parser.parse_args(argv)
    config, train = book_config(args)

    data = d2l.load_data_jay_lyrics()
    ctx = d2l.try_gpu()
    cells = ["gru", "lstm"] if args.cell == "both" else [args.cell]
    impls = ["scratch", "gluon"] if args.impl == "both" else [args.impl]
    summary = {}
    for cell in cells:
        for impl in impls:
            print(f"== {cell.upper()}, {impl}, {config.num_layers} layer(s)", flush=True)
            summary[cell, impl] = run(cell, impl, config, train, data, ctx)

    reported = list(range(train.pred_period, train.num_epochs + 1, train.pred_period))
    print("\nperplexity at epoch " + " ".join(f"{e:>9d}" for e in reported))
    for (cell, impl), history in summary.items():
        print(f"{cell.upper() + ' ' + impl:<20}" +
              " ".join(f"{history.perplexity[e - 1]:>9.2f}" for e in reported))


if __name__ == "__main__":
    main()
