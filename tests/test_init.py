"""lyricnn/__init__: lazy exports (PEP 562) that keep ``import lyricnn as d2l`` whole."""
import importlib
import json
import os
import subprocess
import sys

import pytest

import lyricnn

# The d2lzh names chapter 6 of the book calls through ``d2l.``: they must stay exported.
BOOK_NAMES = ["load_data_jay_lyrics", "data_iter_random", "data_iter_consecutive", "to_onehot",
              "grad_clipping", "sgd", "predict_rnn", "train_and_predict_rnn", "RNNModel",
              "predict_rnn_gluon", "train_and_predict_rnn_gluon", "try_gpu", "try_all_gpus"]


def run(code, **env):
    """Run ``code`` in a fresh interpreter; return its stdout parsed as JSON."""
    full_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("OMP_", "GOMP_", "MXNET_CPU_PARALLEL"))}
    full_env.update(env)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=full_env, check=True)
    return json.loads(out.stdout)


# A Python expression: the heavy dependencies loaded so far, as a sorted list.
LOADED = "sorted(m for m in ('mxnet', 'matplotlib') if m in sys.modules)"


def test_book_names_are_in_the_table():
    assert set(BOOK_NAMES) <= set(lyricnn.EXPORTS)
    assert lyricnn.__all__ == sorted(lyricnn.EXPORTS)


def test_every_table_entry_names_a_real_submodule():
    submodules = lyricnn._submodules()
    assert set(lyricnn.EXPORTS.values()) <= submodules
    assert not submodules & set(lyricnn.EXPORTS), "a module would shadow an export"


@pytest.mark.parametrize("name", sorted(lyricnn.EXPORTS))
def test_every_export_resolves_to_its_modules_object(name):
    module = importlib.import_module(f"lyricnn.{lyricnn.EXPORTS[name]}")
    assert getattr(lyricnn, name) is getattr(module, name)
    namespace = {}
    exec(f"from lyricnn import {name} as value", namespace)
    assert namespace["value"] is getattr(module, name)


def test_submodules_are_attributes_and_from_imports():
    from lyricnn import ngram
    from lyricnn.data import tokenize
    assert lyricnn.ngram is ngram is sys.modules["lyricnn.ngram"]
    assert tokenize.words("a b") == ["a", "b"]


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="'lyricnn' has no attribute 'no_such_name'"):
        lyricnn.no_such_name  # noqa: B018
    assert not hasattr(lyricnn, "no_such_name")
    with pytest.raises(ImportError):
        exec("from lyricnn import no_such_name", {})


def test_dir_lists_exports_and_submodules():
    listing = dir(lyricnn)
    assert set(lyricnn.EXPORTS) <= set(listing)
    assert {"ngram", "data", "run", "book", "checks", "fileio", "metrics"} <= set(listing)


def test_import_lyricnn_loads_only_its_tuning_and_no_mxnet():
    got = run("import json, sys, lyricnn; print(json.dumps(["
              "sorted(m for m in sys.modules if m.startswith('lyricnn.')), "
              f"{LOADED}]))")
    assert got == [["lyricnn.tuning"], []]


@pytest.mark.parametrize("module", ["ngram", "ngram.model", "data.tokenize", "data.corpus",
                                    "data.words", "data.hub", "checks", "fileio", "metrics",
                                    "memory", "run.config", "tuning"])
def test_mxnet_free_modules_load_neither_mxnet_nor_matplotlib(module):
    assert run(f"import json, sys, lyricnn.{module}; print(json.dumps({LOADED}))") == []


def test_ngram_works_end_to_end_without_mxnet(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("abcabcab", encoding="utf-8")
    code = ("import json, sys\n"
            "from lyricnn import NGramLM, get_tokenizer, load_corpus_chars\n"
            f"text = load_corpus_chars({str(corpus)!r}, None)\n"
            "model = NGramLM(2, 'kneser-ney', tokenizer=get_tokenizer('char')).fit(text)\n"
            f"print(json.dumps([round(model.perplexity('abc'), 6), {LOADED}]))")
    ppl, loaded = run(code)
    assert loaded == [] and 1 < ppl < 3


@pytest.mark.slow
def test_book_style_import_loads_mxnet_on_use():
    code = (f"import json, sys, lyricnn as d2l\nbefore = {LOADED}\n"
            "X = d2l.to_onehot(__import__('mxnet').nd.zeros((2, 3)), 4)\n"
            f"print(json.dumps([before, {LOADED}, len(X)]))")
    assert run(code) == [[], ["mxnet"], 3]


def test_star_import_gives_every_export():
    namespace = {}
    exec("from lyricnn import *", namespace)
    assert set(lyricnn.EXPORTS) <= set(namespace)
