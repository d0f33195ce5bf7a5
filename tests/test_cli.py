"""The ``lyricnn`` command line: flags, exit codes, resume, generation, scoring, decoding.

Training configurations are tiny (hidden 16, 1200 characters, steps 5, batch 4,
1-3 epochs); what is tested is the plumbing, which does not need a good model.
"""
import argparse
import math
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest
from mxnet import nd

from lyricnn.cli import main as cli
from lyricnn.cli.common import PLOT_NAME
from lyricnn.run.checkpoint import load_checkpoint
from lyricnn.decoding.generate import choose_next, generate
from lyricnn.ngram.model import NGramLM
from lyricnn.decoding.score import log_prob
from lyricnn.training.evaluate import evaluate_loss

TINY = ["--num-chars", "1200", "--num-hiddens", "16", "--num-steps", "5", "--batch-size", "4",
        "--no-progress", "--period", "100"]
#: The resume tests' configuration (the old spellings on purpose: they must keep working).
RESUME = ["--num-chars", "2000", "--hidden", "16", "--batch", "4", "--steps", "8",
          "--no-progress", "--period", "100"]
BOOK_LINE = re.compile(r"^epoch (\d+), perplexity ([\d.]+), time [\d.]+ sec"
                       r"(?:, valid perplexity ([\d.]+))?$")


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_process(cwd, *argv, hashseed="0"):
    """``python -m lyricnn.cli`` in a fresh interpreter.

    OMP_WAIT_POLICY=PASSIVE: with MXNet's 2 OpenMP threads spinning on a busy
    2-core machine, tiny runs get 10-100x slower; the results are the same.
    """
    env = {**os.environ, "PYTHONHASHSEED": hashseed, "OMP_WAIT_POLICY": "PASSIVE"}
    return subprocess.run([sys.executable, "-m", "lyricnn.cli", *map(str, argv)],
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def samples(stdout):
    """The `` - <text>`` lines of the book's log, without the dash."""
    return [line[3:] for line in stdout.splitlines() if line.startswith(" - ")]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 2-epoch scratch run with a held-out tail: (run directory, its stdout)."""
    out = tmp_path_factory.mktemp("cli") / "run"
    argv = ["train", *TINY, "--epochs", 2, "--period", 1, "--pred-len", 10,
            "--valid-fraction", 0.1, "--seed", 5, "--out", out]
    assert cli.main([str(a) for a in argv]) == 0
    return out


# -- parser ---------------------------------------------------------------------

def test_every_flag_of_every_command_has_help_text():
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(commands.choices) == {"train", "generate", "score", "evaluate", "launch", "serve"}
    for name, sub in commands.choices.items():
        for action in sub._actions:
            assert action.help, f"lyricnn {name} {action.option_strings or action.dest}"


@pytest.mark.parametrize("command, flags", [
    ("train", ["--model", "--num-layers", "--layers", "--num-hiddens", "--hidden", "--sampler",
               "--num-epochs", "--epochs", "--num-steps", "--steps", "--batch-size", "--batch",
               "--lr", "--clipping-theta", "--clip", "--seed", "--ctx", "--corpus",
               "--num-chars", "--valid-fraction", "--out", "--resume", "--plot",
               "--pred-period", "--period", "--pred-len", "--prefix", "--no-progress",
               "--save-every", "--force", "--kvstore"]),
    ("launch", ["--workers", "--servers", "--port", "--timeout", "-- train ..."]),
    ("generate", ["--checkpoint", "--prefix", "--length", "--strategy", "--temperature",
                  "--top-k", "--seed", "--ctx"]),
    ("score", ["--checkpoint", "--ngram-order", "TEXT"]),
])
def test_help_of_each_command(capsys, command, flags):
    code, out, _ = run(capsys, command, "--help")
    assert code == 0
    for flag in flags:
        assert flag in out


def test_train_flags_are_generated_from_the_config():
    """Each RunConfig/TrainSettings flag field is one train flag with the field's help."""
    import dataclasses

    from lyricnn.run.config import RunConfig, TrainSettings
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    train = {a.dest: a for a in commands.choices["train"]._actions}
    for cls in (RunConfig, TrainSettings):
        for f in dataclasses.fields(cls):
            option = f.metadata["option"]
            if not option.flag:
                assert f.name not in train
                continue
            action = train[f.name]
            assert action.option_strings == ["--" + f.name.replace("_", "-"),
                                             *option.aliases]
            assert action.help.startswith(option.help)


@pytest.mark.slow
def test_console_script_is_installed(tmp_path):
    script = Path(sys.executable).parent / "lyricnn"
    assert script.exists(), "run `pip install -e .` to create the lyricnn entry point"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    assert result.returncode == 0 and "train" in result.stdout


# -- exit codes -----------------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    ([], "required: COMMAND"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["train", "--hidden", "0"],
     "argument --num-hiddens/--hidden: num_hiddens must be an integer >= 1, got 0"),
    (["train", "--model", "cnn"], "argument --model: model must be one of 'rnn-scratch'"),
    (["train", "--valid-fraction", "1.5"], "must be a number >= 0 and < 1"),
    (["train", "--lr", "abc"], "lr must be a finite number > 0"),
    (["train", *TINY, "--lr", "1e40"], "lr must be a finite number > 0 and <= 3.4"),
    (["train", *TINY, "--lr", "1e-50"], "it becomes 0 in float32"),
    (["train", *TINY, "--corpus", "{tmp}/missing.txt"], "missing.txt"),
    (["train", *TINY, "--num-chars", "40", "--batch", "32"], "needs at least"),
    (["train", *TINY, "--valid-fraction", "0.0001"], "--valid-fraction 0.0001"),
    (["train", *TINY, "--prefix", "分☃"], "character(s) '☃' are not in the corpus"),
    (["train", *TINY, "--num-hiddens", "200000"], "GiB"),
    (["generate", "--checkpoint", "{tmp}/nowhere", "--prefix", "分"], "does not exist"),
    (["generate", "--prefix", "分"], "required: --checkpoint"),
    (["generate", "--checkpoint", "{tmp}", "--prefix", "分", "--length", "99999999999999"],
     "length must be an integer between 0 and 1000000"),
    (["score", "--checkpoint", "{tmp}"], "the following arguments are required: TEXT"),
])
def test_usage_errors_exit_2_with_one_line(capsys, tmp_path, argv, message):
    argv = [a.format(tmp=tmp_path) for a in argv]
    if argv[:1] == ["train"]:
        argv += ["--out", tmp_path / "run"]
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run" / "checkpoint").exists()


