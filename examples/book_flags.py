"""The book's hyperparameter flags for the example scripts, from ``lyricnn.run.config``.

The flags, their defaults (the book's) and their help come from the same
dataclasses as the ``lyricnn`` command's and the checkpoints' config, so the
three cannot disagree: ``--num-hiddens`` (alias ``--hidden``), ``--num-steps``
(``--steps``), ``--batch-size`` (``--batch``), ``--lr``, ``--clipping-theta``
(``--clip``), ``--seed``, ``--num-epochs`` (``--epochs``), ``--pred-period``
(``--period``), ``--pred-len``.
"""
from lyricnn.run.config import RunConfig, TrainSettings
from lyricnn.run.flags import add_config_arguments

BOOK_FIELDS = ("num_hiddens", "num_steps", "batch_size", "lr", "clipping_theta", "seed")


def add_book_flags(parser, num_epochs, pred_period, layers=False):
    """Add the chapter's hyperparameters to ``parser``; this example's epochs and period."""
    fields = BOOK_FIELDS + (("num_layers",) if layers else ())
    add_config_arguments(parser, RunConfig, only=fields)
    add_config_arguments(parser, TrainSettings,
                         defaults=dict(num_epochs=num_epochs, pred_period=pred_period))
    parser.set_defaults(_book_defaults=dict(num_epochs=num_epochs, pred_period=pred_period))
    return parser


def book_config(args):
    """``(RunConfig, TrainSettings)`` of parsed flags, checked (a bad value names its flag)."""
    return (RunConfig.from_args(args),
            TrainSettings.from_args(args, defaults=args._book_defaults))
