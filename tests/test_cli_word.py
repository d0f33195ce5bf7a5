"""Word-level runs through the command line (issue 13): train, resume, best/, evaluate, generate.

The corpus is synthetic (400 lines over 60 words, made here), the models tiny
(16 units, 1-4 epochs of a fraction of a second): what is tested is the
plumbing and the rules, not the quality of a model. PTB itself runs in
``examples/ptb_word_lm.py`` and ``benchmarks/``.
"""
import json

import numpy as np
import pytest

from lyricnn.cli import main as cli
from lyricnn.run.checkpoint import load_checkpoint
from lyricnn.training.loop import annealed_lr

WORDS = [f"w{i}" for i in range(60)]
TINY = ["--tokens", "word", "--num-hiddens", "16", "--num-steps", "6", "--batch-size", "4",
        "--valid-fraction", "0.2", "--no-progress"]


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def error_line(err):
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if not line.startswith("lyricnn: train")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """400 lines of 3-12 words drawn from a skewed 60-word distribution."""
    rng = np.random.RandomState(0)
    p = 1.0 / np.arange(1, len(WORDS) + 1)
    lines = [" ".join(rng.choice(WORDS, size=rng.randint(3, 13), p=p / p.sum()))
             for _ in range(400)]
    path = tmp_path_factory.mktemp("words") / "words.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    assert cli.main([str(a) for a in ["train", *TINY, "--corpus", corpus, "--epochs", 3,
                                      "--dropout", 0.2, "--seed", 3, "--out", out]]) == 0
    return out


def test_a_word_run_logs_each_epoch_and_saves_its_config(corpus, tmp_path, capsys):
    code, out, err = run(capsys, "train", *TINY, "--corpus", corpus, "--epochs", 2,
                         "--out", tmp_path / "r")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert [line.split(",")[0] for line in lines] == ["epoch 1", "epoch 2"]
    assert all("valid perplexity" in line and "tokens/s" in line and "lr 20" in line
               for line in lines)
    ckpt = load_checkpoint(tmp_path / "r")
    c = ckpt.config
    # The word-level defaults where the flags were not given (word_language_model's).
    assert (c.tokens, c.model, c.lr, c.clipping_theta, c.lr_decay, c.tokenizer) == \
        ("word", "lstm", 20.0, 0.25, 4.0, "whitespace")
    assert c.vocab_size == len(ckpt.vocab) and "<eos>" in ckpt.vocab and "<unk>" in ckpt.vocab
    assert set(ckpt.vocab.idx_to_token) <= set(WORDS) | {"<eos>", "<unk>"}


def test_best_is_the_epoch_with_the_lowest_validation_perplexity(trained):
    last = load_checkpoint(trained)
    best = load_checkpoint(trained / "best")
    valid = last.history.valid_perplexity
    # '<=': of equal perplexities the later epoch is kept.
    assert best.epoch == max(e for e, v in zip(last.history.epoch, valid) if v == min(valid))
    assert best.history.valid_perplexity[-1] == min(valid)


def test_evaluate_prints_the_split_perplexity_of_the_run_and_of_best(trained, capsys):
    code, out, err = run(capsys, "evaluate", "--checkpoint", trained)
    assert code == 0, err
    name, _, value = out.strip().rpartition(" ")
    assert name == "valid perplexity"
    history = load_checkpoint(trained).history
    # The same whole-split evaluation as the training loop's, to print rounding: 3
    # decimals, <= 5e-4.
    assert float(value) == pytest.approx(history.valid_perplexity[-1], rel=0, abs=5e-4 + 1e-12)
    code, out, _ = run(capsys, "evaluate", "--checkpoint", trained / "best")
    assert float(out.split()[-1]) == pytest.approx(min(history.valid_perplexity), rel=0,
                                                   abs=5e-4 + 1e-12)


