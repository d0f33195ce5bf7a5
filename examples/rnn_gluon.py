"""Book 6.5: the concise Gluon RNN on the Jay Chou lyrics (consecutive sampling).

Defaults are the book's experiment; flags shorten it or swap the cell:

    python examples/rnn_gluon.py                          # rnn.RNN(256), 250 epochs
    python examples/rnn_gluon.py --cell lstm --layers 2 --epochs 100
"""
import argparse

from mxnet.gluon import rnn

import lyricnn as d2l

CELLS = {"rnn": rnn.RNN, "gru": rnn.GRU, "lstm": rnn.LSTM}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=250, help="training epochs (book: 250)")
    parser.add_argument("--cell", choices=sorted(CELLS), default="rnn",
                        help="Gluon recurrent layer (book: rnn, ReLU activation)")
    parser.add_argument("--layers", type=int, default=1, help="recurrent layers (book: 1)")
    parser.add_argument("--steps", type=int, default=35, help="num_steps (book: 35)")
    parser.add_argument("--batch", type=int, default=32, help="batch_size (book: 32)")
    parser.add_argument("--lr", type=float, default=1e2, help="learning rate (book: 1e2)")
    parser.add_argument("--clip", type=float, default=1e-2, help="clipping_theta (book: 1e-2)")
    parser.add_argument("--hidden", type=int, default=256, help="num_hiddens (book: 256)")
    parser.add_argument("--period", type=int, default=50, help="report every N epochs (book: 50)")
    parser.add_argument("--pred-len", type=int, default=50, help="characters to generate (book: 50)")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    args = parser.parse_args(argv)

    corpus_indices, char_to_idx, idx_to_char, vocab_size = d2l.load_data_jay_lyrics()
    ctx = d2l.try_gpu()
    d2l.set_seed(args.seed)
    model = d2l.RNNModel(CELLS[args.cell](args.hidden, num_layers=args.layers), vocab_size)
    d2l.train_and_predict_rnn_gluon(
        model, args.hidden, vocab_size, ctx, corpus_indices, idx_to_char, char_to_idx,
        args.epochs, args.steps, args.lr, args.clip, args.batch, args.period, args.pred_len,
        ["分开", "不分开"])


if __name__ == "__main__":
    main()
