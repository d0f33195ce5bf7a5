"""Perplexity curves of a training run, as a PNG (book 6.4.5's numbers, drawn).

The book prints one perplexity every ``pred_period`` epochs; ``plot_history``
draws all of them, training and held-out, on a log scale like d2l's
``semilogy``: perplexity falls by orders of magnitude in the first epochs and
by a few percent later, and only a log axis shows both.

The figure is drawn on the Agg canvas directly (no ``pyplot``), so it neither
needs a display nor touches the global backend of a notebook that imports
lyricnn.  The PNG is written through ``fileio.atomic_path`` (temp file next to
``path``, fsync, rename): a crash mid-write leaves the previous plot, never
half a PNG.
"""
import math
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

from lyricnn.checks import check_int, is_real
from lyricnn.fileio import atomic_path


def _finite_or_nan(values):
    """``None`` (no held-out set) and ``inf`` (overflowed perplexity) cannot sit on a log axis."""
    return [v if v is not None and math.isfinite(v) else math.nan for v in values]


def _check_history(history):
    """Refuse a history that cannot be drawn, naming the bad entry (a hand-edited
    ``history.json`` with string epochs would otherwise fail deep in matplotlib)."""
    try:
        columns = {name: list(getattr(history, name))
                   for name in ("epoch", "perplexity", "valid_perplexity")}
    except (AttributeError, TypeError):
        raise ValueError(f"history must be a lyricnn.History, got {type(history).__name__}") \
            from None
    if not columns["epoch"]:
        raise ValueError("the history is empty: train at least one epoch before plotting")
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"history columns must have one entry per epoch, got lengths {lengths}")
    for i, epoch in enumerate(columns["epoch"]):
        check_int(f"history.epoch[{i}]", epoch, minimum=0)
    for name in ("perplexity", "valid_perplexity"):
        for i, value in enumerate(columns[name]):
            if value is None and name == "valid_perplexity":
                continue
            if not is_real(value):
                raise ValueError(f"history.{name}[{i}] must be a number, got {value!r} "
                                 f"({type(value).__name__})")


def _mark_best(ax, epochs, valid):
    """Mark the epoch of lowest held-out perplexity: where training should have stopped."""
    best = min(range(len(valid)), key=lambda i: math.inf if math.isnan(valid[i]) else valid[i])
    ax.plot([epochs[best]], [valid[best]], marker="*", markersize=12, linestyle="none",
            color="C3", label=f"best held-out: {valid[best]:.1f} (epoch {epochs[best]})")


def history_figure(history, title=None):
    """A ``matplotlib.figure.Figure`` of ``history``: perplexity against epoch, log-scale y.

    ``history``: a ``lyricnn.History`` (``epoch``, ``perplexity`` and optional
    ``valid_perplexity``, one entry per epoch).
    """
    _check_history(history)
    fig = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    marker = "o" if len(history.epoch) <= 30 else None  # single epochs visible on short runs
    ax.plot(history.epoch, _finite_or_nan(history.perplexity), marker=marker, label="training")
    valid = _finite_or_nan(history.valid_perplexity)
    if any(not math.isnan(v) for v in valid):
        ax.plot(history.epoch, valid, marker=marker, linestyle="--", label="held-out")
        _mark_best(ax, history.epoch, valid)
    ax.set_yscale("log")
    # Label 1-2-5 steps of every decade: one label per decade says too little.
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("epoch")
    ax.set_ylabel("perplexity (log scale)")
    ax.set_title(title or "perplexity per epoch")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_history(history, path, title=None):
    """Save the training (and held-out) perplexity curves of ``history`` as a PNG at ``path``.

    Written atomically (``fileio.atomic_path``); the folder is created if
    missing.  Returns ``path`` as a ``Path``.
    """
    path = Path(path)
    fig = history_figure(history, title)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            fig.savefig(f, format="png")
    return path
