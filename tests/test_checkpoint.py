"""lyricnn.run.checkpoint: every model round-trips; format 1 loads; integrity, crash safety, lock."""
import hashlib
import json
import os
import random
from dataclasses import replace

import mxnet as mx
import numpy as np
import pytest
from mxnet import nd

from lyricnn.run import checkpoint as ck, format1, store, task
from lyricnn.run.config import RunConfig, text_sha1
from lyricnn.data.corpus import Vocab
from lyricnn.decoding.generate import generate
from lyricnn.models.build import MODELS
from lyricnn.training.loop import History

TEXT = "我想要你的微笑 分开 不分开 我想你的微笑每天都能看到 让我 不要 分开"
VOCAB = Vocab.from_tokens(TEXT)
ARGS = (VOCAB.idx_to_token, VOCAB.token_to_idx)


def config(**changes):
    return replace(RunConfig(num_hiddens=8, num_steps=4, batch_size=2, seed=3),
                   **changes).with_corpus(TEXT)


def history(n=2):
    h = History()
    for e in range(1, n + 1):
        h.append(e, 100.0 / e + 0.123456789, 0.5, 200.0 / e if e > 1 else 250.0)
    return h


def save(path, cfg, lm=None, hist=None, **kwargs):
    mx.random.seed(cfg.seed)
    lm = lm if lm is not None else task.build_model(cfg)
    hist = hist if hist is not None else history()
    epoch = hist.epoch[-1] if hist.epoch else 0
    ck.save_checkpoint(path, cfg, VOCAB, lm, hist, TEXT,
                       ck.capture_rng_state(ck.mxnet_seed(cfg.seed, epoch)), **kwargs)
    return lm


def values(lm):
    return {k: v.asnumpy() for k, v in lm.named_parameters().items()}


def assert_same_parameters(a, b):
    va, vb = values(a), values(b)
    assert va.keys() == vb.keys()
    for name in va:
        np.testing.assert_array_equal(va[name], vb[name], err_msg=name)


# -- round trip -----------------------------------------------------------------

@pytest.mark.parametrize("model, layers", [(m, 1) for m in MODELS] +
                         [("gru-scratch", 2), ("lstm", 2)])
def test_every_model_round_trips_from_the_folder_alone(tmp_path, model, layers):
    cfg = config(model=model, num_layers=layers, valid_fraction=0.2)
    lm = save(tmp_path / "ck", cfg)
    mx.random.seed(12345)  # loading must not depend on the caller's MXNet stream
    loaded = ck.load_checkpoint(tmp_path / "ck")
    assert loaded.config == cfg and loaded.vocab == VOCAB and loaded.corpus_text == TEXT
    assert loaded.history == history() and loaded.epoch == 2 and loaded.format == 2
    assert type(loaded.lm) is type(lm)
    assert_same_parameters(loaded.lm, lm)
    assert generate(loaded.lm, "分开", 12, *ARGS) == generate(lm, "分开", 12, *ARGS)
    assert loaded.split_text() == cfg.split(TEXT)
    on_disk = sorted(p.name for p in (tmp_path / "ck").iterdir())
    assert on_disk == sorted(store.FILES + (store.MARKER,))
    saved = nd.load(str(tmp_path / "ck" / store.PARAMS))  # plain nd.save of named parameters
    assert sorted(saved) == sorted(lm.named_parameters())


def test_files_are_standard_json_with_the_umask_mode(tmp_path):
    hist = history(2)
    hist.valid_perplexity[1] = float("inf")  # a held-out text the model finds impossible
    old = os.umask(0o027)
    try:
        save(tmp_path / "ck", config(), hist=hist)
    finally:
        os.umask(old)
    folder = tmp_path / "ck"

    def strict(text):
        return json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard {c}"))
    for name in (store.CONFIG, store.VOCAB, store.HISTORY, store.RNG, store.MANIFEST):
        strict((folder / name).read_text(encoding="utf-8"))
        assert (folder / name).stat().st_mode & 0o777 == 0o640, name
    assert strict((folder / store.HISTORY).read_text())["valid_perplexity"] == [250.0, "inf"]
    assert ck.load_checkpoint(folder).history.valid_perplexity == [250.0, float("inf")]
    assert folder.stat().st_mode & 0o777 == 0o750
    manifest = strict((folder / store.MANIFEST).read_text())
    for name in store.DATA_FILES:
        data = (folder / name).read_bytes()
        assert manifest["files"][name] == {"sha256": hashlib.sha256(data).hexdigest(),
                                           "bytes": len(data)}


