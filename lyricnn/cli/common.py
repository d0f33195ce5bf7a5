"""TODO docstring (cli.common, from cli.py)."""
# Only the standard library at import time: the console script imports this
# module before main() can install its signal handlers, and a Ctrl-C while
# MXNet loads must still end in one line, not a traceback.  Importing
# lyricnn.cli runs lyricnn/__init__.py first, which sets OMP_NUM_THREADS
# before MXNet loads.
import argparse
import signal

BOOK_PREFIXES = ("分开", "不分开")
PLOT_NAME = "perplexity.png"
CHECKPOINT_NAME = "checkpoint"
BEST_NAME = "best"
EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}


class UsageError(ValueError):
    """Bad flags or bad input named on the command line: exit 2."""


class Failure(RuntimeError):
    """A runtime failure that is not the user's flags: exit 1."""


def _checked(check):
    """argparse ``type=`` from a ``lyricnn.checks`` call on the parsed text."""
    def convert(text):
        value = text  # neither an int nor a float: the check names what it must be
        for parse in (int, float):
            try:
                value = parse(text)
                break
            except ValueError:
                continue
        try:
            return check(value)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
    return convert


def _add_ctx(p):
    p.add_argument("--ctx", choices=("cpu", "gpu"), default="cpu",
                   help="device; gpu falls back to the CPU with a warning (default cpu)")


def _add_checkpoint(p, help="run directory or checkpoint directory"):
    p.add_argument("--checkpoint", required=True, metavar="DIR", help=help)


def _flag(name):
    from lyricnn.run.config import flag_of
    return flag_of(name)


def _load_corpus(config):
    from lyricnn.run.config import PTB_CORPUS
    from lyricnn.data.corpus import load_corpus_chars
    from lyricnn.data.words import corpus_text_of
    try:
        if config.is_word:
            return corpus_text_of(config)
        return load_corpus_chars(config.corpus, config.num_chars)
    except (OSError, ValueError) as err:
        if config.corpus in (None, PTB_CORPUS):  # the data hub's file: not the user's input
            raise Failure(str(err)) from None
        raise UsageError(f"--corpus {config.corpus}: {err}" if config.corpus not in str(err)
                         else str(err)) from None


def _word_corpus(config, text, held_out=True):
    """The run's ``WordCorpus``; a text without words etc. is a usage error naming it."""
    from lyricnn.data.words import word_corpus_of
    try:
        return word_corpus_of(config, text, held_out)
    except ValueError as err:
        raise UsageError(f"--corpus {config.corpus or 'of the data hub'}: {err}") from None


def _prefixes(requested, vocab, text):
    """The log's prefixes: the given ones (checked now, not after an epoch) or defaults."""
    if requested:
        for prefix in requested:
            if not prefix:
                raise UsageError("--prefix must not be empty")
            missing = "".join(dict.fromkeys(c for c in prefix if c not in vocab))
            if missing:
                raise UsageError(f"--prefix {prefix!r}: character(s) {missing!r} are not in "
                                 "the corpus")
        return list(requested)
    if all(c in vocab for p in BOOK_PREFIXES for c in p):
        return list(BOOK_PREFIXES)
    return [text[:2]]


def _load(args):
    from lyricnn.run.checkpoint import load_checkpoint
    from lyricnn.context import resolve_ctx
    return load_checkpoint(args.checkpoint, resolve_ctx(args.ctx))


def _replace(config, **changes):
    import dataclasses
    return dataclasses.replace(config, **changes)


def _read_user_text(path):
    from lyricnn.data.corpus import read_text
    try:
        return read_text(path)
    except (OSError, ValueError) as err:
        raise UsageError(f"--text {path}: {err}" if str(path) not in str(err) else str(err)) \
            from None
