"""Checkpoint format 1 (lyricnn before the config rework): its field names and parameter
names, upgraded when such a checkpoint is loaded. The next save writes format 2."""
import math
import re


# -- format 1 ---------------------------------------------------------------------

#: Format-1 config keys -> RunConfig's (the book's) names.
FORMAT1_RENAMES = {"layers": "num_layers", "hidden": "num_hiddens", "steps": "num_steps",
                   "batch": "batch_size", "clip": "clipping_theta"}


def upgrade_format1(config):
    """A format-1 ``config.json`` "config" object with format 2's field names.

    Format 1 (lyricnn before RunConfig took the book's names) wrote ``layers``,
    ``hidden``, ``steps``, ``batch`` and ``clip``; its model names
    (``rnn-scratch``, ``rnn``, ``gru``, ``lstm``) are format 2's too.
    """
    if not isinstance(config, dict):
        raise ValueError(f"a config must be a JSON object, got {type(config).__name__}")
    return {FORMAT1_RENAMES.get(key, key): value for key, value in config.items()}


def format1_parameter_names(arrays):
    """Format-1 parameter names -> format 2's (``lm.named_parameters()``'s).

    The scratch RNN was saved as ``W_xh, W_hh, b_h, W_hq, b_q``, its names
    today.  The Gluon models were saved under Gluon's names of the time,
    ``rnn._unfused.L.i2h_weight``; today's are ``rnn.lL_i2h_weight``.
    """
    renamed = {}
    for name, array in arrays.items():
        match = re.fullmatch(r"rnn\._unfused\.(\d+)\.(\w+)", name)
        renamed[f"rnn.l{match.group(1)}_{match.group(2)}" if match else name] = array
    return renamed


# -- JSON: standard only ------------------------------------------------------------

NONFINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def format1_constant(name):
    return NONFINITE[name.lower().replace("inity", "")]  # Infinity -> inf, NaN -> nan