def test_run_directory_and_checkpoint_directory_both_resolve(tmp_path):
    save(tmp_path / "run" / "checkpoint", config())
    assert store.find_checkpoint(tmp_path / "run") == tmp_path / "run" / "checkpoint"
    assert store.find_checkpoint(tmp_path / "run" / "checkpoint") == tmp_path / "run" / "checkpoint"
    with pytest.raises(FileNotFoundError):
        store.find_checkpoint(tmp_path / "nowhere")
    with pytest.raises(store.CheckpointError, match="no lyricnn checkpoint"):
        store.find_checkpoint(tmp_path)


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


def test_save_refuses_inconsistent_arguments(tmp_path):
    cfg = config()
    lm = task.build_model(cfg)
    rng = ck.capture_rng_state(ck.mxnet_seed(cfg.seed, 2))
    with pytest.raises(ValueError, match="mxnet_seed"):
        ck.save_checkpoint(tmp_path / "a", cfg, VOCAB, lm, history(3), TEXT, rng)
    with pytest.raises(ValueError, match="corpus_sha1"):
        ck.save_checkpoint(tmp_path / "a", cfg, VOCAB, lm, history(), TEXT + "我", rng)
    with pytest.raises(ValueError, match="not the one of corpus_text"):
        ck.save_checkpoint(tmp_path / "a", cfg, Vocab(VOCAB.idx_to_token[::-1]), lm,
                           history(), TEXT, rng)
    assert not (tmp_path / "a").exists()


# -- format 1 -------------------------------------------------------------------

def write_format1(folder, model, layers, hidden, rs):
    """A checkpoint exactly as lyricnn wrote it before format 2 (old keys and names)."""
    folder.mkdir(parents=True)
    V = len(VOCAB)
    old_config = {"model": model, "layers": layers, "hidden": hidden, "vocab_size": V,
                  "steps": 4, "batch": 2, "lr": 100.0, "clip": 0.01,
                  "sampler": "random" if model == "rnn-scratch" else "consecutive",
                  "seed": 3, "corpus": None, "num_chars": 10000, "valid_fraction": 0.0,
                  "corpus_sha1": text_sha1(TEXT)}
    (folder / "config.json").write_text(json.dumps({"format": 1, "config": old_config}))
    (folder / "vocab.json").write_text(VOCAB.to_json(), encoding="utf-8")
    if model == "rnn-scratch":
        shapes = {"W_xh": (V, hidden), "W_hh": (hidden, hidden), "b_h": (hidden,),
                  "W_hq": (hidden, V), "b_q": (V,)}
    else:
        gates = {"rnn": 1, "gru": 3, "lstm": 4}[model] * hidden
        shapes = {"dense.weight": (V, hidden), "dense.bias": (V,)}
        for layer in range(layers):
            shapes.update({
                f"rnn._unfused.{layer}.i2h_weight": (gates, V if layer == 0 else hidden),
                f"rnn._unfused.{layer}.h2h_weight": (gates, hidden),
                f"rnn._unfused.{layer}.i2h_bias": (gates,),
                f"rnn._unfused.{layer}.h2h_bias": (gates,)})
    arrays = {k: rs.normal(scale=0.1, size=s).astype(np.float32) for k, s in shapes.items()}
    nd.save(str(folder / "params.params"), {k: nd.array(v) for k, v in arrays.items()})
    # Format 1 wrote json.dumps' default, which allows Infinity.
    (folder / "history.json").write_text(json.dumps(
        {"epoch": [1, 2], "perplexity": [300.0, 200.0], "seconds": [0.1, 0.1],
         "valid_perplexity": [None, None]}))
    (folder / "rng.json").write_text(json.dumps(ck.capture_rng_state(5)))
    (folder / "corpus.txt").write_text(TEXT, encoding="utf-8")
    return arrays


