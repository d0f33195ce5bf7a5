"""``lyricnn generate`` through the decoding engine, and ``lyricnn train --keep-newlines``."""
import json

import pytest

from lyricnn.cli import main as cli
from lyricnn.run.checkpoint import load_checkpoint

TINY = ["--num-chars", "3000", "--num-hiddens", "32", "--num-steps", "10", "--batch-size", "8",
        "--no-progress", "--period", "1000", "--epochs", "3"]


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def lines_run(tmp_path_factory):
    """A character run that kept its newlines."""
    out = tmp_path_factory.mktemp("gen") / "lines"
    assert cli.main([str(a) for a in ["train", *TINY, "--keep-newlines", "--out", out]]) == 0
    return out


@pytest.fixture(scope="module")
def book_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "book"
    assert cli.main([str(a) for a in ["train", *TINY, "--out", out]]) == 0
    return out


def records(out):
    return [json.loads(line) for line in out.splitlines()]


def test_keep_newlines_keeps_them_and_the_book_default_does_not(lines_run, book_run):
    kept, book = load_checkpoint(lines_run), load_checkpoint(book_run)
    assert kept.config.keep_newlines and "\n" in kept.vocab.token_to_idx
    assert "\n" in kept.corpus_text and "\n" not in book.corpus_text
    assert kept.corpus_text.replace("\n", " ") == book.corpus_text


def test_keep_newlines_is_refused_at_word_level(capsys, tmp_path):
    code, _, err = run(capsys, "train", "--tokens", "word", "--keep-newlines", "--out",
                       tmp_path / "w")
    assert code == 2 and "--keep-newlines is for character-level models" in err


def test_json_candidates_are_reproducible_from_their_own_seed(capsys, lines_run):
    argv = ["generate", "--checkpoint", lines_run, "--prefix", "想要", "--strategy", "sample",
            "--top-p", "0.9", "--length", "20", "--json"]
    code, out, err = run(capsys, *argv, "-n", 3, "--seed", 11)
    batch = records(out)
    assert code == 0 and [r["seed"] for r in batch] == [11, 12, 13], err
    for r in batch:
        assert set(r) >= {"prefix", "text", "tokens", "log_prob", "seed", "finish_reason"}
        assert "".join(r["tokens"]) == r["text"] and r["log_prob"] < 0
        alone, = records(run(capsys, *argv, "--seed", r["seed"])[1])
        # The same candidate; its log_prob is the same sum of float32 logits computed in a
        # batch of 1 instead of 3 (another summation order): equal log-probs are checked in
        # float64 in tests/test_engine.py.
        assert {**alone, "log_prob": None} == {**r, "log_prob": None}


def test_plain_greedy_output_is_the_books(capsys, book_run):
    from lyricnn.run.task import task_of
    from lyricnn.decoding.generate import generate
    code, out, _ = run(capsys, "generate", "--checkpoint", book_run, "--prefix", "分开",
                       "--length", 20)
    ckpt = load_checkpoint(book_run)
    vocab = ckpt.vocab
    assert code == 0 and out == generate(ckpt.lm, "分开", 20, vocab.idx_to_token,
                                         vocab.token_to_idx) + "\n"
    assert task_of(ckpt.config).line_separator(ckpt.config, vocab) == " "


def test_acrostic_without_prefix(capsys, lines_run):
    code, out, err = run(capsys, "generate", "--checkpoint", lines_run, "--acrostic", "想要你",
                         "--line-length", 7, "--strategy", "sample", "--seed", 2, "--json")
    r, = records(out)
    assert code == 0 and [line[:1] for line in r["text"].split("\n")] == list("想要你"), err
    assert r["finish_reason"] == "stop"


def test_unknown_prefix_characters_are_refused_or_skipped(capsys, lines_run):
    code, out, err = run(capsys, "generate", "--checkpoint", lines_run, "--prefix", "想x要")
    assert code == 2 and out == "" and "['x']" in err and "--unknown skip" in err
    code, out, _ = run(capsys, "generate", "--checkpoint", lines_run, "--prefix", "想x要",
                       "--unknown", "skip", "--length", 5)
    same = run(capsys, "generate", "--checkpoint", lines_run, "--prefix", "想要", "--length", 5)
    assert code == 0 and out == same[1]


