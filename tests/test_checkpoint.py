"""lyricnn.checkpoint: config, round trip, RNG states, atomic save, clear mismatch errors."""
import json
import os
import random
from dataclasses import replace

import mxnet as mx
import numpy as np
import pytest
from mxnet import nd

from lyricnn import checkpoint as ck
from lyricnn.data import Vocab
from lyricnn.training import History

TEXT = "我想要你的微笑 分开 不分开 我想你的微笑每天都能看到 让我 不要 分开"
VOCAB = Vocab.from_tokens(TEXT)


def config(**changes):
    base = ck.RunConfig(model="rnn-scratch", hidden=8, vocab_size=len(VOCAB), steps=4,
                        batch=2, seed=3, corpus_sha1=ck.text_sha1(TEXT))
    return replace(base, **changes).validate()


def history(n=2):
    h = History()
    for e in range(1, n + 1):
        h.append(e, 100.0 / e + 0.123456789, 0.5, 200.0 / e if e > 1 else 250.0)
    return h


def save(path, cfg, lm=None, hist=None):
    mx.random.seed(cfg.seed)
    lm = lm if lm is not None else ck.build_model(cfg, mx.cpu())
    hist = hist if hist is not None else history()
    ck.save_checkpoint(path, cfg, VOCAB, lm, hist, TEXT, ck.capture_rng_state(cfg.seed + 2))
    return lm


def values(lm):
    return {k: v.asnumpy() for k, v in ck.named_parameters(lm).items()}


# -- RunConfig ------------------------------------------------------------------

@pytest.mark.parametrize("changes, field", [
    ({"model": "transformer"}, "model"), ({"sampler": "shuffled"}, "sampler"),
    ({"hidden": 0}, "hidden"), ({"layers": 2}, "layers"), ({"lr": -1.0}, "lr"),
    ({"clip": 0}, "clip"), ({"seed": -1}, "seed"), ({"valid_fraction": 1.0}, "valid_fraction"),
    ({"num_chars": 0}, "num_chars"), ({"batch": True}, "batch")])
def test_config_validation_names_the_bad_field(changes, field):
    with pytest.raises(ValueError, match=field):
        replace(config(), **changes).validate()


def test_split_holds_out_the_tail():
    text = "".join(chr(ord("a") + i % 26) for i in range(100))
    train, valid = config(valid_fraction=0.1).split(text)
    assert (train, valid) == (text[:90], text[90:])
    assert config().split(text) == (text, None)
    with pytest.raises(ValueError, match="held-out"):
        config(valid_fraction=0.01).split(text)


# -- round trip -----------------------------------------------------------------

@pytest.mark.parametrize("changes", [{}, {"model": "gru"}, {"model": "lstm", "layers": 2},
                                     {"model": "rnn", "valid_fraction": 0.2}],
                         ids=["scratch", "gru", "lstm-2-layers", "rnn"])
def test_round_trip_rebuilds_the_model_from_the_folder_alone(tmp_path, changes):
    cfg = config(**changes)
    lm = save(tmp_path / "ck", cfg)
    mx.random.seed(12345)  # loading must not depend on the caller's MXNet stream
    loaded = ck.load_checkpoint(tmp_path / "ck")
    assert loaded.config == cfg and loaded.vocab == VOCAB and loaded.corpus_text == TEXT
    assert loaded.history == history() and loaded.epoch == 2
    assert type(loaded.lm) is type(lm)
    saved, got = values(lm), values(loaded.lm)
    assert saved.keys() == got.keys()
    for name in saved:
        np.testing.assert_array_equal(got[name], saved[name], err_msg=name)
    args = (VOCAB.idx_to_token, VOCAB.token_to_idx)
    assert loaded.lm.predict("分开", 12, *args) == lm.predict("分开", 12, *args)
    assert loaded.split_text() == cfg.split(TEXT)


def test_run_directory_and_checkpoint_directory_both_resolve(tmp_path):
    save(tmp_path / "run" / "checkpoint", config())
    assert ck.find_checkpoint(tmp_path / "run") == tmp_path / "run" / "checkpoint"
    assert ck.find_checkpoint(tmp_path / "run" / "checkpoint") == tmp_path / "run" / "checkpoint"
    with pytest.raises(FileNotFoundError):
        ck.find_checkpoint(tmp_path / "nowhere")
    with pytest.raises(ck.CheckpointError, match="no lyricnn checkpoint"):
        ck.find_checkpoint(tmp_path)


def test_rng_states_restore_exactly():
    random.seed(1)
    np.random.seed(2)
    random.random()  # move both off their freshly seeded states
    np.random.normal()
    state = json.loads(json.dumps(ck.capture_rng_state(7)))  # through JSON, as on disk
    expected = ([random.random() for _ in range(5)], np.random.normal(size=5),
                random.sample(range(100), 10))
    mx.random.seed(7)
    expected_mx = nd.random.normal(shape=5).asnumpy()
    random.seed(99)
    np.random.seed(99)
    mx.random.seed(99)
    ck.restore_rng_state(state)
    assert [random.random() for _ in range(5)] == expected[0]
    np.testing.assert_array_equal(np.random.normal(size=5), expected[1])
    assert random.sample(range(100), 10) == expected[2]
    np.testing.assert_array_equal(nd.random.normal(shape=5).asnumpy(), expected_mx)
    assert ck.mxnet_seed(3, 0) == 3 and ck.mxnet_seed(3, 5) == 8


