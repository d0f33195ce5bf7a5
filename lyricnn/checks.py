"""Argument checks shared by every module: one helper per kind of check.

Each helper returns the value converted to a plain Python type (so a NumPy
integer from ``np.arange`` or a config file works everywhere, and later code
never meets a ``np.int64`` overflow) or raises ``ValueError`` in one format:

    <name> must be <what>, got <value!r>[ (<type>)][; <hint>]

The type is named when it is the problem (``2.5 (float)``, ``True (bool)``),
because ``repr`` alone hides it for NumPy scalars and strings like ``'3'``.
No MXNet import here: ``lyricnn.ngram`` and the tokenisers use these checks
without loading MXNet.
"""
import math
import numbers
import numpy as np

__all__ = ["check_int", "check_number", "check_choice", "is_integer", "is_real"]


def _is_bool(value):
    # bool is an int subclass, and NumPy's bool_ converts to 0/1 silently:
    # neither is a count or a size, so both are refused.
    return isinstance(value, bool) or type(value).__name__ == "bool_"


def is_integer(value):
    """An ``int`` or NumPy integer, not a bool: the test behind ``check_int``, for callers
    that report a bad value their own way (checkpoint files, plotted histories)."""
    return not _is_bool(value) and isinstance(value, numbers.Integral)


def is_real(value):
    """An ``int``, ``float`` or NumPy real number, not a bool (NaN and inf included)."""
    return not _is_bool(value) and isinstance(value, numbers.Real)


def _fail(name, what, value, hint=None, show_type=False):
    got = f"{value!r} ({type(value).__name__})" if show_type else repr(value)
    message = f"{name} must be {what}, got {got}"
    if hint:
        message += f"; {hint}"
    raise ValueError(message)


def _range_text(kind, minimum, maximum, low_open=False):
    low = ">" if low_open else ">="
    if minimum is not None and maximum is not None:
        if low_open:
            return f"{kind} > {minimum} and <= {maximum}"
        return f"{kind} between {minimum} and {maximum}"
    if minimum is not None:
        return f"{kind} {low} {minimum}"
    if maximum is not None:
        return f"{kind} <= {maximum}"
    return kind


def check_int(name, value, minimum=1, maximum=None, *, hint=None):
    """``value`` as an ``int`` if it is an integer in ``[minimum, maximum]``.

    Accepts ``int`` and NumPy integers; refuses ``bool`` (``True`` is not a
    size), floats (even ``10.0``: a float count usually means a division went
    wrong upstream) and strings. ``minimum``/``maximum`` may be ``None`` (no
    bound). ``hint`` is appended to the message (how to fix it).
    """
    what = _range_text("an integer", minimum, maximum)
    if not is_integer(value):
        _fail(name, what, value, hint, show_type=True)
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        _fail(name, what, value, hint)
    return value


def check_number(name, value, minimum=None, maximum=None, *, low_open=False, finite=True,
                 hint=None):
    """``value`` as a ``float`` if it is a real number in range.

    Accepts ``int``, ``float`` and NumPy numbers; refuses ``bool``, strings
    and NaN always, and infinities when ``finite`` (the default).
    ``minimum`` is inclusive unless ``low_open`` (``lr > 0``: pass
    ``minimum=0, low_open=True``); ``maximum`` is inclusive.
    """
    kind = "a finite number" if finite else "a number"
    what = _range_text(kind, minimum, maximum, low_open)
    if _is_bool(value) or not isinstance(value, numbers.Real):
        _fail(name, what, value, hint, show_type=True)
    number = float(value)
    if math.isnan(number) or (finite and math.isinf(number)):
        _fail(name, what, value, hint)
    if minimum is not None and (number <= minimum if low_open else number < minimum):
        _fail(name, what, value, hint)
    if maximum is not None and number > maximum:
        _fail(name, what, value, hint)
    return number


def check_choice(name, value, choices, *, hint=None):
    """``value`` itself if it is one of ``choices`` (compared with ``==``).

    Unhashable values (a list where a name was expected) and ``bool`` where
    no bool is allowed (``True == 1``) are refused like any other bad value.
    """
    choices = list(choices)
    shown = ", ".join(repr(c) for c in choices)
    what = f"one of {shown}"
    bool_allowed = any(_is_bool(c) for c in choices)
    try:
        found = any(value == c for c in choices) and (bool_allowed or not _is_bool(value))
    except (TypeError, ValueError):  # an array's == is elementwise: not a choice
        found = False
    if not found:
        _fail(name, what, value, hint)
    return value

def check_indices(name, indices, vocab_size):
    """``ValueError`` unless every index in ``indices`` lies in ``[0, vocab_size)``."""
    if len(indices) == 0:
        raise ValueError(f"{name} is empty")
    arr = np.asarray(indices)
    low, high = arr.min(), arr.max()
    if low < 0 or high >= vocab_size or not np.all(arr == np.floor(arr)):
        raise ValueError(f"{name} must hold integer indices in [0, vocab_size={vocab_size}), "
                         f"found values in [{low}, {high}]; index the corpus with the same "
                         "vocabulary as the model")