def test_ban_stop_and_lines(capsys, lines_run):
    code, out, _ = run(capsys, "generate", "--checkpoint", lines_run, "--prefix", "想要",
                       "--ban", "的我\n", "--length", 40, "--json")
    r, = records(out)
    assert code == 0 and not set(r["text"]) & set("的我\n") and len(r["tokens"]) == 40
    code, out, _ = run(capsys, "generate", "--checkpoint", lines_run, "--prefix", "想要\n",
                       "--lines", 2, "--line-length", 6, "--length", 100, "--json")
    r, = records(out)
    assert code == 0 and len(r["text"].split("\n")) == 2 and r["finish_reason"] == "stop"


def test_beam_returns_the_best_first(capsys, lines_run):
    code, out, _ = run(capsys, "generate", "--checkpoint", lines_run, "--prefix", "想要",
                       "--beam-width", 4, "-n", 3, "--length", 10, "--length-penalty", 0,
                       "--json")
    beams = records(out)
    # (beam >= greedy is tests/test_engine.py's, in float64.)
    assert code == 0 and len(beams) == 3 and len({b["text"] for b in beams}) == 3
    assert [b["log_prob"] for b in beams] == sorted((b["log_prob"] for b in beams), reverse=True)
    assert all(b["seed"] is None and len(b["tokens"]) == 10 for b in beams)


@pytest.mark.parametrize("argv, message", [
    (["--prefix", "想", "--top-p", "0"], "top_p must be"),
    (["--prefix", "想", "--min-p", "2"], "min_p must be"),
    (["--prefix", "想", "--beam-width", 2, "-n", 3], "more than --beam-width"),
    (["--prefix", "想", "--stop", "a", "--stop", "b", "--stop", "c", "--stop", "d",
      "--stop", "e"], "stop must be at most 4"),
    (["--prefix", "想", "--acrostic", "想x"], "--acrostic"),
    (["--prefix", "想", "--ban", "x"], "--ban"),
    ([], "give at least one --prefix"),
    (["--prefix", "想", "-n", 65], "num_candidates must be"),
])
def test_bad_generate_flags_are_one_line(capsys, lines_run, argv, message):
    code, out, err = run(capsys, "generate", "--checkpoint", lines_run, *argv)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and message in err, err


@pytest.fixture(scope="module")
def held_out_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "held"
    argv = ["train", *TINY, "--keep-newlines", "--valid-fraction", "0.2", "--out", out]
    assert cli.main([str(a) for a in argv]) == 0
    return out


def test_json_reports_originality_beside_the_human_baseline(capsys, held_out_run):
    from lyricnn.decoding.originality import OriginalityIndex, human_baseline
    from lyricnn.run.task import task_of
    code, out, err = run(capsys, "generate", "--checkpoint", held_out_run, "--prefix", "想要",
                         "--length", 40, "-n", 2, "--strategy", "sample", "--seed", 1, "--json")
    assert code == 0, err
    ckpt = load_checkpoint(held_out_run)
    corpus = task_of(ckpt.config).corpus(ckpt.config, ckpt.corpus_text)
    index = OriginalityIndex(corpus.train)
    baseline = human_baseline(corpus.train, corpus.valid)
    train_text = ckpt.corpus_text[:len(corpus.train)]
    for r in records(out):
        tokens = ckpt.vocab.to_indices(r["tokens"])
        assert r["novel_ngram_fraction"] == index.novelty_curve(tokens)
        assert r["human_novel_ngram_fraction"] == baseline
        assert r["duplication"] == index.duplication_scores(tokens).tolist()
        longest = r["longest_copy"]
        assert longest["length"] == index.longest_copy(tokens)["length"]
        if longest["length"]:
            copied = r["text"][longest["start"]:longest["end"]]
            assert copied in train_text and copied in longest["source"]["text"]


def test_max_copy_flag(capsys, held_out_run):
    code, out, err = run(capsys, "generate", "--checkpoint", held_out_run, "--prefix", "想要",
                         "--length", 40, "-n", 3, "--max-copy", 2, "--strategy", "sample",
                         "--seed", 3, "--json")
    assert code == 0 and all(r["longest_copy"]["length"] <= 2 for r in records(out)), err


