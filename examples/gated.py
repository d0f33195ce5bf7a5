"""Book 6.7-6.9: GRU and LSTM on the Jay Chou lyrics, from scratch and with Gluon.

Defaults are the book's experiment (consecutive sampling, 160 epochs, hidden
256, report every 40 epochs) for all four combinations; flags pick a subset,
shorten it or stack layers:

    python examples/gated.py                                  # GRU+LSTM x scratch+Gluon
    python examples/gated.py --cell lstm --impl scratch --epochs 40
    python examples/gated.py --cell gru --layers 2            # deep GRU (book 6.9)
"""
import argparse

from mxnet.gluon import rnn

import lyricnn as d2l
from lyricnn import deep, gated

SCRATCH = {  # cell -> (step function, get_params factory, init_state) for one layer
    "gru": (gated.gru, gated.get_gru_params, gated.init_gru_state),
    "lstm": (gated.lstm, gated.get_lstm_params, gated.init_lstm_state),
}
GLUON = {"gru": rnn.GRU, "lstm": rnn.LSTM}


def scratch_model(cell, vocab_size, num_hiddens, num_layers, ctx):
    """``(step_fn, get_params, init_state)`` as ``train_and_predict_rnn`` takes them."""
    if num_layers == 1:
        step_fn, factory, init_state = SCRATCH[cell]
        return step_fn, d2l.params_getter(vocab_size, num_hiddens, ctx, factory=factory), \
            init_state
    return (deep.deep_gru if cell == "gru" else deep.deep_lstm,
            deep.deep_params_getter(cell, vocab_size, num_hiddens, num_layers, ctx),
            deep.deep_state_initializer(cell, num_layers))


def run(cell, impl, args, data, ctx):
    """Train one model with the book's loop; returns its ``History``."""
    corpus_indices, char_to_idx, idx_to_char, vocab_size = data
    d2l.set_seed(args.seed)
    prefixes = ["分开", "不分开"]
    if impl == "scratch":
        step_fn, get_params, init_state = scratch_model(cell, vocab_size, args.hidden,
                                                        args.layers, ctx)
        return d2l.train_and_predict_rnn(
            step_fn, get_params, init_state, args.hidden, vocab_size, ctx, corpus_indices,
            idx_to_char, char_to_idx, False, args.epochs, args.steps, args.lr, args.clip,
            args.batch, args.period, args.pred_len, prefixes)
    model = d2l.RNNModel(GLUON[cell](args.hidden, num_layers=args.layers), vocab_size)
    return d2l.train_and_predict_rnn_gluon(
        model, args.hidden, vocab_size, ctx, corpus_indices, idx_to_char, char_to_idx,
        args.epochs, args.steps, args.lr, args.clip, args.batch, args.period, args.pred_len,
        prefixes)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cell", choices=["gru", "lstm", "both"], default="both",
                        help="recurrent cell: gru (6.7), lstm (6.8) or both (default)")
    parser.add_argument("--impl", choices=["scratch", "gluon", "both"], default="both",
                        help="from scratch (lyricnn.gated), Gluon rnn.GRU/LSTM, or both (default)")
    parser.add_argument("--layers", type=int, default=1,
                        help="stacked recurrent layers (book: 1; 6.9 discusses more)")
    parser.add_argument("--epochs", type=int, default=160, help="training epochs (book: 160)")
    parser.add_argument("--steps", type=int, default=35, help="num_steps (book: 35)")
    parser.add_argument("--batch", type=int, default=32, help="batch_size (book: 32)")
    parser.add_argument("--lr", type=float, default=1e2, help="learning rate (book: 1e2)")
    parser.add_argument("--clip", type=float, default=1e-2, help="clipping_theta (book: 1e-2)")
    parser.add_argument("--hidden", type=int, default=256, help="num_hiddens (book: 256)")
    parser.add_argument("--period", type=int, default=40, help="report every N epochs (book: 40)")
    parser.add_argument("--pred-len", type=int, default=50,
                        help="characters to generate (book: 50)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (d2l.set_seed)")
    args = parser.parse_args(argv)
    if args.layers < 1:
        parser.error("--layers must be >= 1")

    data = d2l.load_data_jay_lyrics()
    ctx = d2l.try_gpu()
    cells = ["gru", "lstm"] if args.cell == "both" else [args.cell]
    impls = ["scratch", "gluon"] if args.impl == "both" else [args.impl]
    summary = {}
    for cell in cells:
        for impl in impls:
            print(f"== {cell.upper()}, {impl}, {args.layers} layer(s)", flush=True)
            summary[cell, impl] = run(cell, impl, args, data, ctx)

    reported = list(range(args.period, args.epochs + 1, args.period))
    print("\nperplexity at epoch " + " ".join(f"{e:>9d}" for e in reported))
    for (cell, impl), history in summary.items():
        print(f"{cell.upper() + ' ' + impl:<20}" +
              " ".join(f"{history.perplexity[e - 1]:>9.2f}" for e in reported))


if __name__ == "__main__":
    main()