def test_input_errors_after_loading_a_checkpoint_exit_2(capsys, trained):
    code, out, err = run(capsys, "generate", "--checkpoint", trained, "--prefix", "分☃")
    assert (code, out) == (2, "") and "'☃'" in err and len(err.splitlines()) == 1
    code, out, err = run(capsys, "score", "--checkpoint", trained, "分开", "x☃")
    assert (code, out) == (2, "") and "'x☃'" in err  # no half-printed table


def test_bad_checkpoint_exits_1(capsys, tmp_path):
    (tmp_path / "config.json").write_text("{broken")
    code, _, err = run(capsys, "generate", "--checkpoint", tmp_path, "--prefix", "分")
    assert code == 1 and "bad checkpoint" in err and "config.json" in err
    assert len(err.splitlines()) == 1


def test_divergence_exits_1(capsys, tmp_path):
    code, _, err = run(capsys, "train", *TINY, "--epochs", 2, "--out", tmp_path, "--lr", "1e38",
                       "--clip", "1e38")
    assert code == 1 and "diverged" in err and "Traceback" not in err
    assert "no checkpoint was saved" in err and len(err.strip().splitlines()) == 2  # + header
    assert not (tmp_path / "checkpoint").exists()  # a diverged epoch is never saved


def test_an_epoch_at_infinite_perplexity_is_a_divergence(capsys, tmp_path, monkeypatch):
    """A finite loss above ~709 nats overflows exp: perplexity inf, nothing learnt."""
    import lyricnn.training.loop as training
    assert run(capsys, "train", *TINY, "--epochs", 1, "--out", tmp_path)[0] == 0
    monkeypatch.setattr(training, "perplexity", lambda loss: math.inf)
    code, _, err = run(capsys, "train", "--resume", tmp_path, "--epochs", 3)
    assert code == 1 and "epoch 2: the training perplexity is infinite" in err
    assert "the checkpoint of epoch 1 is in" in err  # this run's last good one
    assert load_checkpoint(tmp_path).epoch == 1
    monkeypatch.undo()
    # A diverged --force run does not point at the earlier run's checkpoint as its own.
    monkeypatch.setattr(training, "perplexity", lambda loss: math.inf)
    code, _, err = run(capsys, "train", *TINY, "--epochs", 1, "--out", tmp_path, "--force")
    assert code == 1 and "no checkpoint of this run was saved" in err
    assert "still holds the earlier run's" in err