def test_json_log_prob_equals_lyricnn_score_on_the_same_text(capsys, book_run):
    """score prints log P(text[1:] | text[0]) to 4 decimals; with a one-character prefix
    that is the candidate's log_prob. The two read the text differently (one step per call
    against chunks of 256): float32 rounding of the same products, at most about
    (h + 1) * 2**-24 * |log p| = 33 * 6e-8 * 10 = 2e-5 per token, 8e-4 over 40 tokens,
    plus half a unit of the printed digit."""
    code, out, _ = run(capsys, "generate", "--checkpoint", book_run, "--prefix", "想",
                       "--length", 40, "--strategy", "sample", "--seed", 5, "--json")
    r, = records(out)
    code, out, err = run(capsys, "score", "--checkpoint", book_run, "--ngram-order", 0,
                         "想" + r["text"])
    row = next(line for line in out.splitlines() if line.strip().startswith("1 "))
    scored = float(row.split()[1])
    assert code == 0 and abs(scored - r["log_prob"]) <= 8e-4 + 5e-5, (scored, r["log_prob"])


def test_acrostic_with_the_books_spaces_as_line_ends(capsys, book_run):
    """Without --keep-newlines the space is the line separator (the book's stand-in)."""
    code, out, err = run(capsys, "generate", "--checkpoint", book_run, "--acrostic", "想要你",
                         "--line-length", 6, "--strategy", "sample", "--seed", 4, "--json")
    r, = records(out)
    lines = r["text"].split(" ")
    assert code == 0 and [line[:1] for line in lines] == list("想要你"), err
    assert all(1 <= len(line) <= 6 for line in lines) and r["finish_reason"] == "stop"


def test_evaluate_and_generate_with_the_model_mixed_with_an_ngram(capsys, held_out_run):
    from lyricnn.run.task import task_of
    code, out, err = run(capsys, "evaluate", "--checkpoint", held_out_run)
    alone = float(out.split()[-1])
    code, out, err = run(capsys, "evaluate", "--checkpoint", held_out_run, "--mix-ngram", 3,
                         "--mix-weight", 1.0)
    assert code == 0 and abs(float(out.split()[-1]) - alone) <= 1e-3 * alone, err
    code, out, err = run(capsys, "evaluate", "--checkpoint", held_out_run, "--mix-ngram", 3)
    ckpt = load_checkpoint(held_out_run)
    task = task_of(ckpt.config)
    mixture = task.mixture(ckpt.config, ckpt.vocab, ckpt.lm, ckpt.corpus_text, 3, 0.5)
    held_out = task.corpus(ckpt.config, ckpt.corpus_text).valid
    want = task.evaluator(ckpt.config, held_out)(mixture)
    assert code == 0 and out.strip() == f"valid perplexity {want:.3f}", err
    code, out, err = run(capsys, "generate", "--checkpoint", held_out_run, "--prefix", "想要",
                         "--mix-ngram", 3, "--strategy", "sample", "--seed", 2, "-n", 2,
                         "--json")
    batch = records(out)
    alone = records(run(capsys, "generate", "--checkpoint", held_out_run, "--prefix", "想要",
                        "--mix-ngram", 3, "--strategy", "sample", "--seed", 3, "--json")[1])
    assert code == 0 and alone[0]["text"] == batch[1]["text"], err


@pytest.mark.parametrize("argv, message", [(["--mix-ngram", 11], "mix_ngram"),
                                           (["--mix-ngram", 3, "--mix-weight", 0], "mix_weight")])
def test_bad_mixture_flags_are_one_line(capsys, held_out_run, argv, message):
    code, out, err = run(capsys, "evaluate", "--checkpoint", held_out_run, *argv)
    assert code == 2 and out == "" and message in err and len(err.strip().splitlines()) == 1


def test_generating_changes_nothing_on_disk(capsys, held_out_run):
    import hashlib

    def tree():
        return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(held_out_run.rglob("*")) if p.is_file()}
    before = tree()
    for argv in (["--json", "--max-copy", 3], ["--beam-width", 2], ["--mix-ngram", 3]):
        assert run(capsys, "generate", "--checkpoint", held_out_run, "--prefix", "想要",
                   "--length", 10, *argv)[0] == 0
    assert tree() == before