# -- atomic save ----------------------------------------------------------------

def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_crash_while_writing_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ck"
    old = save(path, config())
    original_write = ck._write_json

    def crash_on_history(file, data):
        if file.name == ck.HISTORY:
            file.write_text('{"epoch": [1, 2', encoding="utf-8")  # half written
            raise OSError("disk full")
        original_write(file, data)

    monkeypatch.setattr(ck, "_write_json", crash_on_history)
    with pytest.raises(OSError, match="disk full"):
        save(path, config(), hist=history(3))
    loaded = ck.load_checkpoint(path)
    assert loaded.epoch == 2
    np.testing.assert_array_equal(values(loaded.lm)["W_xh"], values(old)["W_xh"])
    assert _leftovers(tmp_path) == []  # the temp folder is gone


def test_crash_between_the_renames_falls_back_to_the_previous_checkpoint(tmp_path, monkeypatch,
                                                                          caplog):
    path = tmp_path / "ck"
    save(path, config())
    real_rename = os.rename

    def fail_second_rename(src, dst):
        if str(dst) == str(path):  # the new checkpoint moving into place
            raise OSError("power cut")
        real_rename(src, dst)

    monkeypatch.setattr(ck.os, "rename", fail_second_rename)
    with pytest.raises(OSError, match="power cut"):
        save(path, config(), hist=history(3))
    monkeypatch.undo()
    assert not path.exists() and ck.backup_path(path).is_dir()
    assert ck.load_checkpoint(path).epoch == 2  # recovered from .ck.old
    assert "interrupted" in caplog.text
    save(path, config(), hist=history(3))  # the next save completes and cleans up
    assert ck.load_checkpoint(path).epoch == 3
    assert _leftovers(tmp_path) == []


def test_refuses_to_replace_a_folder_that_is_not_a_checkpoint(tmp_path):
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "notes.txt").write_text("mine")
    with pytest.raises(ck.CheckpointError, match="not a lyricnn checkpoint"):
        save(tmp_path / "ck", config())
    assert (tmp_path / "ck" / "notes.txt").read_text() == "mine"


# -- mismatches -----------------------------------------------------------------

def _edit_config(path, **changes):
    data = json.loads((path / ck.CONFIG).read_text())
    data["config"].update(changes)
    (path / ck.CONFIG).write_text(json.dumps(data))


@pytest.mark.parametrize("saved, edited, message", [
    ({}, {"hidden": 9}, r"'W_xh' has shape \(\d+, 8\) in the file but the model needs \(\d+, 9\)"),
    ({"model": "gru"}, {"model": "lstm"}, r"has shape \(24, \d+\) .* needs \(32, \d+\)"),
    ({"model": "gru"}, {"layers": 2}, r"missing \['rnn._unfused.1.h2h_bias'"),
    ({}, {"model": "gru"}, r"missing .* unexpected \['W_hh', 'W_hq'"),
], ids=["hidden", "gru-as-lstm", "layers", "scratch-as-gluon"])
def test_architecture_mismatch_is_a_clear_value_error(tmp_path, saved, edited, message):
    path = tmp_path / "ck"
    save(path, config(**saved))
    _edit_config(path, **edited)
    with pytest.raises(ValueError, match=message):
        ck.load_checkpoint(path)


def test_vocabulary_mismatch_is_a_clear_value_error(tmp_path):
    path = tmp_path / "ck"
    save(path, config())
    other = Vocab.from_tokens(TEXT + "☃")
    (path / ck.VOCAB).write_text(other.to_json())
    with pytest.raises(ck.CheckpointError, match=r"has \d+ characters but the model .* "
                                                 r"vocab_size=\d+"):
        ck.load_checkpoint(path)
    # The parameters alone betray a vocabulary of another size, too.
    _edit_config(path, vocab_size=len(other))
    with pytest.raises(ck.CheckpointError, match="W_xh.*vocabulary size"):
        ck.load_checkpoint(path)


def test_expected_vocabulary_is_checked(tmp_path):
    path = tmp_path / "ck"
    save(path, config())
    swapped = list(VOCAB.idx_to_token)
    swapped[3], swapped[4] = swapped[4], swapped[3]
    with pytest.raises(ValueError, match=f"index 3 is {VOCAB.idx_to_token[3]!r}"):
        ck.load_checkpoint(path, vocab=Vocab(swapped))
    assert ck.load_checkpoint(path, vocab=Vocab(VOCAB.idx_to_token)).vocab == VOCAB


@pytest.mark.parametrize("damage, message", [
    (lambda p: (p / ck.PARAMS).unlink(), "params.params is missing"),
    (lambda p: (p / ck.HISTORY).write_text("{not json"), "cannot read history.json"),
    (lambda p: (p / ck.CORPUS).write_text("other text"), "does not match the sha1"),
    (lambda p: (p / ck.PARAMS).write_bytes(b"garbage"), "cannot read"),
    (lambda p: _edit_config(p, dropout=0.5), "unknown config field"),
])
def test_damaged_checkpoints_raise_checkpoint_error(tmp_path, damage, message):
    path = tmp_path / "ck"
    save(path, config())
    damage(path)
    with pytest.raises(ck.CheckpointError, match=message):
        ck.load_checkpoint(path)
