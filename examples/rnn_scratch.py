"""Book 6.4: the RNN from scratch on the Jay Chou lyrics, random and consecutive sampling.

Defaults are the book's experiment; flags shorten it:

    python examples/rnn_scratch.py                       # 250 epochs, both samplers
    python examples/rnn_scratch.py --epochs 50 --sampler random
"""
import argparse

import lyricnn as d2l
from book_flags import add_book_flags, book_config


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # dest 'samplers': 'sampler' is a RunConfig field, which takes one sampler
    parser.add_argument("--sampler", dest="samplers", default="both",
                        choices=["random", "consecutive", "both"],
                        help="minibatch sampler (book: both, one after the other)")
    add_book_flags(parser, num_epochs=250, pred_period=50)
    args = parser.parse_args(argv)
    config, train = book_config(args)

    corpus_indices, char_to_idx, idx_to_char, vocab_size = d2l.load_data_jay_lyrics()
    ctx = d2l.try_gpu()
    h = config.num_hiddens
    samplers = ["random", "consecutive"] if args.samplers == "both" else [args.samplers]
    for sampler in samplers:
        print(f"== {sampler} sampling")
        d2l.set_seed(config.seed)
        d2l.train_and_predict_rnn(
            d2l.rnn, d2l.params_getter(vocab_size, h, ctx), d2l.init_rnn_state, h, vocab_size,
            ctx, corpus_indices, idx_to_char, char_to_idx, sampler == "random",
            train.num_epochs, config.num_steps, config.lr, config.clipping_theta,
            config.batch_size, train.pred_period, train.pred_len, ["分开", "不分开"])


if __name__ == "__main__":
    main()
