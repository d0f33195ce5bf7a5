"""What the subcommands share: the two error kinds, the run folder's names, common flags."""
import argparse
import dataclasses

from lyricnn.checks import check_int, check_number
from lyricnn.context import resolve_ctx
from lyricnn.data.corpus import read_text
from lyricnn.run.checkpoint import load_checkpoint
from lyricnn.run.config import PTB_CORPUS
from lyricnn.run.task import task_of

BOOK_PREFIXES = ("分开", "不分开")
PLOT_NAME = "perplexity.png"
CHECKPOINT_NAME = "checkpoint"
BEST_NAME = "best"


class UsageError(ValueError):
    """Bad flags or bad input named on the command line: exit 2."""


class Failure(RuntimeError):
    """A runtime failure that is not the user's flags: exit 1."""


def checked(check):
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


def add_ctx(p):
    p.add_argument("--ctx", choices=("cpu", "gpu"), default="cpu",
                   help="device; gpu falls back to the CPU with a warning (default cpu)")


def add_checkpoint(p, help="run directory or checkpoint directory"):
    p.add_argument("--checkpoint", required=True, metavar="DIR", help=help)


def load(args):
    """The checkpoint of ``--checkpoint`` on ``--ctx``."""
    return load_checkpoint(args.checkpoint, resolve_ctx(args.ctx))


def replace(config, **changes):
    return dataclasses.replace(config, **changes)


def corpus_text(config):
    """The text a run of ``config`` trains on; a bad corpus file is a usage error naming it."""
    try:
        return task_of(config).text(config)
    except (OSError, ValueError) as err:
        if config.corpus in (None, PTB_CORPUS):  # the data hub's file: not the user's input
            raise Failure(str(err)) from None
        raise UsageError(f"--corpus {config.corpus}: {err}" if config.corpus not in str(err)
                         else str(err)) from None


def corpus_of(config, text, held_out=True):
    """The run's ``Corpus``; a text without words etc. is a usage error naming it."""
    try:
        return task_of(config).corpus(config, text, held_out)
    except ValueError as err:
        raise UsageError(f"--corpus {config.corpus or 'of the data hub'}: {err}") from None


def read_user_text(path):
    try:
        return read_text(path)
    except (OSError, ValueError) as err:
        raise UsageError(f"--text {path}: {err}" if str(path) not in str(err) else str(err)) \
            from None


def add_mixture(p):
    """``--mix-ngram N`` and ``--mix-weight W``: read the model mixed with an n-gram."""
    p.add_argument("--mix-ngram", default=0, metavar="N",
                   type=checked(lambda v: check_int("mix_ngram", v, 0, 10)),
                   help="mix the model with a Kneser-Ney N-gram fitted on its training text "
                        "(Mikolov's RNN + KN; 0: the model alone; the lyrics recipe uses 5)")
    p.add_argument("--mix-weight", default=0.5, metavar="W",
                   type=checked(lambda v: check_number("mix_weight", v, 0, 1, low_open=True)),
                   help="the model's share of the mixture (default 0.5)")


def model_of(args, ckpt):
    """The checkpoint's model, mixed with an n-gram if ``--mix-ngram`` asks for it."""
    if not args.mix_ngram:
        return ckpt.lm
    try:
        return task_of(ckpt.config).mixture(ckpt.config, ckpt.vocab, ckpt.lm, ckpt.corpus_text,
                                            args.mix_ngram, args.mix_weight)
    except ValueError as err:
        raise UsageError(f"--mix-ngram {args.mix_ngram}: {err}") from None
