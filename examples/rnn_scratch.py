"""Book 6.4: the RNN from scratch on the Jay Chou lyrics, random and consecutive sampling.

Defaults are the book's experiment; flags shorten it:

    python examples/rnn_scratch.py                       # 250 epochs, both samplers
    python examples/rnn_scratch.py --epochs 50 --sampler random
"""
import argparse

import lyricnn as d2l
from book_flags import add_book_flags


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sampler", choices=["random", "consecutive", "both"], default="both",
                        help="minibatch sampler (book: both, one after the other)")
    add_book_flags(parser, epochs=250, period=50)
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