def test_upgrade_format1_renames_the_short_keys():
    old = {"model": "gru", "layers": 2, "hidden": 8, "steps": 4, "batch": 2, "clip": 0.1,
           "lr": 1.0}
    assert format1.upgrade_format1(old) == {"model": "gru", "num_layers": 2, "num_hiddens": 8,
                                       "num_steps": 4, "batch_size": 2,
                                       "clipping_theta": 0.1, "lr": 1.0}


@pytest.mark.parametrize("model, layers", [("rnn-scratch", 1), ("gru", 2), ("lstm", 1),
                                           ("rnn", 1)])
def test_format1_checkpoints_still_load(tmp_path, model, layers):
    arrays = write_format1(tmp_path / "ck", model, layers, 8, np.random.RandomState(0))
    loaded = ck.load_checkpoint(tmp_path / "ck")
    assert loaded.format == 1 and loaded.epoch == 2
    assert (loaded.config.model, loaded.config.num_layers, loaded.config.num_hiddens,
            loaded.config.batch_size, loaded.config.clipping_theta) == (model, layers, 8, 2,
                                                                        0.01)
    got = values(loaded.lm)
    assert len(got) == len(arrays)
    # Every saved array sits in the parameter of the same role under the new name.
    renamed = {k.replace("rnn._unfused.", "rnn.l").replace(".i2h", "_i2h")
               .replace(".h2h", "_h2h"): v for k, v in arrays.items()}
    for name, value in renamed.items():
        np.testing.assert_array_equal(got[name], value, err_msg=name)
    # The next save writes format 2 in place.
    ck.save_checkpoint(tmp_path / "ck", loaded.config, loaded.vocab, loaded.lm,
                       loaded.history, loaded.corpus_text,
                       ck.capture_rng_state(ck.mxnet_seed(3, 2)))
    assert ck.load_checkpoint(tmp_path / "ck").format == 2


# -- integrity: checksums and content ---------------------------------------------

def _flip(path, offset=-20):
    data = bytearray(path.read_bytes())
    for i in range(4):
        data[offset + i] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("name", store.DATA_FILES)
def test_a_flipped_byte_in_any_file_is_refused_by_name(tmp_path, name):
    save(tmp_path / "ck", config())
    _flip(tmp_path / "ck" / name, offset=len((tmp_path / "ck" / name).read_bytes()) // 2)
    with pytest.raises(store.CheckpointError, match=f"{name}: does not match its checksum in "
                                                 "manifest.json .* restore the folder"):
        ck.load_checkpoint(tmp_path / "ck")


def _resign(folder):
    """Rewrite the manifest for the files as they are: only the content checks remain."""
    manifest = json.loads((folder / store.MANIFEST).read_text())
    for name in store.DATA_FILES:
        data = (folder / name).read_bytes()
        manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(),
                                   "bytes": len(data)}
    (folder / store.MANIFEST).write_text(json.dumps(manifest))


def _edit_json(name, edit):
    def damage(folder):
        path = folder / name
        path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    return damage


def _swap_vocab(data):
    tokens = data["idx_to_token"]
    tokens[3], tokens[4] = tokens[4], tokens[3]
    return data


def _nan_params(folder):
    arrays = nd.load(str(folder / store.PARAMS))
    name = sorted(arrays)[0]
    arrays[name][0] = float("nan")
    nd.save(str(folder / store.PARAMS), arrays)


def _set(key, value):
    def edit(data):
        data[key] = value
        return data
    return edit


def _set_config(**changes):
    def edit(data):
        data["config"].update(changes)
        return data
    return edit


