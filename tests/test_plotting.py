"""lyricnn.plotting: the perplexity PNG (log-scale y, labelled, legend), written atomically."""
import math
import os
import stat

import matplotlib.image
import numpy as np
import pytest

from lyricnn import plotting
from lyricnn.training.loop import History

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
    np.testing.assert_array_equal(train_line.get_ydata(), history().perplexity)  # as given


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


# -- issue 12: a history that cannot be drawn is named; the PNG honours the umask -----


@pytest.mark.parametrize("column, value, message", [
    ("epoch", "1", "history.epoch[0] must be an integer >= 0, got '1' (str)"),
    ("perplexity", "12.5", "history.perplexity[0] must be a number, got '12.5' (str)"),
    ("valid_perplexity", True, "history.valid_perplexity[0] must be a number, got True (bool)"),
])
def test_malformed_history_names_the_entry(tmp_path, column, value, message):
    h = history(3)
    getattr(h, column)[0] = value  # as a hand-edited history.json would give
    with pytest.raises(ValueError) as err:
        plotting.plot_history(h, tmp_path / "p.png")
    assert str(err.value) == message
    assert list(tmp_path.iterdir()) == []


def test_history_columns_of_different_lengths(tmp_path):
    h = history(3)
    h.perplexity.pop()
    with pytest.raises(ValueError, match=r"one entry per epoch, got lengths \{'epoch': 3, "
                                         r"'perplexity': 2, 'valid_perplexity': 3\}"):
        plotting.plot_history(h, tmp_path / "p.png")
    with pytest.raises(ValueError, match="history must be a lyricnn.History, got dict"):
        plotting.plot_history({"epoch": [1]}, tmp_path / "p.png")


def test_numpy_values_and_missing_valid_are_drawn(tmp_path):
    h = history(3, valid=False)
    h.epoch[:] = [np.int64(e) for e in h.epoch]
    h.perplexity[:] = [np.float32(p) for p in h.perplexity]
    assert plotting.plot_history(h, tmp_path / "p.png").read_bytes()[:8] == PNG_SIGNATURE


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_png_mode_follows_the_umask(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        path = plotting.plot_history(history(2), tmp_path / "p.png")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == mode