def test_evaluate_a_text_file_maps_unknown_words_to_unk(trained, tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("w0 w1 w2 zzz w3\nw1 w0 qqq\n" * 20, encoding="utf-8")
    code, out, err = run(capsys, "evaluate", "--checkpoint", trained, "--text", text)
    assert code == 0, err
    assert out.startswith(f"{text} perplexity ") and float(out.split()[-1]) > 1


@pytest.mark.parametrize("argv, message", [
    (["--split", "test"], "has no test split"),
    (["--corpus", "ptb"], "is not the checkpoint's"),
    (["--text", "missing.txt"], "missing.txt"),
    (["--text", "x", "--split", "valid"], "does not combine"),
    (["--dynamic-lr", "1e-4"], "add --dynamic"),
    (["--dynamic", "--mix-ngram", "3"], "does not combine with --mix-ngram"),
    (["--dynamic", "--dynamic-lr", "-1"], "dynamic_lr"),
    (["--dynamic", "--dynamic-lr", "nan"], "dynamic_lr"),
    (["--dynamic", "--dynamic-decay", "inf"], "dynamic_decay"),
    (["--dynamic", "--dynamic-lr", "fast"], "dynamic_lr"),
    (["--dynamic", "--dynamic-decay", "2"], "dynamic_decay"),
    (["--dynamic", "--dynamic-lr", "1"], "diverged"),
])
def test_evaluate_refuses_what_it_cannot_score(trained, capsys, argv, message, monkeypatch,
                                                tmp_path):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "evaluate", "--checkpoint", trained, *argv)
    assert code == 2 and out == "" and message in error_line(err)


def test_dynamic_evaluation_adapts_and_leaves_the_checkpoint_as_it_was(trained, tmp_path,
                                                                        capsys):
    """A text that repeats one line: static evaluation cannot learn the line, dynamic
    evaluation does (the training corpus draws its words independently, so a model of
    it has no way to predict the line's order)."""
    text = tmp_path / "refrain.txt"
    text.write_text("w7 w3 w11 w2 w19 w5 w1 w8\n" * 300, encoding="utf-8")
    files = {p: p.read_bytes() for p in sorted(trained.rglob("*")) if p.is_file()}
    code, out, err = run(capsys, "evaluate", "--checkpoint", trained, "--text", text)
    static = float(out.split()[-1])
    code, out, err = run(capsys, "evaluate", "--checkpoint", trained, "--text", text,
                         "--dynamic", "--dynamic-lr", "2e-4")
    assert code == 0, err
    head, _, tail = out.strip().partition(" (")
    assert head.startswith(f"{text} perplexity ") and tail == "dynamic evaluation)"
    adapted = float(head.split()[-1])
    assert 1 < adapted < 0.5 * static, (adapted, static)
    assert {p: p.read_bytes() for p in sorted(trained.rglob("*")) if p.is_file()} == files


def test_generate_refuses_unknown_prefix_words_or_reads_them_as_unk(trained, capsys):
    code, out, err = run(capsys, "generate", "--checkpoint", trained, "--prefix", "w0 nosuch",
                         "--length", 5)
    assert code == 2 and "['nosuch']" in err and out == ""
    code, out, err = run(capsys, "generate", "--checkpoint", trained, "--prefix", "w0 nosuch",
                         "--length", 5, "--unknown", "unk")
    assert code == 0, err
    words = out.split()
    assert words[:2] == ["w0", "<unk>"] and len(words) == 7