def test_missing_data_hub_file_is_a_runtime_failure(capsys, tmp_path, monkeypatch):
    import lyricnn.run.task as task

    def missing(path, num_chars):
        raise FileNotFoundError("no file 'jaychou_lyrics.txt.zip' in the data folders")
    monkeypatch.setattr(task, "load_corpus_chars", missing)
    code, _, err = run(capsys, "train", *TINY, "--out", tmp_path)
    assert code == 1 and "jaychou_lyrics" in err and len(err.splitlines()) == 1


def test_out_that_is_a_file_fails_before_any_work(capsys, tmp_path):
    (tmp_path / "file").write_text("x")
    code, out, err = run(capsys, "train", *TINY, "--out", tmp_path / "file")
    assert code == 2 and "is a file; give a folder" in err and out == ""


def test_a_second_writer_fails_at_once(capsys, tmp_path):
    from lyricnn.run.store import CheckpointLock
    with CheckpointLock(tmp_path / "checkpoint"):
        code, out, err = run(capsys, "train", *TINY, "--out", tmp_path)
    assert code == 1 and "being written by another lyricnn process" in err and out == ""
    assert len(err.splitlines()) == 1


# -- train ----------------------------------------------------------------------

def test_train_logs_book_lines_progress_held_out_and_saves(capsys, tmp_path):
    code, out, err = run(capsys, "train", *[a for a in TINY if a != "--no-progress"],
                         "--epochs", 2, "--period", 1, "--pred-len", 8, "--valid-fraction",
                         0.2, "--prefix", "分开", "--out", tmp_path, "--plot")
    assert code == 0
    logged = [BOOK_LINE.match(line) for line in out.splitlines() if line.startswith("epoch")]
    assert [m.group(1) for m in logged] == ["1", "2"] and all(m.group(3) for m in logged)
    assert len(samples(out)) == 2 and all(s.startswith("分开") and len(s) == 10
                                          for s in samples(out))
    assert "perplexity=" in err and "valid=" in err and "2/2" in err  # tqdm, on stderr
    ckpt = load_checkpoint(tmp_path)
    h = ckpt.history
    assert h.epoch == [1, 2]
    assert [f"{p:f}" for p in h.perplexity] == [m.group(2) for m in logged]
    assert [f"{p:f}" for p in h.valid_perplexity] == [m.group(3) for m in logged]
    # The held-out perplexity is the model's on the tail it never trained on.
    train_idx, valid_idx = ckpt.config.split(ckpt.vocab.to_indices(ckpt.corpus_text))
    assert len(valid_idx) == 240 and len(train_idx) == 960
    assert valid_idx == ckpt.vocab.to_indices(ckpt.corpus_text[-240:])
    # The same function on the same (saved, reloaded) float32 weights: the same float.
    assert h.valid_perplexity[-1] == math.exp(evaluate_loss(ckpt.lm, valid_idx, 5))
    assert (tmp_path / PLOT_NAME).read_bytes()[:4] == b"\x89PNG"


