"""How a config field appears on the command line: its ``Option`` (help, check, parsing,
aliases) and the flags ``add_config_arguments`` generates from a config class.

``lyricnn.run.config`` declares the fields with their options; this module
turns them into argparse flags, so the CLI, the examples and the checkpoint
cannot disagree on a name, a default or a range.
"""
import argparse
from dataclasses import dataclass
from typing import Callable, Optional, Tuple


# -- parsing command-line text (the check then judges the value) ------------------

class All:
    """Marker for ``--num-chars all``: given, meaning ``None`` (argparse's None is 'not given')."""

    def __repr__(self):
        return "'all'"


ALL = All()


def int_text(text):
    try:
        return int(text)
    except ValueError:
        return text  # the check names the field and says what it must be


def float_text(text):
    try:
        return float(text)
    except ValueError:
        return text


def num_chars_text(text):
    """``'all'`` or ``0``: the whole file (``None`` once parsed); otherwise a positive count."""
    if text.strip().lower() in ("all", "0"):
        return ALL
    return int_text(text)


@dataclass(frozen=True)
class Option:
    """How a field is checked and how it appears on the command line.

    ``check(name, value) -> value`` raises ``ValueError`` naming the field;
    ``parse(text) -> value`` turns a flag's text into what ``check`` judges;
    ``flag=False``: derived, no flag; ``choices``: a callable giving the
    allowed values (shown in ``--help``).
    """

    help: str
    check: Callable
    parse: Callable = str
    aliases: Tuple[str, ...] = ()
    metavar: Optional[str] = None
    choices: Optional[Callable] = None
    flag: bool = True
    switch: bool = False  # a flag without a value: given means True


def flag_of(name):
    """The command-line flag of field ``name``: ``num_hiddens`` -> ``--num-hiddens``."""
    return "--" + name.replace("_", "-")


def _argparse_type(name, option):
    """argparse ``type=``: text -> checked value, or an error naming flag, value and range."""
    def convert(text):
        value = option.parse(text)
        if value is ALL:
            return ALL
        try:
            return option.check(name, value)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
    convert.__name__ = name
    return convert


def add_config_arguments(parser, config_class, defaults=None, only=None):
    """Add one flag per field of ``config_class`` to ``parser``; return ``parser``.

    Flags are ``flag_of(name)`` plus the field's aliases, with the field's
    help, range check and choices; the help shows the default.  Parsed values
    are ``None`` when a flag is not given (so a resume can tell what was
    asked for): build the config with ``config_class.from_args(args)``.
    ``defaults``: ``{name: value}`` shown instead of the class's (an example
    with the book's 500 epochs); pass them to ``from_args`` too.  ``only``:
    the field names to add (default: every flag field).
    """
    shown = {**config_class.defaults(), **(defaults or {})}
    for name, option in config_class.options().items():
        if not option.flag or (only is not None and name not in only):
            continue
        default = shown[name]
        # A default of None is explained by the help itself (corpus, sampler).
        help_text = option.help if default is None else f"{option.help} (default: {default})"
        kwargs = {"dest": name, "default": None, "help": help_text}
        if option.choices is not None:
            # Listed, not enforced by argparse: the check's message names the field.
            choices = option.choices()
            kwargs["metavar"] = "{" + ",".join(choices) + "}"
        elif option.metavar:
            kwargs["metavar"] = option.metavar
        if option.switch:
            kwargs.update(action="store_const", const=True)
            kwargs.pop("metavar", None)
        else:
            kwargs["type"] = _argparse_type(name, option)
        parser.add_argument(flag_of(name), *option.aliases, **kwargs)
    return parser

