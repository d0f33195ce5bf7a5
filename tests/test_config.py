"""lyricnn.run.config: one dataclass gives the checkpoint's fields, the CLI's flags, defaults and checks."""
import argparse
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from lyricnn.run import config as cf, flags
from lyricnn.run.config import WORD_FIELDS, RunConfig, TrainSettings
from lyricnn.models.build import GLUON_MODELS, MODELS, SCRATCH_MODELS

BOOK = {"model": "rnn-scratch", "num_layers": 1, "num_hiddens": 256, "num_steps": 35,
        "batch_size": 32, "lr": 1e2, "clipping_theta": 1e-2, "seed": 0, "corpus": None,
        "num_chars": 10000, "valid_fraction": 0.0}
ALIASES = {"--hidden": "num_hiddens", "--steps": "num_steps", "--batch": "batch_size",
           "--clip": "clipping_theta", "--layers": "num_layers", "--epochs": "num_epochs",
           "--period": "pred_period"}


def parser(*classes):
    p = argparse.ArgumentParser(exit_on_error=False)
    for cls in classes or (RunConfig, TrainSettings):
        flags.add_config_arguments(p, cls)
    return p


def parse(*argv):
    return parser().parse_args([str(a) for a in argv])


def test_field_names_are_the_books_and_defaults_the_books():
    names = [f.name for f in dataclasses.fields(RunConfig)]
    assert names == ["model", "num_layers", "num_hiddens", "vocab_size", "num_steps",
                     "batch_size", "lr", "clipping_theta", "sampler", "seed", "corpus",
                     "num_chars", "valid_fraction", "corpus_sha1", "keep_newlines", "tokens",
                     "tokenizer",
                     "embed_size", "dropout", "tied", "lr_decay", "decay_from",
                     "dropout_input", "dropout_hidden", "dropout_output", "dropout_embed",
                     "weight_drop", "ar", "tar", "asgd", "cutoffs", "div_value", "workers"]
    defaults = RunConfig()
    assert {k: getattr(defaults, k) for k in BOOK} == BOOK
    assert defaults.sampler == "random"  # the scratch RNN's, resolved from the model
    assert TrainSettings() == TrainSettings(num_epochs=250, pred_period=50, pred_len=50)


def test_flags_are_generated_from_the_fields_with_help_and_defaults():
    p = parser()
    actions = {a.dest: a for a in p._actions if a.dest != "help"}
    flagged = [f.name for f in dataclasses.fields(RunConfig)
               if f.name not in ("vocab_size", "corpus_sha1", "workers")]
    assert set(actions) == set(flagged) | {f.name for f in dataclasses.fields(TrainSettings)}
    for name, action in actions.items():
        assert action.option_strings[0] == "--" + name.replace("_", "-")
        assert action.help and action.default is None  # None: "not given" (resume conflicts)
    assert "(default: 256)" in actions["num_hiddens"].help
    assert "(default: 0.01)" in actions["clipping_theta"].help
    assert "(default: 250)" in actions["num_epochs"].help
    # Derived fields are never flags.
    assert not any("--vocab-size" in a.option_strings or "--corpus-sha1" in a.option_strings
                   or "--workers" in a.option_strings
                   for a in p._actions)


@pytest.mark.parametrize("alias, name", sorted(ALIASES.items()))
def test_old_short_spellings_still_work(alias, name):
    long_flag = "--" + name.replace("_", "-")
    value = "0.5" if name == "clipping_theta" else "7"
    assert getattr(parse(alias, value), name) == getattr(parse(long_flag, value), name)
    assert getattr(parse(alias, value), name) == (0.5 if name == "clipping_theta" else 7)


def test_from_args_fills_the_defaults_and_keeps_what_was_given(tmp_path):
    corpus = tmp_path / "c.txt"
    args = parse("--model", "gru", "--hidden", 16, "--num-chars", "all", "--corpus",
                 Path(corpus.name))
    assert RunConfig.given(args) == {"model": "gru", "num_hiddens": 16, "num_chars": None,
                                     "corpus": "c.txt"}
    config = RunConfig.from_args(args)
    assert (config.model, config.num_hiddens, config.num_chars) == ("gru", 16, None)
    assert config.num_steps == 35 and config.sampler == "consecutive"
    assert config.corpus == str(Path("c.txt").resolve())  # saved absolute
    assert TrainSettings.from_args(parse("--epochs", 3)).num_epochs == 3
    assert RunConfig.from_args(parse(), defaults={"num_hiddens": 8}).num_hiddens == 8


@pytest.mark.parametrize("model", MODELS)
def test_default_sampler_is_the_books_per_model(model):
    expected = "random" if model in SCRATCH_MODELS else "consecutive"
    assert RunConfig(model=model).sampler == expected
    assert RunConfig(model=model, sampler="consecutive").sampler == "consecutive"
    assert set(GLUON_MODELS) | set(SCRATCH_MODELS) == set(MODELS)