def test_fresh_run_refuses_to_overwrite_without_force(capsys, tmp_path):
    assert run(capsys, "train", *TINY, "--epochs", 1, "--out", tmp_path)[0] == 0
    code, _, err = run(capsys, "train", *TINY, "--epochs", 1, "--out", tmp_path)
    assert code == 2 and "--resume" in err and "--force" in err
    code, _, _ = run(capsys, "train", *TINY, "--epochs", 1, "--out", tmp_path, "--force",
                     "--hidden", 8)
    assert code == 0 and load_checkpoint(tmp_path).config.num_hiddens == 8


def _perturb_global_rngs():
    """Resuming must not depend on the state the process happens to be in."""
    random.seed(999)
    np.random.seed(999)
    mx.random.seed(999)


@pytest.mark.parametrize("model, sampler, layers", [("rnn-scratch", "random", 1),
                                                    ("lstm-scratch", "consecutive", 2),
                                                    ("gru", "consecutive", 1),
                                                    ("lstm", "random", 1)])
@pytest.mark.slow
def test_resume_gives_the_perplexities_of_an_uninterrupted_run(capsys, tmp_path, model,
                                                               sampler, layers):
    args = ["train", *RESUME, "--model", model, "--sampler", sampler, "--num-layers", layers,
            "--seed", 2, "--valid-fraction", 0.1]
    assert run(capsys, *args, "--epochs", 2, "--out", tmp_path / "full")[0] == 0
    mx_after_full = nd.random.uniform(shape=3).asnumpy()
    assert run(capsys, *args, "--epochs", 1, "--out", tmp_path / "part")[0] == 0
    _perturb_global_rngs()
    code, _, err = run(capsys, "train", "--resume", tmp_path / "part", "--epochs", 2,
                       "--no-progress")
    assert code == 0, err
    # MXNet's generator is reseeded per epoch: both runs leave it in the same state.
    np.testing.assert_array_equal(nd.random.uniform(shape=3).asnumpy(), mx_after_full)
    full, resumed = (load_checkpoint(tmp_path / d) for d in ("full", "part"))
    assert resumed.history.epoch == [1, 2]
    assert resumed.history.perplexity == full.history.perplexity  # exact, not approximate
    assert resumed.history.valid_perplexity == full.history.valid_perplexity
    for name, value in full.lm.named_parameters().items():
        np.testing.assert_array_equal(resumed.lm.named_parameters()[name].asnumpy(),
                                      value.asnumpy(), err_msg=name)


def test_resume_depends_on_the_saved_rng_state(capsys, tmp_path, monkeypatch):
    """Control for the test above: skip restoring the RNG states and random sampling differs."""
    args = ["train", *RESUME, "--sampler", "random", "--seed", 2]
    assert run(capsys, *args, "--epochs", 2, "--out", tmp_path / "full")[0] == 0
    assert run(capsys, *args, "--epochs", 1, "--out", tmp_path / "part")[0] == 0
    import lyricnn.cli.rundir as rundir
    monkeypatch.setattr(rundir, "restore_rng_state", lambda state: None)
    _perturb_global_rngs()
    assert run(capsys, "train", "--resume", tmp_path / "part", "--epochs", 2,
               "--no-progress")[0] == 0
    full, resumed = (load_checkpoint(tmp_path / d).history for d in ("full", "part"))
    assert resumed.perplexity[0] == full.perplexity[0]
    assert resumed.perplexity[1] != full.perplexity[1]


@pytest.mark.slow
def test_resume_in_a_fresh_process(capsys, tmp_path):
    args = ["train", *TINY, "--model", "gru", "--sampler", "random", "--seed", 4,
            "--save-every", 2]
    assert run(capsys, *args, "--epochs", 3, "--out", tmp_path / "full")[0] == 0
    assert run(capsys, *args, "--epochs", 2, "--out", tmp_path / "part")[0] == 0
    result = run_process(tmp_path, "train", "--resume", "part", "--epochs", 3,
                         "--no-progress", hashseed="7")
    assert result.returncode == 0, result.stderr
    full, resumed = (load_checkpoint(tmp_path / d).history for d in ("full", "part"))
    assert resumed.perplexity == full.perplexity


