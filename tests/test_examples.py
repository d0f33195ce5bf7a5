"""Dry-run every example script on a tiny configuration, so none of them can rot."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

#: Every test here starts processes or trains for seconds: left out of make test-fast.
pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TINY = ["--epochs", "2", "--period", "1", "--hidden", "16", "--pred-len", "5"]
LOG_LINE = re.compile(r"^epoch 2, perplexity \d+\.\d{6}, time \d+\.\d\d sec$", re.M)


def _run(script, *args):
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    return subprocess.run([sys.executable, str(EXAMPLES / script), *args], env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("script,args,runs", [
    ("rnn_scratch.py", [], 2),
    ("rnn_scratch.py", ["--sampler", "consecutive"], 1),
    ("rnn_gluon.py", [], 1),
    ("rnn_gluon.py", ["--cell", "lstm", "--layers", "2"], 1),
    ("rnn_gluon.py", ["--cell", "gru"], 1),
    ("gated.py", ["--cell", "gru"], 2),
    ("gated.py", ["--cell", "lstm", "--impl", "scratch", "--num-layers", "2"], 1),
])
def test_training_examples_print_the_book_log(script, args, runs):
    out = _run(script, *TINY, *args)
    assert out.returncode == 0, out.stderr
    assert len(LOG_LINE.findall(out.stdout)) == runs
    assert " - 分开" in out.stdout and " - 不分开" in out.stdout


def _module_level(node):
    """The statements under ``node`` that run when the module loads: into ``if``, ``try``
    and ``with`` blocks, not into functions or classes (a worker function's imports are
    its own process's business)."""
    import ast
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        yield child
        yield from _module_level(child)


def _first_import(tree, package):
    """Where the first module-level import of ``package`` (or of a module in it) is, in
    the order Python runs them: (statement, name within it)."""
    import ast
    nodes = sorted((n for n in _module_level(tree) if isinstance(n, (ast.Import, ast.ImportFrom))),
                   key=lambda n: (n.lineno, n.col_offset))
    for i, node in enumerate(nodes):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                 [node.module or ""])
        for j, name in enumerate(names):
            if name == package or name.startswith(package + "."):
                return i, j
    return None


def _sources():
    """(name, code) of every example and benchmark script and of every notebook (its code
    cells joined in order)."""
    import json
    root = EXAMPLES.parent
    for script in sorted(EXAMPLES.glob("*.py")) + sorted((root / "benchmarks").glob("*.py")):
        yield script.name, script.read_text()
    for notebook in sorted((EXAMPLES / "notebooks").glob("*.ipynb")):
        cells = json.loads(notebook.read_text())["cells"]
        yield notebook.name, "\n".join("".join(c["source"]) for c in cells
                                        if c["cell_type"] == "code" and
                                        not "".join(c["source"]).lstrip().startswith(("%", "!")))


def test_scripts_import_lyricnn_before_mxnet():
    """``import lyricnn`` sets MXNet's OpenMP threads, which MXNet reads when it loads:
    imported after MXNet, it cannot, and MXNet trains on half the CPUs (measured: the
    PTB budget model at 2,330 tokens/s instead of about 4,000 on 2 vCPUs)."""
    import ast
    sources, late = list(_sources()), []
    for name, code in sources:
        tree = ast.parse(code)
        mx, ly = _first_import(tree, "mxnet"), _first_import(tree, "lyricnn")
        if mx is not None and (ly is None or ly > mx):
            late.append(f"{name}: mxnet at import {mx}, lyricnn at {ly}")
    assert sum(name.endswith(".ipynb") for name, _ in sources) >= 5 and len(sources) > 15
    assert not late, late
    # The check itself: both orders on one line, and a notebook-style late import.
    assert _first_import(ast.parse("import mxnet, lyricnn"), "mxnet") < \
        _first_import(ast.parse("import mxnet, lyricnn"), "lyricnn")
    assert _first_import(ast.parse("import lyricnn as d2l\nfrom mxnet import nd"), "lyricnn") \
        < _first_import(ast.parse("import lyricnn as d2l\nfrom mxnet import nd"), "mxnet")
    assert _first_import(ast.parse("try:\n    import mxnet\nexcept ImportError:\n    pass"),
                         "mxnet") == (0, 0)
    assert _first_import(ast.parse("def f():\n    import mxnet"), "mxnet") is None


