"""lyricnn: chapter 6 of 《动手学深度学习》 (MXNet edition) as a library.

``import lyricnn as d2l`` runs the book's chapter code unchanged: the names
below match the book's helper package ``d2lzh``.

Submodules load lazily (PEP 562): ``import lyricnn`` loads nothing but this
file and ``lyricnn.tuning``, and ``d2l.NAME`` imports the module that
``EXPORTS`` names for ``NAME`` on first use.  So ``import lyricnn.ngram`` or
``lyricnn.data.tokenize`` never loads MXNet or matplotlib, while every name
below stays ``d2l.NAME`` and ``from lyricnn import NAME``.

The packages (the README's code map draws them): ``book`` (the d2lzh names and
trainers), ``models`` (cells, the fused kernel, scratch and Gluon models, the
language-model interface), ``data`` (corpora, vocabularies, samplers,
tokenisers, the data hub), ``training`` (the loop, the optimizer, held-out
evaluation, the log, data parallelism), ``decoding`` (generation, scoring),
``ngram`` (n-gram models), ``run`` (what a run is: config, task, checkpoint)
and ``cli`` (the ``lyricnn`` command).
"""
import importlib as _importlib
import pkgutil as _pkgutil

from lyricnn import tuning as _tuning

# The one process-wide change an import makes, unless LYRICNN_NO_TUNING=1: the environment
# variables MXNet reads when it loads (lyricnn.tuning lists each with its reason). The
# book's chapters import lyricnn before `from mxnet import nd`, so this is the last moment.
_tuning.apply_environment()

__version__ = "0.1.0"

# The public names: name -> submodule that defines it.  To export a name, add
# one line here (nothing else registers names).  Packages and top-level modules
# (lyricnn.run, lyricnn.checks, ...) need no entry: they are attributes.  Never
# give one the name of an export.
EXPORTS = {
    # checkpoints
    "CheckpointError": "run.store",
    # configuration
    "RunConfig": "run.config",
    "TrainSettings": "run.config",
    "add_config_arguments": "run.flags",
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
    "train_word_lm": "run.task",
}

__all__ = sorted(EXPORTS)


def __getattr__(name):
    """Load the submodule behind ``name`` on first access and cache the result."""
    module = EXPORTS.get(name)
    if module is not None:
        value = getattr(_importlib.import_module(f".{module}", __name__), name)
    elif name in _submodules():   # a package or top-level module: lyricnn.run, lyricnn.checks
        value = _importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # next access is a plain attribute lookup
    return value


def __dir__():
    return sorted(set(globals()) | set(EXPORTS) | {m.split(".")[0] for m in _submodules()})


def _submodules():
    """Every module and package below lyricnn, dotted (``'run.config'``), private ones left out."""
    return {m.name[len(__name__) + 1:] for m in _pkgutil.walk_packages(__path__, f"{__name__}.")
            if not any(part.startswith("_") for part in m.name.split("."))}
