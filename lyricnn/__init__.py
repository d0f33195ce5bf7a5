"""lyricnn: chapter 6 of 《动手学深度学习》 (MXNet edition) as a library.

``import lyricnn as d2l`` runs the book's chapter code unchanged: the names
below match the book's helper package ``d2lzh``.

Submodules load lazily (PEP 562): ``import lyricnn`` loads nothing but this
file, and ``d2l.NAME`` imports the module that ``EXPORTS`` names for ``NAME``
on first use.  So ``import lyricnn.ngram`` or ``lyricnn.tokenize`` never
loads MXNet or matplotlib, while every name below stays ``d2l.NAME`` and
``from lyricnn import NAME``.
"""
import os as _os
import sys as _sys

# MXNet 1.x sizes its OpenMP pool at half the logical CPUs (it assumes
# hyper-threading), so on a 2-vCPU machine every operator runs on one thread;
# with 2 the GEMMs of these models run about twice as fast.  The variable is
# read once, when MXNet loads: set it only if MXNet is not loaded yet and the
# user has not chosen a value (theirs always wins).
if "mxnet" not in _sys.modules and "OMP_NUM_THREADS" not in _os.environ:
    _os.environ["OMP_NUM_THREADS"] = str(len(_os.sched_getaffinity(0))
                                         if hasattr(_os, "sched_getaffinity")
                                         else _os.cpu_count() or 1)
# How long libgomp's idle threads spin before they sleep. These models run
# hundreds to thousands of small operators per minibatch, each an OpenMP region
# whose threads meet at its end. libgomp's default (300,000 spins) and ACTIVE
# collapse on a shared machine: at load 7 on 2 vCPUs the scratch RNN took 37
# s/epoch instead of 0.6. PASSIVE (sleep at once) survives load but pays a
# wake-up per region. A bounded spin of 1,000 is the measured middle (2 vCPUs,
# book config, s/epoch, docs/RESULTS.md): at load ~1, lyricnn's RNN 0.35 against
# 0.54 PASSIVE and 0.38 ACTIVE, the book's own notebook cell 0.87 against 1.19
# PASSIVE; at load 4-8 within 0.8-1.9x of PASSIVE where ACTIVE is 7-30x slower.
# Results do not depend on it. Like OMP_NUM_THREADS it is read once, when MXNet
# loads; the user's OMP_WAIT_POLICY or GOMP_SPINCOUNT always wins.
if ("mxnet" not in _sys.modules and "OMP_WAIT_POLICY" not in _os.environ
        and "GOMP_SPINCOUNT" not in _os.environ):
    _os.environ["GOMP_SPINCOUNT"] = "1000"
# Copies made on the caller's thread (asnumpy, nd.array of a large array, as loading a
# checkpoint or copying a corpus at once do) use OpenMP above MXNET_CPU_PARALLEL_SIZE
# elements (default 200,000). libgomp gives every thread that opens a parallel region a
# team of its own; the Python thread's team comes on top of the engine worker's, libgomp
# then counts more threads than CPUs and cuts every idle thread's spin to 100, and each of
# the following thousands of small operators per minibatch wakes its threads through the
# kernel: after one asnumpy() of 1.1M floats, 1,300 context switches per minibatch instead
# of 100 and 100-120 ms instead of 60-65 (the book's cell as one graph, 2 vCPUs;
# benchmarks/bench_openmp_team.py, docs/RESULTS.md). Such copies stay on the caller's
# thread alone. Read at the first large copy; the user's value wins.
if "MXNET_CPU_PARALLEL_SIZE" not in _os.environ:
    _os.environ["MXNET_CPU_PARALLEL_SIZE"] = str(2**31 - 1)   # int, as MXNet parses it
# A reader's own cell gets CSR one-hot inputs (lyricnn.models.sequence_forward);
# the gradient of nd.dot(csr, W) is row-sparse and MXNet copies it into W's dense
# gradient, logging "Storage type fallback detected" on stderr each time. The copy
# is the intended path, so the log is off unless the user asks for it.
if "mxnet" not in _sys.modules and "MXNET_STORAGE_FALLBACK_LOG_VERBOSE" not in _os.environ:
    _os.environ["MXNET_STORAGE_FALLBACK_LOG_VERBOSE"] = "0"

import importlib as _importlib
import pkgutil as _pkgutil

__version__ = "0.1.0"