def test_example_flags_have_help():
    for script in ("rnn_scratch.py", "rnn_gluon.py", "gated.py"):
        out = _run(script, "--help")
        assert out.returncode == 0
        for flag in ("--epochs", "--lr", "--clip", "--hidden", "--seed", "--num-hiddens",
                     "--clipping-theta"):
            assert flag in out.stdout


def test_example_flags_come_from_the_run_config():
    """One config source: the examples' defaults are RunConfig's, bad values name the flag."""
    from lyricnn.run.config import RunConfig
    out = _run("rnn_scratch.py", "--help")
    assert f"(default: {RunConfig.num_hiddens})" in " ".join(out.stdout.split())
    out = _run("rnn_scratch.py", "--batch-size", "0")
    assert out.returncode == 2 and "batch_size must be an integer >= 1, got 0" in out.stderr


def test_ptb_word_lm_runs_its_recipes_on_a_slice_of_ptb():
    out = _run("ptb_word_lm.py", "--recipe", "tied", "--limit", "3000", "--num-hiddens", "8",
               "--embed-size", "8", "--epochs", "2")
    assert out.returncode == 0, out.stderr
    epochs = re.findall(r"^epoch +(\d+), lr ([\d.]+), perplexity [\d.]+, valid [\d.]+, ",
                        out.stdout, re.M)
    assert [e for e, _ in epochs] == ["1", "2"]
    assert re.search(r"^best epoch [12]: valid perplexity [\d.]+, test perplexity [\d.]+; "
                     r"wall time [\d.]+ min, peak RSS [\d,]+ MiB$", out.stdout, re.M)


def test_ptb_word_lm_budget_recipe_runs_the_command_line_and_reports(tmp_path):
    """The 60-minute recipe through lyricnn train and evaluate, shrunk by flags after --
    (one epoch of a tiny model, with an adaptive softmax, so that it takes seconds)."""
    out = _run("ptb_word_lm.py", "--budget", "60", "--out", tmp_path / "run", "--dynamic",
               "--", "--epochs", "1", "--num-hiddens", "8", "--embed", "8", "--num-layers",
               "1", "--cutoffs", "50,500", "--batch-size", "200", "--num-steps", "10",
               "--no-progress")
    assert out.returncode == 0, out.stderr
    train, evaluate, dynamic = [line for line in out.stdout.splitlines()
                                if line.startswith("$ ")]
    assert "--max-minutes 60" in train and "--dropout 0.5" in train and "--tied" in train
    # The model was timed here; of the hundreds of epochs it would fit in 60 minutes,
    # --epochs 1 (after --, so it wins in lyricnn train) leaves one: nothing to anneal.
    assert re.search(r"^measured here: [\d,]+ tokens/s, about \d+ s an epoch with "
                     r"validation: about 1 whole epochs \(--epochs\) in 60 minutes, so lr "
                     r"constant$", out.stdout, re.M), out.stdout
    assert "--decay-from 1 --lr-decay 1 --max-minutes 60" in train
    assert evaluate.endswith(f"--checkpoint {tmp_path / 'run' / 'best'} --split test")
    assert dynamic == evaluate + " --dynamic"
    assert re.search(r"^test perplexity [\d.]+$", out.stdout, re.M)
    assert re.search(r"^test perplexity [\d.]+ \(dynamic evaluation\)$", out.stdout, re.M)
    assert re.search(r"^budget 60 min: 1 whole epochs; validation perplexity by epoch: "
                     r"[\d.]+; best epoch 1; ", out.stdout, re.M)
    assert re.search(r"peak RSS [\d,]+ MiB .*; machine: .+", out.stdout)