@pytest.mark.slow
def test_resume_equals_an_uninterrupted_run(corpus, tmp_path, capsys):
    """Dropout draws from MXNet and the lr anneals on plateaus: both must resume exactly."""
    flags = [*TINY, "--corpus", corpus, "--dropout", 0.3, "--seed", 11, "--lr", 40]
    assert run(capsys, "train", *flags, "--epochs", 4, "--out", tmp_path / "whole")[0] == 0
    assert run(capsys, "train", *flags, "--epochs", 2, "--out", tmp_path / "part")[0] == 0
    assert run(capsys, "train", "--resume", tmp_path / "part", "--epochs", 4,
               "--no-progress")[0] == 0
    whole, part = (load_checkpoint(tmp_path / d) for d in ("whole", "part"))
    assert whole.history.perplexity == part.history.perplexity
    assert whole.history.valid_perplexity == part.history.valid_perplexity
    assert whole.history.lr == part.history.lr
    for name, array in whole.lm.named_parameters().items():
        assert (array.asnumpy() == part.lm.named_parameters()[name].asnumpy()).all(), name


@pytest.mark.slow
def test_the_plateau_rule_fires_in_a_run(corpus, tmp_path, capsys):
    """lr 100 on a tiny corpus overfits: validation worsens and the rate is divided by 4."""
    code, out, err = run(capsys, "train", *TINY, "--corpus", corpus, "--lr", 100,
                         "--epochs", 6, "--seed", 1, "--out", tmp_path / "r")
    assert code == 0, err
    h = load_checkpoint(tmp_path / "r").history
    assert h.lr == [annealed_lr(e, h, 100.0, 4.0) for e in h.epoch]
    best = np.minimum.accumulate(h.valid_perplexity)
    fired = [e + 1 for e, v, b in zip(h.epoch[1:], h.valid_perplexity[1:], best[:-1])
             if v >= b and e < h.epoch[-1]]
    assert fired, f"validation never stopped improving: {h.valid_perplexity}"
    for e in fired:
        assert h.lr[e - 1] == h.lr[e - 2] / 4


@pytest.mark.parametrize("argv, message", [
    (["--tied", "--embed", "8"], "--tied shares the decoder's weight"),
    (["--model", "gru-scratch"], "word-level models are recurrent layers"),
    (["--sampler", "random"], "consecutive streams"),
    (["--batch-size", "100000"], "use a smaller --batch-size"),
    (["--valid-fraction", "0", "--decay-from", "0"], "has no valid split"),
])
def test_bad_word_flags_fail_up_front(corpus, tmp_path, capsys, argv, message):
    code, out, err = run(capsys, "train", *TINY, "--corpus", corpus, *argv, "--out",
                         tmp_path / "r")
    assert code == 2 and message in error_line(err)
    assert not (tmp_path / "r" / "checkpoint").exists()


@pytest.mark.parametrize("argv, message", [
    (["--dropout", "0.5"], "--dropout apply to the Gluon models"),     # default: rnn-scratch
    (["--model", "gru", "--tied", "--embed-size", "8"], "--tied shares the decoder's weight"),
    (["--model", "gru", "--tokenizer", "jieba"], "--tokenizer cuts a word-level corpus"),
    (["--corpus", "ptb"], "--corpus ptb is the word-level Penn Treebank"),
])
def test_word_flags_on_a_character_run_are_refused(tmp_path, capsys, argv, message):
    code, out, err = run(capsys, "train", *argv, "--out", tmp_path / "r")
    assert code == 2 and message in error_line(err)


def test_a_corpus_without_words_is_refused(tmp_path, capsys):
    blank = tmp_path / "blank.txt"
    blank.write_text(" \n\t\n  \n", encoding="utf-8")
    code, out, err = run(capsys, "train", "--tokens", "word", "--corpus", blank, "--out",
                         tmp_path / "r")
    assert code == 2 and "no words" in error_line(err)


def test_score_points_word_checkpoints_to_evaluate(trained, capsys):
    code, out, err = run(capsys, "score", "--checkpoint", trained, "w0 w1")
    assert code == 2 and "lyricnn evaluate" in error_line(err)


def test_a_word_checkpoint_records_the_learning_rates(trained):
    history = json.loads((trained / "checkpoint" / "history.json").read_text())
    assert history["lr"] == load_checkpoint(trained).history.lr and len(history["lr"]) == 3


