"""The training log: the one place where the library prints.

The book's lines (``epoch 50, perplexity 69.879726, time 1.67 sec`` and
`` - <sample>``) go to stdout through ``book_print``; everything else lyricnn
says goes through ``logging``.
"""
from lyricnn.decoding.generate import generate


def book_print(*parts):
    """The one place where the library prints: the book's training log lines."""
    print(*parts, flush=True)


def book_logger(lm, pred_period, pred_len, prefixes, idx_to_char, char_to_idx,
                should_stop=None):
    """``on_epoch_end`` printing the book's lines every ``pred_period`` epochs::

        epoch 50, perplexity 69.879726, time 1.67 sec
         - 分开 我想要你想你 ...

    With a held-out set the first line ends in ``, valid perplexity …``.
    ``should_stop()`` cuts a long sample short (``generate``).
    """
    def log(epoch, history):
        if epoch % pred_period:
            return
        line = "epoch %d, perplexity %f, time %.2f sec" % (
            epoch, history.perplexity[-1], history.seconds[-1])
        if history.valid_perplexity[-1] is not None:
            line += ", valid perplexity %f" % history.valid_perplexity[-1]
        book_print(line)
        for prefix in prefixes:
            book_print(" -", generate(lm, prefix, pred_len, idx_to_char, char_to_idx,
                                      should_stop=should_stop))
    return log