# The public names: name -> submodule that defines it.  To export a name, add
# one line here (nothing else registers names; no import-time side effects).
# Submodules themselves (lyricnn.gated, ...) need no entry: any submodule is
# reachable as an attribute.  Never give a submodule the name of an export.
EXPORTS = {
    # checkpoints
    "CheckpointError": "run.store",
    # configuration
    "RunConfig": "run.config",
    "TrainSettings": "run.config",
    "add_config_arguments": "run.config",
    "load_checkpoint": "run.checkpoint",
    "save_checkpoint": "run.checkpoint",
    # devices and seeding
    "resolve_ctx": "context",
    "resolve_ctx_list": "context",
    "set_seed": "context",
    "try_all_gpus": "context",
    "try_gpu": "context",
    # corpus (no MXNet)
    "Vocab": "data.corpus",
    "load_corpus_chars": "data.corpus",
    "load_data_jay_lyrics": "data.corpus",
    "read_text": "data.corpus",
    # deep scratch stacks
    "deep_gru": "book.deep",
    "deep_gru_sequence": "book.deep",
    "deep_lstm": "book.deep",
    "deep_lstm_sequence": "book.deep",
    "deep_params_getter": "book.deep",
    "deep_rnn": "book.deep",
    "deep_rnn_sequence": "book.deep",
    "deep_state_initializer": "book.deep",
    "get_deep_params": "book.deep",
    # gated cells
    "get_gru_params": "book.gated",
    "get_lstm_params": "book.gated",
    "gru": "book.gated",
    "gru_sequence": "book.gated",
    "init_gru_state": "book.gated",
    "init_lstm_state": "book.gated",
    "lstm": "book.gated",
    "lstm_sequence": "book.gated",
    # generation
    "generate": "decoding.generate",
    "predict_rnn": "book.predict",
    "predict_rnn_gluon": "book.predict",
    # Gluon model
    "RNNModel": "models.gluon",
    # data hub (no MXNet)
    "DATA_HUB": "data.hub",
    "download": "data.hub",
    "locate": "data.hub",
    # n-gram models (no MXNet)
    "NGramCounts": "ngram.counts",
    "NGramLM": "ngram.model",
    "kn_discounts": "ngram.model",
    "rank": "ngram.model",
    # one-hot inputs
    "to_onehot": "models.onehot",
    # plots (matplotlib)
    "plot_history": "plotting",
    # minibatch samplers
    "data_iter_consecutive": "data.sampling",
    "data_iter_random": "data.sampling",
    # scoring
    "log_prob": "decoding.score",
    "perplexity_of": "decoding.score",
    # the book's scratch RNN
    "get_params": "book.scratch",
    "init_rnn_state": "book.scratch",
    "params_getter": "book.scratch",
    "rnn": "book.scratch",
    "rnn_sequence": "book.scratch",
    # tokenisers (no MXNet)
    "EOS": "data.tokenize",
    "UNK": "data.tokenize",
    "get_tokenizer": "data.tokenize",
    "load_ptb": "data.tokenize",
    # the model interface
    "GluonLM": "models.interface",
    "LanguageModel": "models.interface",
    "MODELS": "models.build",
    "ScratchLM": "models.interface",
    "build_lm": "models.build",
    # training
    "History": "training.loop",
    "TrainingDiverged": "training.loop",
    "TrainingInterrupted": "training.loop",
    "clipped_sgd": "training.optim",
    "evaluate_loss": "training.evaluate",
    "grad_clipping": "book.trainers",
    "perplexity": "metrics",
    "sgd": "book.trainers",
    "train_and_predict_rnn": "book.trainers",
    "train_and_predict_rnn_gluon": "book.trainers",
    "train_epochs": "training.loop",
    "annealed_lr": "training.loop",
    "WordCorpus": "data.words",
    "WordRNNModel": "models.word",
    "build_word_lm": "models.word",
    "evaluate_perplexity": "training.evaluate",
    "load_ptb_corpus": "data.words",
    "word_corpus": "data.words",
    "train_word_lm": "training.loop",
}

__all__ = sorted(EXPORTS)


def __getattr__(name):
    """Load the submodule behind ``name`` on first access and cache the result."""
    module = EXPORTS.get(name)
    if module is not None:
        value = getattr(_importlib.import_module(f".{module}", __name__), name)
    elif name in _submodules():
        value = _importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # next access is a plain attribute lookup
    return value


def __dir__():
    return sorted(set(globals()) | set(EXPORTS) | _submodules())


def _submodules():
    return {m.name for m in _pkgutil.iter_modules(__path__) if not m.name.startswith("_")}