def test_a_forced_fresh_run_drops_the_old_runs_best(trained, corpus, tmp_path, capsys):
    import shutil
    out = tmp_path / "run"
    shutil.copytree(trained, out)
    assert (out / "best").is_dir()
    # A character-level run (no held-out split) replacing a word run must not keep its best/.
    code, _, err = run(capsys, "train", "--num-chars", 1500, "--num-hiddens", 8, "--epochs", 1,
                       "--no-progress", "--out", out, "--force")
    assert code == 0, err
    assert not (out / "best").exists() and load_checkpoint(out).config.tokens == "char"


def test_a_character_model_with_dropout_reads_an_embedding_and_resumes_exactly(tmp_path, capsys):
    """--dropout (or --embed-size, --tied) on characters: the word models' embedding path."""
    flags = ["--model", "gru", "--num-chars", "2000", "--num-hiddens", "16", "--embed-size", 8,
             "--dropout", 0.3, "--valid-fraction", 0.1, "--lr-decay", 2, "--seed", 4,
             "--num-steps", 10, "--batch-size", 8, "--no-progress", "--period", 100]
    assert run(capsys, "train", *flags, "--epochs", 3, "--out", tmp_path / "whole")[0] == 0
    assert run(capsys, "train", *flags, "--epochs", 1, "--out", tmp_path / "part")[0] == 0
    assert run(capsys, "train", "--resume", tmp_path / "part", "--epochs", 3)[0] == 0
    whole, part = (load_checkpoint(tmp_path / d) for d in ("whole", "part"))
    assert "embedding.weight" in " ".join(whole.lm.named_parameters())
    assert whole.history.valid_perplexity == part.history.valid_perplexity
    assert whole.history.lr == part.history.lr and len(whole.history.lr) == 3


def test_word_acrostic_lines_start_with_the_given_words(trained, capsys):
    """Words: the acrostic is cut into words, lines end at <eos> (written as a newline)."""
    import json
    code, out, err = run(capsys, "generate", "--checkpoint", trained, "--acrostic", "w0 w1 w2",
                         "--line-length", 5, "--strategy", "sample", "--seed", 1, "--json")
    r = json.loads(out)
    lines = r["text"].split("\n")
    assert code == 0 and [line.split()[0] for line in lines] == ["w0", "w1", "w2"], err
    assert all(1 <= len(line.split()) <= 5 for line in lines) and r["finish_reason"] == "stop"


def test_a_checkpoint_from_before_the_flat_layer_vectors_loads_and_scores_the_same(
        trained, tmp_path, capsys):
    """Word checkpoints written before ``fused.Stack`` hold each layer's four Gluon-named
    arrays: they load into the flat vectors (``merge_layer_arrays``) and evaluate as before."""
    import shutil

    from mxnet import nd

    from lyricnn.models import fused
    from lyricnn.run import store
    from tests.test_checkpoint import _resign

    old = tmp_path / "old"
    shutil.copytree(trained / "checkpoint", old)
    arrays = nd.load(str(old / store.PARAMS))
    shapes = load_checkpoint(trained).lm.model.rnn.shapes
    for l, layer in enumerate(shapes):
        for part, piece in fused.split(arrays.pop(f"rnn.l{l}_flat"), layer).items():
            arrays[f"rnn.l{l}_{part}"] = piece.copy()
    nd.save(str(old / store.PARAMS), arrays)
    _resign(old)
    assert "rnn.l0_i2h_weight" in nd.load(str(old / store.PARAMS))
    new = load_checkpoint(trained).lm.named_parameters()
    for name, array in load_checkpoint(old).lm.named_parameters().items():
        np.testing.assert_array_equal(array.asnumpy(), new[name].asnumpy(), err_msg=name)
    scores = []
    for folder in (trained / "checkpoint", old):
        code, out, err = run(capsys, "evaluate", "--checkpoint", folder)
        assert code == 0, err
        scores.append(out)
    assert scores[0] == scores[1]