def test_resume_rejects_changed_settings_and_stops_when_done(capsys, trained):
    code, _, err = run(capsys, "train", "--resume", trained, "--hidden", 32, "--lr", 1)
    assert code == 2 and "--num-hiddens 32 (checkpoint: 16)" in err and "--lr 1" in err
    code, _, err = run(capsys, "train", "--resume", trained, "--epochs", 2, "--hidden", 16)
    assert code == 0 and "nothing to train" in err


@pytest.mark.parametrize("model, layers", [("rnn-scratch", 1), ("gru-scratch", 1),
                                           ("lstm-scratch", 2), ("rnn", 2), ("gru", 1),
                                           ("lstm", 1)])
def test_every_model_trains_saves_resumes_generates_and_scores(capsys, tmp_path, model,
                                                                layers):
    code, _, err = run(capsys, "train", *TINY, "--model", model, "--num-layers", layers,
                       "--epochs", 1, "--out", tmp_path)
    assert code == 0, err
    code, _, err = run(capsys, "train", "--resume", tmp_path, "--epochs", 2, "--no-progress")
    assert code == 0, err
    ckpt = load_checkpoint(tmp_path)
    assert (ckpt.config.model, ckpt.config.num_layers, ckpt.epoch) == (model, layers, 2)
    code, out, err = run(capsys, "generate", "--checkpoint", tmp_path, "--prefix", "分开",
                         "--length", 5)
    assert code == 0 and len(out.splitlines()) == 1 and out.startswith("分开"), err
    code, out, err = run(capsys, "score", "--checkpoint", tmp_path, "分开", "开分",
                         "--ngram-order", 2)
    assert code == 0 and out.count("# ") == 2, err


def test_resume_refreshes_an_existing_plot(capsys, tmp_path):
    assert run(capsys, "train", *TINY, "--epochs", 1, "--out", tmp_path, "--plot")[0] == 0
    plot = tmp_path / PLOT_NAME
    first = plot.read_bytes()
    code, _, err = run(capsys, "train", "--resume", tmp_path, "--epochs", 2, "--no-progress")
    assert code == 0 and "plot in" in err
    assert plot.read_bytes() != first  # redrawn with epoch 2, not left stale
    plot.unlink()
    code, _, err = run(capsys, "train", "--resume", tmp_path, "--epochs", 3, "--no-progress")
    assert code == 0 and not plot.exists()  # no plot asked for, none there: none made


def test_a_symlinked_checkpoint_folder_resumes_through_the_link(capsys, tmp_path):
    assert run(capsys, "train", *TINY, "--epochs", 1, "--out", tmp_path / "run")[0] == 0
    os.rename(tmp_path / "run" / "checkpoint", tmp_path / "elsewhere")
    os.symlink(tmp_path / "elsewhere", tmp_path / "run" / "checkpoint")
    for epochs in (2, 3):  # twice: the first save must not have broken the link
        code, _, err = run(capsys, "train", "--resume", tmp_path / "run", "--epochs", epochs,
                           "--no-progress")
        assert code == 0, err
    assert (tmp_path / "run" / "checkpoint").is_symlink()
    assert load_checkpoint(tmp_path / "elsewhere").epoch == 3
    os.rename(tmp_path / "elsewhere", tmp_path / "gone")  # a dangling link: refused clearly
    code, _, err = run(capsys, "train", *TINY, "--epochs", 1, "--out", tmp_path / "run",
                       "--force")
    assert code == 1 and "is a symlink to" in err and "which does not exist" in err


# -- generate -------------------------------------------------------------------

@pytest.mark.slow
def test_generate_in_a_fresh_process_reproduces_the_training_log(tmp_path):
    trained = run_process(tmp_path, "train", *TINY, "--model", "rnn", "--epochs", 2,
                          "--period", 2, "--pred-len", 20, "--prefix", "分开",
                          "--prefix", "我", "--out", "run", hashseed="1")
    assert trained.returncode == 0, trained.stderr
    printed = samples(trained.stdout)
    assert len(printed) == 2 and printed[0].startswith("分开") and len(printed[1]) == 21
    generated = run_process(tmp_path, "generate", "--checkpoint", "run", "--prefix", "分开",
                            "--prefix", "我", "--length", 20, hashseed="2")
    assert generated.returncode == 0, generated.stderr
    assert generated.stdout.splitlines() == printed