def _example(name):
    """An example script as a module (its functions, without running its main)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ptb_word_lm_budget_anneal_gives_the_measured_runs_flags_at_their_epochs():
    """The rule reproduces the two measured runs (17 and 32 epochs) flag for flag, and
    at any other epoch count keeps their share at the full rate and their final rate."""
    ex = _example("ptb_word_lm")
    assert ex.anneal(60, 17) == (11, 1.5) and ex.anneal(120, 32) == (13, 1.3)
    for budget, epochs in ((60, 17), (120, 32)):
        decay_from, lr_decay = ex.anneal(budget, epochs)
        assert ex.FIXED_SCHEDULES[budget] == ["--decay-from", str(decay_from),
                                              "--lr-decay", f"{lr_decay:g}"]
    for budget, (share, fall) in ex.ANNEALS.items():
        for epochs in range(2, 80):
            decay_from, lr_decay = ex.anneal(budget, epochs)
            assert decay_from == max(1, round(share * epochs)) and decay_from < epochs
            # lr_decay carries 6 significant digits: a relative error of at most 5e-6,
            # which the (epochs - decay_from) divisions compound to at most that many times.
            decayed = epochs - decay_from
            assert abs(lr_decay ** -decayed / fall - 1) <= 1.01 * decayed * 5e-6, epochs
    assert ex.anneal(60, 1) == (1, 1.0) and ex.anneal(120, 0) == (1, 1.0)   # nothing to anneal


def test_ptb_word_lm_whole_epochs_counts_startup_training_and_validation():
    ex = _example("ptb_word_lm")
    measured = {"train_tokens": 1000, "tokens_per_s": 10.0, "valid_seconds": 20.0,
                "startup_seconds": 60.0}
    assert ex.whole_epochs(60, measured) == 29        # (3600 - 60) // (100 + 20)
    assert ex.whole_epochs(1, dict(measured, startup_seconds=61)) == 0
    assert ex.whole_epochs(60, dict(measured, epochs=5)) == 5     # --epochs caps it
    assert ex.whole_epochs(60, dict(measured, epochs=500)) == 29


def test_ptb_word_lm_budget_that_fits_no_epoch_stops_before_training():
    """A budget (here a --max-minutes after --, which wins) too short for one epoch of the
    model: exit 2 with the fix, before any training run that could save nothing."""
    out = _run("ptb_word_lm.py", "--budget", "60", "--", "--max-minutes", "0.01",
               "--num-hiddens", "8", "--embed", "8", "--num-layers", "1", "--batch-size",
               "200", "--num-steps", "10")
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert re.search(r"about 0 whole epochs in 0\.01 minutes", out.stdout), out.stdout
    assert out.stderr.strip().splitlines()[-1] == (
        "ptb_word_lm.py: no whole epoch of this model fits in 0.01 minutes here: give a "
        "longer --max-minutes or a smaller model after --")
    assert "$ lyricnn" not in out.stdout


def test_ptb_word_lm_budget_schedule_fixed_or_given_is_not_measured():
    out = _run("ptb_word_lm.py", "--budget", "120", "--print", "--schedule", "fixed")
    assert out.returncode == 0, out.stderr
    assert "measured here" not in out.stdout
    assert "--decay-from 13 --lr-decay 1.3 --max-minutes 120" in out.stdout
    out = _run("ptb_word_lm.py", "--budget", "60", "--print", "--", "--decay-from", "4")
    assert out.returncode == 0, out.stderr
    assert "measured here" not in out.stdout     # the user chose: theirs come last, and win
    assert re.search(r"--decay-from 11 --lr-decay 1.5 .* --decay-from 4$", out.stdout, re.M)
    out = _run("ptb_word_lm.py", "--budget", "60", "--print", "--", "--lr-decay=2")
    assert out.returncode == 0 and "measured here" not in out.stdout, out.stderr


def test_ptb_word_lm_budget_with_a_bad_flag_fails_in_one_line():
    """Timing the model parses the flags after -- first: a bad value is lyricnn's one-line
    error, not a traceback, and nothing is trained."""
    out = _run("ptb_word_lm.py", "--budget", "60", "--print", "--", "--num-hiddens", "0")
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert re.fullmatch(r"ptb_word_lm\.py: timing the recipe failed: lyricnn train: .*hiddens"
                        r".* \(--schedule fixed runs the published anneal without timing\)",
                        last), last
    assert "$ lyricnn" not in out.stdout


def _ctrl_c(args, wait_for, cwd):
    """Run the example in a process group of its own, press Ctrl-C (SIGINT to the whole
    group, as a terminal does) once a line of stdout contains ``wait_for``; its
    (returncode, stdout, stderr)."""
    import signal
    proc = subprocess.Popen([sys.executable, str(EXAMPLES / "ptb_word_lm.py"), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
                            start_new_session=True)
    try:
        lines = []
        while not any(wait_for in line for line in lines):
            line = proc.stdout.readline()
            assert line, (lines, proc.stderr.read())
            lines.append(line)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    return proc.returncode, "".join(lines) + out, err


def test_ptb_word_lm_budget_ctrl_c_while_timing_stops_in_one_line(tmp_path):
    """Ctrl-C while the model is timed (the full recipe: ~20 s): one line, exit 130, no
    traceback, nothing trained."""
    import signal
    import time
    proc = subprocess.Popen([sys.executable, str(EXAMPLES / "ptb_word_lm.py"), "--budget", "60",
                             "--out", str(tmp_path / "run")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        time.sleep(4.0)                        # the timing child is loading or timing
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == ("ptb_word_lm.py: interrupted while timing the "
                                            "model; nothing was trained")
    assert "$ lyricnn" not in out and not (tmp_path / "run").exists()


def test_ptb_word_lm_budget_ctrl_c_while_training_lets_lyricnn_train_save(tmp_path):
    """Ctrl-C during the budget's lyricnn train: the child stops cleanly and keeps its
    epoch (the example neither kills it nor prints a traceback), and nothing is evaluated."""
    code, out, err = _ctrl_c(["--budget", "60", "--schedule", "fixed", "--out",
                              tmp_path / "run", "--", "--epochs", "50", "--num-hiddens", "8",
                              "--embed", "8", "--num-layers", "1", "--batch-size", "200",
                              "--num-steps", "10", "--no-progress"], "epoch 1,", tmp_path)
    assert code == 130 and "Traceback" not in err, err
    assert "lyricnn train: interrupted by SIGINT" in err and "continue with" in err, err
    assert (tmp_path / "run" / "checkpoint").is_dir() and "test perplexity" not in out


def test_ptb_word_lm_stops_cleanly_on_ctrl_c():
    import signal
    import time
    proc = subprocess.Popen([sys.executable, str(EXAMPLES / "ptb_word_lm.py"), "--recipe",
                             "tied", "--limit", "3000", "--num-hiddens", "8", "--embed-size",
                             "8", "--epochs", "50"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=EXAMPLES.parent)
    try:
        line = proc.stdout.readline()                # the recipe line: training starts now
        assert line.startswith("tied:"), line
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert "interrupted by SIGINT" in out and proc.returncode in (0, 130), (out, err)


def test_the_lyrics_recipe_trains_and_keeps_the_best_held_out_epoch(tmp_path):
    """The studio's recipe on a slice (its flags otherwise as given): a held-out split,
    newlines kept, the embedding model with dropout, best/ written."""
    out = tmp_path / "lyrics"
    done = _run("train_lyrics.py", "--num-chars", "3000", "--num-hiddens", "16",
                "--embed-size", "16", "--epochs", "2", "--no-progress", "--out", str(out))
    assert done.returncode == 0, done.stderr
    from lyricnn.run.checkpoint import load_checkpoint
    best = load_checkpoint(out / "best")
    assert best.config.keep_newlines and best.config.dropout == 0.75 and best.config.tied
    assert best.history.valid_perplexity[-1] is not None and "\n" in best.vocab.token_to_idx


def test_the_lyrics_anchor_prints_both_preprocessings():
    done = _run("lyrics_anchor.py")
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| newlines")]
    assert len(rows) == 2
    for row in rows:   # perplexities fall with the order on this text
        ppl = [float(c) for c in row.strip("|").split("|")[1:]]
        assert ppl == sorted(ppl, reverse=True) and all(p > 1 for p in ppl)


def test_dynamic_eval_tunes_on_validation_tokens(tmp_path):
    rng = __import__("numpy").random.RandomState(0)
    words = [f"w{i}" for i in range(40)]
    (tmp_path / "words.txt").write_text(
        "\n".join(" ".join(rng.choice(words, size=8)) for _ in range(400)) + "\n",
        encoding="utf-8")
    train = subprocess.run([sys.executable, "-m", "lyricnn.cli", "train", "--tokens", "word",
                            "--corpus", str(tmp_path / "words.txt"), "--num-hiddens", "16",
                            "--num-steps", "6", "--batch-size", "4", "--valid-fraction", "0.2",
                            "--epochs", "1", "--no-progress", "--out", str(tmp_path / "run")],
                           capture_output=True, text=True, timeout=600)
    assert train.returncode == 0, train.stderr
    out = _run("dynamic_eval.py", "--checkpoint", str(tmp_path / "run"), "--tune-tokens",
               "120", "--grid", "1e-4:0:5,2e-4:0.01:10", "--stats-batches", "2")
    assert out.returncode == 0, out.stderr
    assert "static perplexity" in out.stdout
    assert "lr 0.0001, decay 0, 5-token segments:" in out.stdout
    assert "lr 0.0002, decay 0.01, 10-token segments:" in out.stdout
    assert re.search(r"^best: lr 0\.000[12], decay 0(\.01)?, (5|10)-token segments", out.stdout,
                     re.M)
    bad = _run("dynamic_eval.py", "--checkpoint", str(tmp_path / "run"), "--grid", "1e-4:0")
    assert bad.returncode == 2 and "LR:DECAY:SEGMENT" in bad.stderr
