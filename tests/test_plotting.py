"""lyricnn.plotting: the perplexity PNG (log-scale y, labelled, legend), written atomically."""
import math

import matplotlib.image
import numpy as np
import pytest

from lyricnn import plotting
from lyricnn.training import History

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def history(n=12, valid=True):
    h = History()
    for e in range(1, n + 1):
        h.append(e, 300.0 * 0.7 ** e + 5, 0.1, (150.0 + 3 * e) if valid else None)
    return h


def legend_texts(fig):
    return [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


def test_png_is_written_and_shows_curves(tmp_path):
    path = plotting.plot_history(history(), tmp_path / "sub" / "ppl.png", title="gru")
    assert path == tmp_path / "sub" / "ppl.png"
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = matplotlib.image.imread(str(path))
    assert image.shape[:2] == (400, 600)
    # Not a blank canvas: at least two line colours besides white, black and greys.
    rgb = image[..., :3].reshape(-1, 3)
    coloured = rgb[(rgb.max(axis=1) - rgb.min(axis=1)) > 0.3]
    assert len(np.unique(np.round(coloured, 1), axis=0)) >= 2


def test_axes_are_log_scale_labelled_with_a_legend():
    fig = plotting.history_figure(history(), title="gru, 32 hidden units")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    assert ax.get_xlabel() == "epoch" and "perplexity" in ax.get_ylabel()
    assert ax.get_title() == "gru, 32 hidden units"
    texts = legend_texts(fig)
    assert texts[:2] == ["training", "held-out"]
    # The best held-out epoch (the first: it only rises afterwards) is marked.
    assert texts[2] == "best held-out: 153.0 (epoch 1)"
    train_line = ax.get_lines()[0]
    np.testing.assert_allclose(train_line.get_ydata(), history().perplexity)


def test_without_held_out_set_only_training_is_drawn():
    fig = plotting.history_figure(history(valid=False))
    assert legend_texts(fig) == ["training"]
    assert len(fig.axes[0].get_lines()) == 1


def test_infinite_perplexity_is_left_out_not_an_error(tmp_path):
    h = history(3)
    h.perplexity[0] = math.inf
    plotting.plot_history(h, tmp_path / "p.png")
    y = plotting.history_figure(h).axes[0].get_lines()[0].get_ydata()
    assert math.isnan(y[0]) and np.isfinite(y[1:]).all()


def test_empty_history_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        plotting.plot_history(History(), tmp_path / "p.png")
    assert not (tmp_path / "p.png").exists()


def test_failed_write_keeps_the_previous_png(tmp_path, monkeypatch):
    path = plotting.plot_history(history(), tmp_path / "p.png")
    before = path.read_bytes()

    def broken_savefig(self, f, **kwargs):
        f.write(PNG_SIGNATURE + b"trunc")
        raise OSError("disk full")

    monkeypatch.setattr(plotting.Figure, "savefig", broken_savefig)
    with pytest.raises(OSError, match="disk full"):
        plotting.plot_history(history(5), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["p.png"]  # no temp file left
