"""``lyricnn train --max-minutes``: a clean stop at a minibatch boundary, exit 0, and a
``--resume`` that continues as if nothing had stopped; the new word-level flags' errors."""
import json
import random

import pytest

from lyricnn.cli import main as cli
from lyricnn.cli import train as train_cli

WORDS = ["--tokens", "word", "--valid-fraction", "0.1", "--num-hiddens", "12",
         "--num-steps", "6", "--batch-size", "4", "--no-progress", "--seed", "3",
         "--dropout-output", "0.4", "--weight-drop", "0.3", "--ar", "1", "--tar", "1",
         "--asgd", "1", "--lr-decay", "1"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Training lines mostly of the first 10 words; the held-out tenth of the last 10,
    which training makes ever less likely: the validation perplexity rises from the first
    epochs on, by far more than rounding, so NT-ASGD's trigger fires on every CPU."""
    rs = random.Random(0)
    vocab = [f"w{i}" for i in range(40)]
    lines = [" ".join(rs.choice(vocab[:10] if rs.random() < 0.97 else vocab)
                      for _ in range(rs.randint(3, 9))) for _ in range(270)]
    lines += [" ".join(rs.choice(vocab[30:]) for _ in range(rs.randint(3, 9)))
              for _ in range(30)]
    path = tmp_path_factory.mktemp("budget") / "words.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def history(folder):
    return json.loads((folder / "checkpoint" / "history.json").read_text())


@pytest.mark.parametrize("model", [
    [],
    # Tied to an adaptive softmax: the embedding's gradient is written by the decoder and
    # added to by the lookup (grad_req 'add', not saved), so a resumed run must start clean.
    ["--tied", "--embed", "12", "--cutoffs", "8,20"],
], ids=["full", "tied-adaptive"])
def test_max_minutes_stops_at_a_minibatch_and_resume_equals_an_uninterrupted_run(
        capsys, corpus, tmp_path, monkeypatch, model):
    code, _, _ = run(capsys, "train", "--corpus", corpus, *WORDS, *model, "--epochs", 6,
                     "--out", tmp_path / "whole")
    assert code == 0
    # The clock, made deterministic: the budget is spent at the 330th minibatch boundary
    # (in epoch 5: this corpus has about 70 per epoch), after NT-ASGD has begun.
    polls = {"n": 0}

    def spent(self):
        if self.deadline is None:
            return False
        polls["n"] += 1
        return polls["n"] >= 330
    monkeypatch.setattr(train_cli._Budget, "spent", spent)
    code, out, err = run(capsys, "train", "--corpus", corpus, *WORDS, *model, "--epochs", 6,
                         "--out", tmp_path / "cut", "--max-minutes", 30)
    assert code == 0
    lines = [line for line in err.splitlines() if "--max-minutes" in line]
    assert len(lines) == 1 and "the epoch under way is not kept" in lines[0]
    assert f"--resume {tmp_path / 'cut'}" in lines[0]
    cut = history(tmp_path / "cut")
    assert 1 <= cut["epoch"][-1] < 6 and (tmp_path / "cut" / "best").is_dir()
    # Averaging was under way at the cut: the resume restores the mean and the iterate.
    assert cut["averaged"][-1] > 0
    assert (tmp_path / "cut" / "checkpoint" / "iterate.params").is_file()
    monkeypatch.undo()
    code, _, _ = run(capsys, "train", "--resume", tmp_path / "cut", "--epochs", 6)
    assert code == 0
    whole, resumed = history(tmp_path / "whole"), history(tmp_path / "cut")
    for key in ("perplexity", "valid_perplexity", "lr", "averaged"):
        assert resumed[key] == whole[key], key
    assert whole["averaged"][-1] > 0   # NT-ASGD fired, and resumed exactly too
    assert (tmp_path / "whole" / "checkpoint" / "params.params").read_bytes() == \
        (tmp_path / "cut" / "checkpoint" / "params.params").read_bytes()


def test_a_real_budget_exits_0_with_one_line(capsys, corpus, tmp_path):
    code, _, err = run(capsys, "train", "--corpus", corpus, *WORDS, "--epochs", 10000,
                       "--out", tmp_path / "run", "--max-minutes", 0.02)
    assert code == 0
    lines = [line for line in err.splitlines() if line.startswith("lyricnn train:")]
    assert len(lines) == 1 and "--max-minutes 0.02 reached" in lines[0]


def test_the_progress_bar_under_a_budget_has_no_total_from_epochs(capsys, corpus, tmp_path):
    # --epochs 10000 would make a bar at 0 % with an ETA of days; the clock ends the run.
    flags = [a for a in WORDS if a != "--no-progress"]
    code, _, err = run(capsys, "train", "--corpus", corpus, *flags, "--epochs", 10000,
                       "--out", tmp_path / "run", "--max-minutes", 0.02)
    assert code == 0
    assert "tok" in err and "tok/s" in err          # the bar ran, counting tokens
    assert "%|" not in err and "/10000" not in err  # no percentage, no total


@pytest.mark.parametrize("flags, message", [
    (["--max-minutes", "0"], "max_minutes must be"),
    (["--max-minutes", "-5"], "max_minutes must be"),
    (["--max-minutes", "nan"], "max_minutes"),
    (["--max-minutes", "1e12"], "max_minutes"),
    (["--dropout-input", "1"], "dropout_input"),
    (["--dropout-hidden", "x"], "dropout_hidden"),
    (["--dropout-embed", "-0.1"], "dropout_embed"),
    (["--weight-drop", "1.5"], "weight_drop"),
    (["--ar", "-1"], "ar"),
    (["--tar", "inf"], "tar"),
    (["--asgd", "-1"], "asgd"),
    (["--asgd", "1.5"], "asgd"),
    (["--cutoffs", "100,50"], "strictly increasing"),
    (["--cutoffs", "0"], None),                     # 0: the full softmax, accepted
    (["--cutoffs", "5,x"], "cutoffs"),
    (["--cutoffs", "5000"], "below the vocabulary"),
    (["--adaptive-div", "0.5"], "div_value"),
    (["--cutoffs", "10", "--tied", "--embed", "12", "--adaptive-div", "2"], "--tied"),
    (["--dropout", "0.3"], "one or the other"),
    (["--num-steps", "1"], "--tar compares consecutive steps"),
])
def test_bad_values_of_the_new_flags_are_one_line_before_training(capsys, corpus, tmp_path,
                                                                  flags, message):
    code, out, err = run(capsys, "train", "--corpus", corpus, *WORDS, "--epochs", 1,
                         "--out", tmp_path / "run", *flags)
    if message is None:
        assert code == 0
        return
    assert code == 2, err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert "epoch 1" not in out and not (tmp_path / "run" / "checkpoint").exists()


def test_the_regularisers_are_word_level_flags(capsys, tmp_path):
    code, _, err = run(capsys, "train", "--model", "lstm", "--weight-drop", "0.3",
                       "--epochs", 1, "--out", tmp_path / "run", "--no-progress")
    assert code == 2 and "--weight-drop" in err and "--tokens word" in err


def test_max_minutes_is_refused_under_launch_before_any_process_starts(capsys, corpus,
                                                                       tmp_path):
    code, _, err = run(capsys, "launch", "--workers", 2, "--", "train", "--corpus", corpus,
                       *WORDS, "--max-minutes", 5, "--out", tmp_path / "run")
    assert code == 2 and "workers must stop together" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "run").exists()