CONTENT_DAMAGE = {
    "config-is-a-list": (store.CONFIG, _edit_json(store.CONFIG, lambda d: [1, 2]),
                         "expected an object with 'format' and 'config'"),
    "config-unknown-field": (store.CONFIG, _edit_json(store.CONFIG, _set_config(momentum=0.5)),
                             r"unknown \['momentum'\]"),
    "config-newer-format": (store.CONFIG, _edit_json(store.CONFIG, _set("format", 3)),
                            "format 3 is not one this lyricnn reads.*upgrade lyricnn"),
    "config-bad-hidden": (store.CONFIG, _edit_json(store.CONFIG, _set_config(num_hiddens="8")),
                          "num_hiddens must be an integer"),
    # Named by the parameters, which no longer fit the edited config.json.
    "config-architecture": (store.PARAMS, _edit_json(store.CONFIG, _set_config(num_hiddens=9)),
                            r"weights, but the model of config.json .* has"),
    "vocab-swapped": (store.VOCAB, _edit_json(store.VOCAB, _swap_vocab),
                      "is not the vocabulary of corpus.txt: index 3"),
    "vocab-not-a-list": (store.VOCAB, _edit_json(store.VOCAB, lambda d: {"idx_to_token": 5}),
                         "expected"),
    "rng-empty": (store.RNG, _edit_json(store.RNG, lambda d: {}), "expected an object with keys"),
    "rng-short-state": (store.RNG, _edit_json(store.RNG, lambda d: {**d, "numpy": {
        **d["numpy"], "keys": d["numpy"]["keys"][:10]}}), "not an MT19937 state"),
    "rng-other-epoch": (store.RNG, _edit_json(store.RNG, _set("mxnet_seed", 99)),
                        "mxnet_seed is 99, but after epoch 2"),
    "history-null": (store.HISTORY, _edit_json(store.HISTORY, lambda d: None), "expected an object"),
    "history-string-epochs": (store.HISTORY, _edit_json(store.HISTORY, _set("epoch", ["1", "2"])),
                              "'epoch' must be 1, 2, ..., n"),
    "history-string-perplexity": (store.HISTORY, _edit_json(store.HISTORY,
                                                         _set("perplexity", ["a", "b"])),
                                  "expected a number, got 'a'"),
    "history-lengths": (store.HISTORY, _edit_json(store.HISTORY, _set("seconds", [0.1])),
                        "lists of one length"),
    "history-not-json": (store.HISTORY, lambda f: (f / store.HISTORY).write_text("{not json"),
                         "not valid JSON"),
    "corpus-other-text": (store.CORPUS, lambda f: (f / store.CORPUS).write_text("other text"),
                          "does not match the sha1 in config.json"),
    "corpus-not-utf8": (store.CORPUS, lambda f: (f / store.CORPUS).write_bytes(b"\xff\xfe"),
                        "not UTF-8"),
    "params-garbage": (store.PARAMS, lambda f: (f / store.PARAMS).write_bytes(b"garbage"),
                       "not an MXNet parameter file"),
    "params-nan": (store.PARAMS, _nan_params, "holds NaN or infinite values"),
    "params-missing": (store.PARAMS, lambda f: (f / store.PARAMS).unlink(), "params.params: missing"),
    "manifest-missing": (store.MANIFEST, lambda f: (f / store.MANIFEST).unlink(),
                         "manifest.json: missing"),
}


@pytest.mark.parametrize("case", sorted(CONTENT_DAMAGE))
def test_malformed_content_is_one_checkpoint_error_naming_the_file(tmp_path, case):
    name, damage, message = CONTENT_DAMAGE[case]
    folder = tmp_path / "ck"
    save(folder, config())
    damage(folder)
    if name != store.MANIFEST and (folder / store.PARAMS).exists():
        _resign(folder)
    with pytest.raises(store.CheckpointError, match=message) as info:
        ck.load_checkpoint(folder)
    assert f"{folder}: {name}" in str(info.value) and "\n" not in str(info.value)
    assert "Traceback" not in str(info.value)


def test_expected_vocabulary_is_checked(tmp_path):
    save(tmp_path / "ck", config())
    swapped = list(VOCAB.idx_to_token)
    swapped[3], swapped[4] = swapped[4], swapped[3]
    with pytest.raises(ValueError, match=f"index 3 is {VOCAB.idx_to_token[3]!r}"):
        ck.load_checkpoint(tmp_path / "ck", vocab=Vocab(swapped))
    assert ck.load_checkpoint(tmp_path / "ck", vocab=Vocab(VOCAB.idx_to_token)).vocab == VOCAB


# -- crash safety ----------------------------------------------------------------

def leftovers_of(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".")
                  and not p.name.endswith(".lock"))


