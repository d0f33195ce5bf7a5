"""Argument checks shared by every module: one helper per kind of check.

Each helper returns the value converted to a plain Python type (so a NumPy
integer from ``np.arange`` or a config file works everywhere, and later code
never meets a ``np.int64`` overflow) or raises ``ValueError`` in one format:

    <name> must be <what>, got <value!r>[ (<type>)][; <hint>]

The type is named when it is the problem (``2.5 (float)``, ``True (bool)``),
because ``repr`` alone hides it for NumPy scalars and strings like ``'3'``.
No MXNet import here: ``lyricnn.ngram.model`` and the tokenisers use these checks
without loading MXNet.
"""
import math
import numbers

import numpy as np

__all__ = ["check_int", "check_number", "check_choice", "check_indices", "is_integer",
           "is_real"]


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


def check_indices(name, indices, vocab_size=None):
    """``indices`` as a flat float32 NumPy array, after checking they are token indices.

    The one validator of token indices in lyricnn (samplers, training,
    held-out evaluation): a flat sequence (list, NumPy array, NDArray or
    iterator) of non-negative integers, integral floats allowed (the book's
    batches are float32), below ``vocab_size`` when it is given. Float32 holds
    every integer below 2**24 exactly, so larger indices are refused. Raises
    ``ValueError`` naming ``name``.
    """
    if isinstance(indices, (str, bytes)):
        raise ValueError(f"{name} must be a sequence of token indices, got a string; encode it "
                         "first (load_data_jay_lyrics returns the indices)")
    if hasattr(indices, "asnumpy"):  # an NDArray
        indices = indices.asnumpy()
    elif not hasattr(indices, "__len__"):  # an iterator: materialise it once
        try:
            indices = list(indices)
        except TypeError:
            raise ValueError(f"{name} must be a sequence of token indices, got "
                             f"{indices!r:.60} ({type(indices).__name__})") from None
    arr = np.asarray(indices)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a flat sequence of token indices, got shape "
                         f"{arr.shape}")
    if arr.size and (arr.dtype.kind not in "iuf" or (arr.dtype.kind == "f" and not (
            np.isfinite(arr).all() and (arr == np.round(arr)).all()))):
        raise ValueError(f"{name} must hold integer token indices, got dtype {arr.dtype} "
                         f"(first values {arr[:5].tolist()})")
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name} must be >= 0, found {arr.min()!r}")
    high = min(vocab_size, FLOAT32_EXACT) if vocab_size is not None else FLOAT32_EXACT
    if arr.size and arr.max() >= high:
        raise ValueError(f"{name} must hold integer indices in [0, vocab_size={vocab_size}), "
                         f"found values in [{arr.min()}, {arr.max()}]; index the corpus with "
                         "the same vocabulary as the model" if vocab_size is not None else
                         f"{name} must be below 2**24 (float32 holds integers exactly up to "
                         f"there), found {arr.max()}")
    return arr.astype(np.float32)


#: Float32, the dtype of the book's batches, holds every integer below 2**24 exactly.
FLOAT32_EXACT = 2**24
