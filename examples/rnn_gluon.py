"""Book 6.5: the concise Gluon RNN on the Jay Chou lyrics (consecutive sampling).

Defaults are the book's experiment; flags shorten it or swap the cell:

    python examples/rnn_gluon.py                          # rnn.RNN(256), 250 epochs
    python examples/rnn_gluon.py --cell lstm --layers 2 --epochs 100
"""
import argparse

import lyricnn as d2l  # first, as in the book: it sets MXNet's OpenMP threads
from mxnet.gluon import rnn

from book_flags import add_book_flags, book_config

CELLS = {"rnn": rnn.RNN, "gru": rnn.GRU, "lstm": rnn.LSTM}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cell", choices=sorted(CELLS), default="rnn",
                        help="Gluon recurrent layer (book: rnn, ReLU activation)")
    add_book_flags(parser, num_epochs=250, pred_period=50, layers=True)
    args = parser.parse_args(argv)
    config, train = book_config(args)

    corpus_indices, char_to_idx, idx_to_char, vocab_size = d2l.load_data_jay_lyrics()
    ctx = d2l.try_gpu()
    d2l.set_seed(config.seed)
    h = config.num_hiddens
    model = d2l.RNNModel(CELLS[args.cell](h, num_layers=config.num_layers), vocab_size)
    d2l.train_and_predict_rnn_gluon(
        model, h, vocab_size, ctx, corpus_indices, idx_to_char, char_to_idx, train.num_epochs,
        config.num_steps, config.lr, config.clipping_theta, config.batch_size,
        train.pred_period, train.pred_len, ["分开", "不分开"])


if __name__ == "__main__":
    main()