@pytest.mark.parametrize("argv, message", [
    (["--num-hiddens", "0"], "num_hiddens must be an integer >= 1, got 0"),
    (["--hidden", "2.5"], "num_hiddens must be an integer >= 1, got '2.5'"),
    (["--lr", "abc"], "lr must be a finite number"),
    (["--lr", "nan"], "lr must be a finite number"),
    (["--lr", "1e-50"], "it becomes 0 in float32"),
    (["--clip", "1e-60"], "clipping_theta must be at least"),
    (["--lr", "1e39"], "lr must be a finite number > 0 and <= 3.4"),
    (["--seed", "-1"], "seed must be an integer between 0 and 4294967295"),
    (["--valid-fraction", "1"], "valid_fraction must be a number >= 0 and < 1, got 1.0"),
    (["--num-chars", "-5"], "num_chars must be an integer >= 1"),
    (["--model", "cnn"], "model must be one of 'rnn-scratch'"),
    (["--sampler", "shuffled"], "sampler must be one of 'random', 'consecutive'"),
    (["--epochs", "0"], "num_epochs must be an integer >= 1"),
])
def test_bad_flag_values_name_the_field_and_the_range(argv, message):
    with pytest.raises(argparse.ArgumentError, match=None) as info:
        parse(*argv)
    assert message in str(info.value)


@pytest.mark.parametrize("changes, field", [
    ({"model": "transformer"}, "model"), ({"sampler": "shuffled"}, "sampler"),
    ({"num_hiddens": 0}, "num_hiddens"), ({"num_layers": 0}, "num_layers"),
    ({"lr": -1.0}, "lr"), ({"clipping_theta": 0}, "clipping_theta"), ({"seed": -1}, "seed"),
    ({"valid_fraction": 1.0}, "valid_fraction"), ({"num_chars": 0}, "num_chars"),
    ({"batch_size": True}, "batch_size"), ({"num_steps": 3.0}, "num_steps"),
    ({"lr": float("inf")}, "lr"), ({"lr": 1e-50}, "lr"), ({"corpus": ""}, "corpus"),
    ({"vocab_size": 0}, "vocab_size"), ({"corpus_sha1": "abc"}, "corpus_sha1"),
])
def test_validate_names_the_bad_field(changes, field):
    good = RunConfig(num_hiddens=8).with_corpus("abcab")
    with pytest.raises(ValueError, match=f"^{field} must be"):
        dataclasses.replace(good, **changes).validate()


def test_numpy_numbers_are_accepted():
    config = RunConfig(num_hiddens=np.int64(8), num_steps=np.int32(5), lr=np.float32(2.0))
    config.validate(derived=False)


def test_derived_fields_come_from_the_corpus():
    config = RunConfig().validate(derived=False)
    with pytest.raises(ValueError, match="vocab_size"):
        config.validate()
    derived = config.with_corpus("分开分开了")
    assert derived.vocab_size == 3 and derived.corpus_sha1 == cf.text_sha1("分开分开了")
    with pytest.raises(ValueError, match="vocab_size must be an integer >= 1, got 0; it is "
                                         "the number of distinct characters"):
        config.with_corpus("")


def test_round_trip_through_a_dict_rejects_unknown_and_missing_fields():
    config = RunConfig(model="lstm", num_layers=2).with_corpus("abc")
    assert RunConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match=r"unknown \['momentum'\], missing \[\]"):
        RunConfig.from_dict({**config.to_dict(), "momentum": 0.5})
    # A config saved before the word-level fields existed loads with their defaults.
    old = {k: v for k, v in config.to_dict().items() if k not in ("tokens",) + WORD_FIELDS}
    assert RunConfig.from_dict(old) == config
    partial = config.to_dict()
    del partial["lr"]
    with pytest.raises(ValueError, match=r"missing \['lr'\]"):
        RunConfig.from_dict(partial)
    with pytest.raises(ValueError, match="JSON object, got list"):
        RunConfig.from_dict([1, 2])


def test_split_holds_out_the_tail():
    text = "".join(chr(ord("a") + i % 26) for i in range(100))
    train, valid = RunConfig(valid_fraction=0.1).split(text)
    assert (train, valid) == (text[:90], text[90:])
    assert RunConfig().split(text) == (text, None)
    with pytest.raises(ValueError, match="--valid-fraction 0.01 of 100 characters .* choose a "
                                         "fraction between 0.02 and 0.98"):
        RunConfig(valid_fraction=0.01).split(text)


def test_only_and_defaults_select_and_relabel_flags():
    p = argparse.ArgumentParser()
    flags.add_config_arguments(p, TrainSettings, defaults={"num_epochs": 500},
                            only={"num_epochs"})
    actions = [a for a in p._actions if a.dest != "help"]
    assert [a.dest for a in actions] == ["num_epochs"] and "(default: 500)" in actions[0].help
    args = p.parse_args([])
    assert TrainSettings.from_args(args, defaults={"num_epochs": 500}).num_epochs == 500


def test_numpy_numbers_become_plain_python_values_and_save_as_json():
    import json
    config = RunConfig(num_hiddens=np.int64(8), lr=np.float32(0.5), seed=np.uint8(3),
                       vocab_size=np.int32(5), corpus_sha1="0" * 40).validate()
    assert type(config.num_hiddens) is int and type(config.seed) is int
    assert type(config.vocab_size) is int and type(config.lr) is float
    assert json.loads(json.dumps(config.to_dict()))["num_hiddens"] == 8
    with pytest.raises(ValueError, match="num_hiddens"):
        RunConfig(num_hiddens=np.float64(8.5)).validate(derived=False)


@pytest.mark.parametrize("n", [0, 1, 3])
def test_a_corpus_too_short_for_any_held_out_split_says_so(n):
    with pytest.raises(ValueError, match=f"the corpus has {n} line(s)?, and a held-out split needs "
                                         "at least 4 .* --valid-fraction 0"):
        RunConfig(valid_fraction=0.1).split(["x\n"] * n, "lines")
