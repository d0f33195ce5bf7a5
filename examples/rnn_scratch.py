"""Book 6.4: the RNN from scratch on the Jay Chou lyrics, random and consecutive sampling.

Defaults are the book's experiment; flags shorten it:

    python examples/rnn_scratch.py                       # 250 epochs, both samplers
    python examples/rnn_scratch.py --epochs 50 --sampler random
"""
import argparse

import lyricnn as d2l


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=250, help="training epochs (book: 250)")
    parser.add_argument("--sampler", choices=["random", "consecutive", "both"], default="both",
                        help="minibatch sampler (book: both, one after the other)")
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
    samplers = ["random", "consecutive"] if args.sampler == "both" else [args.sampler]
    for sampler in samplers:
        print(f"== {sampler} sampling")
        d2l.set_seed(args.seed)
        d2l.train_and_predict_rnn(
            d2l.rnn, d2l.params_getter(vocab_size, args.hidden, ctx), d2l.init_rnn_state,
            args.hidden, vocab_size, ctx, corpus_indices, idx_to_char, char_to_idx,
            sampler == "random", args.epochs, args.steps, args.lr, args.clip, args.batch,
            args.period, args.pred_len, ["分开", "不分开"])


if __name__ == "__main__":
    main()