def test_crash_while_writing_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ck"
    old = save(path, config())
    real = ck.atomic_write_bytes

    def crash_on_history(file, data):
        if file.name == store.HISTORY:
            raise OSError("disk full")
        return real(file, data)

    monkeypatch.setattr(ck, "atomic_write_bytes", crash_on_history)
    with pytest.raises(OSError, match="disk full"):
        save(path, config(), hist=history(3))
    loaded = ck.load_checkpoint(path)
    assert loaded.epoch == 2
    assert_same_parameters(loaded.lm, old)
    assert leftovers_of(tmp_path) == []  # the temp folder is gone


def test_crash_between_the_renames_recovers_the_newest(tmp_path, monkeypatch, caplog):
    path = tmp_path / "ck"
    save(path, config())
    real_rename = os.rename

    def fail_second_rename(src, dst):
        if str(dst) == str(path):  # the new checkpoint moving into place
            raise OSError("power cut")
        real_rename(src, dst)

    monkeypatch.setattr(store.os, "rename", fail_second_rename)
    with pytest.raises(OSError, match="power cut"):
        save(path, config(), hist=history(3))
    monkeypatch.undo()
    assert not path.exists() and store.backup_path(path).is_dir()
    # (The temp folder of epoch 3 was removed by the failing save's cleanup.)
    assert ck.load_checkpoint(path).epoch == 2  # a reader finds .ck.old
    assert ck.recover(path) and leftovers_of(tmp_path) == []
    assert ck.load_checkpoint(path).epoch == 2
    assert "removed" in caplog.text or "recovered" in caplog.text


def test_a_complete_newer_temp_folder_wins_and_incomplete_ones_are_removed(tmp_path):
    path = tmp_path / "ck"
    save(path, config())
    # A save of epoch 3 killed after its manifest, before any rename:
    save(tmp_path / "newer", config(), hist=history(3))
    os.rename(tmp_path / "newer", tmp_path / ".ck.tmp-killed")
    # and one killed half way (no manifest):
    (tmp_path / ".ck.tmp-half").mkdir()
    (tmp_path / ".ck.tmp-half" / store.MARKER).write_text("")   # a save writes it first
    (tmp_path / ".ck.tmp-half" / store.CONFIG).write_text("{")
    assert ck.load_checkpoint(path).epoch == 3  # readers already see the newest
    actions = ck.recover(path)
    assert any("recovered" in a for a in actions)
    assert leftovers_of(tmp_path) == [] and ck.load_checkpoint(path).epoch == 3


def test_a_symlinked_checkpoint_is_written_through(tmp_path):
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real" / "ck", tmp_path / "link", target_is_directory=True)
    with pytest.raises(store.CheckpointError, match="symlink to .* which does not exist"):
        save(tmp_path / "link", config())
    save(tmp_path / "real" / "ck", config())
    save(tmp_path / "link", config(), hist=history(3))
    save(tmp_path / "link", config(), hist=history(4))
    assert (tmp_path / "link").is_symlink()
    assert ck.load_checkpoint(tmp_path / "link").epoch == 4
    assert ck.load_checkpoint(tmp_path / "real" / "ck").epoch == 4


def test_refuses_to_replace_a_folder_that_is_not_a_checkpoint(tmp_path):
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "notes.txt").write_text("mine")
    with pytest.raises(store.CheckpointError, match="not a lyricnn checkpoint"):
        save(tmp_path / "ck", config())
    assert (tmp_path / "ck" / "notes.txt").read_text() == "mine"


def test_a_second_writer_fails_at_once(tmp_path):
    path = tmp_path / "ck"
    save(path, config())
    with store.CheckpointLock(path) as lock:
        # flock belongs to an open file: a second lock fails even in this process.
        with pytest.raises(store.CheckpointLocked, match=f"pid {os.getpid()}.*another --out"):
            store.CheckpointLock(path).acquire()
        with pytest.raises(store.CheckpointLocked):
            save(path, config(), hist=history(3))
        save(path, config(), hist=history(3), lock=lock)  # the holder may save
    save(path, config(), hist=history(4))  # released
    assert ck.load_checkpoint(path).epoch == 4