def test_generate_strategies_from_the_command_line(capsys, trained):
    def generate(*flags):
        code, out, err = run(capsys, "generate", "--checkpoint", trained, "--prefix", "分开",
                             "--prefix", "我", "--length", 15, *flags)
        assert code == 0, err
        return out.splitlines()

    greedy = generate()
    assert len(greedy) == 2 and greedy[0].startswith("分开") and len(greedy[1]) == 16
    assert generate("--strategy", "sample", "--top-k", 1) == greedy
    assert generate("--strategy", "sample", "--temperature", 0) == greedy
    sampled = generate("--strategy", "sample", "--seed", 3)
    assert generate("--strategy", "sample", "--seed", 3) == sampled
    assert sampled != greedy and generate("--strategy", "sample", "--seed", 4) != sampled


def test_gpu_falls_back_to_cpu_with_a_warning(capsys, trained):
    code, out, err = run(capsys, "generate", "--checkpoint", trained, "--prefix", "分",
                         "--ctx", "gpu", "--length", 3)
    assert code == 0 and len(out.splitlines()) == 1
    assert "no GPU" in err and "using the CPU" in err


# -- score ----------------------------------------------------------------------

def _table(lines):
    rows = [line.split() for line in lines if re.match(r"^\s+\d+\s", line)]
    return [(r[3], float(r[1]), float(r[2])) for r in rows]


def test_score_ranks_under_the_rnn_and_the_ngram(capsys, trained):
    texts = ["分开", "开分", "我的", "的我我", "你的"]
    code, out, err = run(capsys, "score", "--checkpoint", trained, *texts)
    assert code == 0, err
    first, second = out.split("\n# ")
    ckpt = load_checkpoint(trained)
    rnn_rows = _table(first.splitlines())
    assert [t for t, _, _ in rnn_rows] == sorted(
        texts, key=lambda t: -log_prob(ckpt.lm, t, ckpt.vocab.token_to_idx))
    # The table prints log P with 4 decimals (off by <= 5e-5 from the same computation
    # here) and the perplexity with 3 (<= 5e-4), the latter from the unrounded log P.
    for text, logp, ppl in rnn_rows:
        assert logp == pytest.approx(log_prob(ckpt.lm, text, ckpt.vocab.token_to_idx),
                                     rel=0, abs=5e-5 + 1e-12)
        assert ppl == pytest.approx(math.exp(-logp / (len(text) - 1)), rel=0,
                                    abs=5e-4 + ppl * 5.01e-5 / (len(text) - 1))
    # The n-gram model is fit on the training characters only, not the held-out tail.
    train_text, _ = ckpt.split_text()
    assert second.startswith(f"3-gram Kneser-Ney on the checkpoint's {len(train_text)} ")
    ngram = NGramLM(3, "kneser-ney").fit(train_text)
    ngram_rows = _table(second.splitlines())
    values = [v for _, v, _ in ngram_rows]
    assert values == sorted(values, reverse=True) and len(ngram_rows) == len(texts)
    for text, logp, _ in ngram_rows:   # 4 decimals printed (float64 sums: ~1e-15 apart)
        assert logp == pytest.approx(ngram.token_log_probs(text)[1:].sum(), rel=0,
                                     abs=5e-5 + 1e-12)
    code, out, _ = run(capsys, "score", "--checkpoint", trained, "--ngram-order", 0, "分开")
    assert code == 0 and out.count("# ") == 1


# -- decoding strategies (lyricnn.decoding.generate, exposed by `lyricnn generate`) -------

def _random_logits(rs, n=30):
    return rs.normal(scale=3.0, size=n)


