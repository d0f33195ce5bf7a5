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
    "CheckpointError": "checkpoint",
    # configuration
    "RunConfig": "config",
    "TrainSettings": "config",
    "add_config_arguments": "config",
    "load_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
    # devices and seeding
    "resolve_ctx": "context",
    "resolve_ctx_list": "context",
    "set_seed": "context",
    "try_all_gpus": "context",
    "try_gpu": "context",
    # corpus (no MXNet)
    "Vocab": "data",
    "load_corpus_chars": "data",
    "load_data_jay_lyrics": "data",
    "read_text": "data",
    # deep scratch stacks
    "deep_gru": "deep",
    "deep_gru_sequence": "deep",
    "deep_lstm": "deep",
    "deep_lstm_sequence": "deep",
    "deep_params_getter": "deep",
    "deep_rnn": "deep",
    "deep_rnn_sequence": "deep",
    "deep_state_initializer": "deep",
    "get_deep_params": "deep",
    # gated cells
    "get_gru_params": "gated",
    "get_lstm_params": "gated",
    "gru": "gated",
    "gru_sequence": "gated",
    "init_gru_state": "gated",
    "init_lstm_state": "gated",
    "lstm": "gated",
    "lstm_sequence": "gated",
    # generation
    "generate": "generation",
    "predict_rnn": "generation",
    "predict_rnn_gluon": "generation",
    # Gluon model
    "RNNModel": "gluon_model",
    # data hub (no MXNet)
    "DATA_HUB": "hub",
    "download": "hub",
    "locate": "hub",
    # n-gram models (no MXNet)
    "NGramCounts": "ngram",
    "NGramLM": "ngram",
    "kn_discounts": "ngram",
    "rank": "ngram",
    # one-hot inputs
    "to_onehot": "onehot",
    # plots (matplotlib)
    "plot_history": "plotting",
    # minibatch samplers
    "data_iter_consecutive": "sampling",
    "data_iter_random": "sampling",
    # scoring
    "log_prob": "scoring",
    "perplexity_of": "scoring",
    # the book's scratch RNN
    "get_params": "scratch",
    "init_rnn_state": "scratch",
    "params_getter": "scratch",
    "rnn": "scratch",
    "rnn_sequence": "scratch",
    # tokenisers (no MXNet)
    "EOS": "tokenize",
    "UNK": "tokenize",
    "get_tokenizer": "tokenize",
    "load_ptb": "tokenize",
    # the model interface
    "GluonLM": "models",
    "LanguageModel": "models",
    "MODELS": "models",
    "ScratchLM": "models",
    "build_lm": "models",
    # training
    "History": "training",
    "TrainingDiverged": "training",
    "TrainingInterrupted": "training",
    "clipped_sgd": "training",
    "evaluate_loss": "training",
    "grad_clipping": "training",
    "perplexity": "metrics",
    "sgd": "training",
    "train_and_predict_rnn": "training",
    "train_and_predict_rnn_gluon": "training",
    "train_epochs": "training",
    "annealed_lr": "training",
    "WordCorpus": "wordlm",
    "WordRNNModel": "wordlm",
    "build_word_lm": "wordlm",
    "evaluate_perplexity": "wordlm",
    "load_ptb_corpus": "wordlm",
    "word_corpus": "wordlm",
    "train_word_lm": "wordlm",
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