def test_choose_next_limits_are_greedy():
    rs = np.random.RandomState(0)
    rng = np.random.default_rng(0)
    for _ in range(50):
        z = _random_logits(rs)
        best = int(np.argmax(z))
        assert choose_next(z, "sample", temperature=0, rng=rng) == best
        assert choose_next(z, "sample", temperature=1e-9, rng=rng) == best
        assert choose_next(z, "sample", temperature=5.0, top_k=1, rng=rng) == best


@pytest.mark.parametrize("k", [2, 5])
def test_samples_lie_in_the_top_k_with_softmax_frequencies(k):
    rs = np.random.RandomState(k)
    z = _random_logits(rs)
    top = np.argsort(-z)[:k]
    rng = np.random.default_rng(1)
    draws = np.array([choose_next(z, "sample", temperature=0.8, top_k=k, rng=rng)
                      for _ in range(4000)])
    assert set(draws) == set(top)  # never outside, and every one of them drawn
    p = np.exp(z[top] / 0.8 - (z[top] / 0.8).max())
    p /= p.sum()
    freq = np.array([(draws == i).mean() for i in top])
    np.testing.assert_allclose(freq, p, atol=0.03)


def test_predict_samples_only_top_k_characters_and_repeats_with_a_seed(trained):
    ckpt = load_checkpoint(trained)
    lm, vocab = ckpt.lm, ckpt.vocab
    args = (vocab.idx_to_token, vocab.token_to_idx)
    text = generate(lm, "分开", 25, *args, strategy="sample", top_k=3, seed=11)
    assert generate(lm, "分开", 25, *args, strategy="sample", top_k=3, seed=11) == text
    assert generate(lm, "分开", 25, *args, strategy="sample", top_k=3, seed=12) != text
    # Replay one character at a time, as predict does: every generated character
    # is among the 3 most likely after what precedes it.
    state = lm.begin_state(1)
    for t in range(len(text) - 1):
        logits, state = lm.forward(nd.array([[vocab.token_to_idx[text[t]]]]), state)
        if t >= 1:
            top3 = np.argsort(-logits.asnumpy()[0])[:3]
            assert vocab.token_to_idx[text[t + 1]] in top3, (t, text)
    greedy = generate(lm, "分开", 25, *args)
    assert generate(lm, "分开", 25, *args, strategy="sample", temperature=0, seed=1) == greedy
    assert generate(lm, "分开", 25, *args, strategy="sample", top_k=1, seed=1) == greedy


def test_evaluate_a_character_run_dynamically(trained, capsys):
    """``--dynamic`` on a character run; at lr 0 and decay 0 it is the static evaluation
    of the split read as one stream (the same operators on the same weights, recorded or
    not: E; printed with 3 decimals: P)."""
    from lyricnn.cli.common import corpus_of
    code, out, err = run(capsys, "evaluate", "--checkpoint", trained, "--dynamic")
    assert code == 0, err
    assert re.fullmatch(r"valid perplexity [\d.]+ \(dynamic evaluation\)\n", out), out
    code, out, err = run(capsys, "evaluate", "--checkpoint", trained, "--dynamic",
                         "--dynamic-lr", "0", "--dynamic-decay", "0")
    assert code == 0, err
    ckpt = load_checkpoint(trained)
    valid = corpus_of(ckpt.config, ckpt.corpus_text).valid
    static = math.exp(evaluate_loss(ckpt.lm, valid, 20, batch_size=1))
    assert float(out.split()[2]) == pytest.approx(static, rel=0, abs=5e-4 + 1e-9)


def test_evaluate_a_character_run_prints_its_held_out_perplexity(trained, capsys):
    code, out, err = run(capsys, "evaluate", "--checkpoint", trained)
    assert code == 0, err
    history = load_checkpoint(trained).history
    name, _, value = out.strip().rpartition(" ")
    assert name == "valid perplexity"
    # printed with 3 decimals; the same function on the same weights as in training
    assert float(value) == pytest.approx(history.valid_perplexity[-1], rel=0, abs=5e-4 + 1e-12)
    code, out, err = run(capsys, "evaluate", "--checkpoint", trained, "--split", "test")
    assert code == 2 and "has no test split" in err
