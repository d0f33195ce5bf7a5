"""Checkpoints: everything needed to rebuild, resume and score a trained model.

A checkpoint is one directory::

    config.json    RunConfig: model kind, layers, hidden, vocab_size, the training
                   hyperparameters, seed, corpus path/num_chars/sha1, valid fraction
    vocab.json     the Vocab (first-appearance order, lyricnn.data)
    params.params  Gluon ``save_parameters`` (rnn/gru/lstm) or an ``nd.save``
                   dict ``{W_xh, W_hh, b_h, W_hq, b_q}`` (rnn-scratch)
    history.json   the History: per-epoch perplexities and seconds
    rng.json       Python ``random`` and NumPy states after the last epoch,
                   and the MXNet seed to set on resume
    corpus.txt     the exact characters trained on (training + held-out tail),
                   so resuming and n-gram scoring need nothing but this folder

The model is rebuilt from ``config.json`` alone (nanoGPT style) and the
parameter file is checked against it before MXNet sees it, so a vocabulary or
architecture that does not match raises ``CheckpointError`` (a ``ValueError``)
naming the mismatch instead of an MXNet shape assertion.

**RNG note.** MXNet 1.x can seed its generator but cannot read its state back.
In these models MXNet's generator is used only to initialise the parameters
(no dropout); the data order comes from Python's ``random`` (random sampling)
and sampled text from NumPy.  So the checkpoint stores the Python and NumPy
states exactly and, instead of an MXNet state, the seed ``mxnet_seed(seed,
epoch)``: the training loop reseeds MXNet with it after every epoch and a
resumed run reseeds with the same value, so both see the same MXNet stream.

**Atomic save.** Everything is written into a temp directory next to the
target and fsync'ed; then the old checkpoint is renamed aside
(``.NAME.old``), the new one renamed into place, the parent fsync'ed and only
then the old one removed.  A crash at any point leaves either the new or the
old checkpoint complete; ``find_checkpoint`` falls back to ``.NAME.old`` when
a crash fell between the two renames.
"""
import dataclasses
import hashlib
import json
import logging
import os
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import mxnet as mx
import numpy as np
from mxnet import init, nd
from mxnet.gluon import rnn as grnn

from .data import Vocab
from .gluon_model import RNNModel
from .scratch import get_params, init_rnn_state, rnn
from .training import GluonLM, History, ScratchLM

log = logging.getLogger(__name__)

FORMAT = 1
MODELS = ("rnn-scratch", "rnn", "gru", "lstm")
SAMPLERS = ("random", "consecutive")
GLUON_LAYERS = {"rnn": grnn.RNN, "gru": grnn.GRU, "lstm": grnn.LSTM}
SCRATCH_NAMES = ("W_xh", "W_hh", "b_h", "W_hq", "b_q")
FLOAT32_MAX = float(np.finfo(np.float32).max)

CONFIG, VOCAB, PARAMS, HISTORY, RNG, CORPUS = (
    "config.json", "vocab.json", "params.params", "history.json", "rng.json", "corpus.txt")
FILES = (CONFIG, VOCAB, PARAMS, HISTORY, RNG, CORPUS)


class CheckpointError(ValueError):
    """A checkpoint is missing, incomplete, or does not match its own config/vocabulary."""


def text_sha1(text):
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _positive(name, value, kind=(int,)):
    if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:
        raise ValueError(f"{name} must be a positive {kind[0].__name__}, got {value!r}")


@dataclass(frozen=True)
class RunConfig:
    """The model and how it was trained: enough to rebuild it from a checkpoint alone.

    Defaults are the book's (6.4.5/6.5): 256 hidden units, 35 steps, batch 32,
    lr 1e2, clipping 1e-2.  ``corpus`` is an absolute path, or ``None`` for the
    Jay Chou lyrics of the data hub; ``num_chars`` ``None`` means the whole text.
    """

    model: str = "rnn-scratch"
    layers: int = 1
    hidden: int = 256
    vocab_size: int = 0
    steps: int = 35
    batch: int = 32
    lr: float = 1e2
    clip: float = 1e-2
    sampler: str = "random"
    seed: int = 0
    corpus: Optional[str] = None
    num_chars: Optional[int] = 10000
    valid_fraction: float = 0.0
    corpus_sha1: str = ""

    def validate(self):
        """Raise ``ValueError`` naming the first bad field; return ``self``."""
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        for name in ("layers", "hidden", "vocab_size", "steps", "batch"):
            _positive(name, getattr(self, name))
        if self.model == "rnn-scratch" and self.layers != 1:
            raise ValueError(f"the scratch RNN has 1 layer, got layers={self.layers}")
        for name in ("lr", "clip"):
            _positive(name, getattr(self, name), (float, int))
            if getattr(self, name) > FLOAT32_MAX:  # MXNet's optimizer takes float32
                raise ValueError(f"{name} must be at most {FLOAT32_MAX:.3g}, "
                                 f"got {getattr(self, name)!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        if self.num_chars is not None:
            _positive("num_chars", self.num_chars)
        if not isinstance(self.valid_fraction, (int, float)) or not 0 <= self.valid_fraction < 1:
            raise ValueError(f"valid_fraction must be in [0, 1), got {self.valid_fraction!r}")
        return self

    def split(self, sequence):
        """``(training, held_out)``: the held-out part is the last ``valid_fraction``.

        The tail, not a random subset: held-out characters never appear in a
        training minibatch.  ``held_out`` is ``None`` when ``valid_fraction`` is 0.
        """
        n_valid = int(round(len(sequence) * self.valid_fraction))
        if self.valid_fraction == 0:
            return sequence, None
        if n_valid < 2 or len(sequence) - n_valid < 2:
            raise ValueError(
                f"valid_fraction={self.valid_fraction} of {len(sequence)} characters leaves "
                f"{n_valid} held-out and {len(sequence) - n_valid} training characters; "
                "both need at least 2")
        return sequence[:-n_valid], sequence[-n_valid:]

    def describe(self):
        return (f"model={self.model}, layers={self.layers}, hidden={self.hidden}, "
                f"vocab_size={self.vocab_size}")

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data):
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise CheckpointError(f"unknown config field(s) {unknown}; written by a newer lyricnn?")
        return cls(**data).validate()


def mxnet_seed(seed, epoch):
    """The MXNet seed in force after ``epoch`` epochs (``seed`` itself before the first)."""
    return seed + epoch


def capture_rng_state(mx_seed):
    """Python's and NumPy's generator states as JSON-able data, plus ``mx_seed``."""
    version, keys, gauss = random.getstate()
    name, np_keys, pos, has_gauss, cached = np.random.get_state()
    return {"python": {"version": version, "state": list(keys), "gauss_next": gauss},
            "numpy": {"name": name, "keys": np_keys.tolist(), "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
            "mxnet_seed": int(mx_seed)}


def restore_rng_state(state):
    """Inverse of ``capture_rng_state``: set Python and NumPy, reseed MXNet."""
    py, npy = state["python"], state["numpy"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss_next"]))
    np.random.set_state((npy["name"], np.array(npy["keys"], dtype=np.uint32), npy["pos"],
                         npy["has_gauss"], npy["cached_gaussian"]))
    mx.random.seed(state["mxnet_seed"])


# -- models ---------------------------------------------------------------------

def build_model(config, ctx):
    """A freshly initialised ``ScratchLM`` or ``GluonLM`` for ``config`` on ``ctx``.

    Initialisation is the book's: N(0, 0.01²) weights (zero biases for the
    scratch model).  Gluon parameters are materialised right away with one
    dummy step, so that they can be saved or checked before any training.
    """
    config.validate()
    V, h = config.vocab_size, config.hidden
    if config.model == "rnn-scratch":
        return ScratchLM(rnn, get_params(V, h, ctx), init_rnn_state, h, V, ctx)
    model = RNNModel(GLUON_LAYERS[config.model](h, num_layers=config.layers), V)
    model.initialize(ctx=ctx, init=init.Normal(0.01))
    model(nd.zeros((1, 1), ctx=ctx), model.begin_state(batch_size=1, ctx=ctx))
    return GluonLM(model, V, ctx)


def named_parameters(lm):
    """``{name: NDArray}`` under the names the parameter file uses."""
    if isinstance(lm, GluonLM):
        # The structural names save_parameters writes (independent of how many
        # models the process created, unlike collect_params()' prefixed names).
        return {name: p.data(lm.ctx)
                for name, p in lm.model._collect_params_with_prefix().items()}
    if len(lm.params) != len(SCRATCH_NAMES):
        raise ValueError(f"a scratch checkpoint holds {len(SCRATCH_NAMES)} parameters "
                         f"{SCRATCH_NAMES}, this model has {len(lm.params)}")
    return dict(zip(SCRATCH_NAMES, lm.params))


def _check_parameters(saved, expected, config):
    """``CheckpointError`` naming the first way ``saved`` does not fit ``expected``."""
    what = f"the config ({config.describe()})"
    missing = sorted(set(expected) - set(saved))
    unexpected = sorted(set(saved) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"the parameter file does not match {what}: missing {missing}, "
            f"unexpected {unexpected}; the architecture differs")
    for name, array in expected.items():
        if saved[name].shape != array.shape:
            raise CheckpointError(
                f"the parameter file does not match {what}: {name!r} has shape "
                f"{saved[name].shape} in the file but the model needs {array.shape}; "
                "the vocabulary size or the architecture differs")


def _load_parameters(lm, path, config):
    try:
        saved = nd.load(str(path))
    except mx.base.MXNetError as err:
        raise CheckpointError(f"cannot read {path}: {str(err).splitlines()[0]}") from None
    expected = named_parameters(lm)
    _check_parameters(saved, expected, config)
    if isinstance(lm, GluonLM):
        lm.model.load_parameters(str(path), ctx=lm.ctx)
    else:
        for name, param in expected.items():
            param[:] = saved[name].as_in_context(lm.ctx)


# -- writing --------------------------------------------------------------------

def _fsync(path):
    """Flush a file's or a directory's data to disk (directories: POSIX only)."""
    if Path(path).is_dir() and not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json(path, data):
    Path(path).write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")


def _write_contents(folder, config, vocab, lm, history, corpus_text, rng_state):
    """Write every file of a checkpoint into ``folder`` and fsync each."""
    _write_json(folder / CONFIG, {"format": FORMAT, "config": config.to_dict()})
    (folder / VOCAB).write_text(vocab.to_json(), encoding="utf-8")
    if isinstance(lm, GluonLM):
        lm.model.save_parameters(str(folder / PARAMS))
    else:
        nd.save(str(folder / PARAMS), named_parameters(lm))
    _write_json(folder / HISTORY, history.to_dict())
    _write_json(folder / RNG, rng_state)
    (folder / CORPUS).write_text(corpus_text, encoding="utf-8")
    for name in FILES:
        _fsync(folder / name)
    _fsync(folder)


def backup_path(path):
    """Where the previous checkpoint waits while the new one is renamed into place."""
    path = Path(path)
    return path.with_name(f".{path.name}.old")


def is_checkpoint(path):
    return (Path(path) / CONFIG).is_file()


def _swap_in(tmp, path):
    """Rename ``tmp`` to ``path``, keeping the old ``path`` until that succeeded."""
    backup = backup_path(path)
    if path.exists():
        if not is_checkpoint(path):
            raise CheckpointError(f"refusing to replace {path}: it is not a lyricnn checkpoint")
        if backup.exists():  # left by an earlier crash; ``path`` is complete, so drop it
            shutil.rmtree(backup)
        os.rename(path, backup)
    os.rename(tmp, path)
    _fsync(path.parent)
    if backup.exists():
        shutil.rmtree(backup)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_checkpoint(path, config, vocab, lm, history, corpus_text, rng_state):
    """Write a checkpoint directory at ``path`` atomically (see the module docstring).

    ``rng_state``: from ``capture_rng_state``.  Returns ``path`` as a ``Path``.
    """
    path = Path(path)
    if len(vocab) != config.vocab_size:
        raise ValueError(f"the vocabulary has {len(vocab)} tokens, the config says "
                         f"vocab_size={config.vocab_size}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private (0700)
        _write_contents(tmp, config, vocab, lm, history, corpus_text, rng_state)
        _swap_in(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


# -- reading --------------------------------------------------------------------

def find_checkpoint(path):
    """The checkpoint directory for ``path``: ``path`` itself or ``path/checkpoint``.

    A run directory written by the CLI holds its checkpoint in ``checkpoint/``.
    If a crash fell between the two renames of a save, the previous checkpoint
    is found at ``.NAME.old`` and used (with a warning).  Raises
    ``FileNotFoundError`` if ``path`` does not exist, ``CheckpointError`` if it
    holds no checkpoint.
    """
    path = Path(path)
    if not path.exists() and not backup_path(path).exists():
        raise FileNotFoundError(f"checkpoint directory {str(path)!r} does not exist")
    for candidate in (path, path / "checkpoint"):
        if is_checkpoint(candidate):
            return candidate
        if is_checkpoint(backup_path(candidate)):
            log.warning("%s is missing (a save was interrupted); using the previous "
                        "checkpoint %s", candidate, backup_path(candidate))
            return backup_path(candidate)
    raise CheckpointError(f"{path} holds no lyricnn checkpoint (no {CONFIG})")


@dataclass
class Checkpoint:
    """A loaded checkpoint; ``lm`` is ready to predict, score or train on."""

    path: Path
    config: RunConfig
    vocab: Vocab
    lm: object
    history: History
    rng_state: dict
    corpus_text: str

    @property
    def epoch(self):
        """The number of epochs trained (0 before the first)."""
        return self.history.epoch[-1] if self.history.epoch else 0

    def split_text(self):
        """``(training_text, held_out_text or None)`` as the run split its corpus."""
        return self.config.split(self.corpus_text)


def _read(folder, name, parse):
    try:
        return parse((folder / name).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {folder} is incomplete: {name} is missing") from None
    except (ValueError, KeyError, TypeError) as err:
        if isinstance(err, CheckpointError):
            raise
        raise CheckpointError(f"checkpoint {folder}: cannot read {name}: {err}") from None


def _parse_config(text):
    data = json.loads(text)
    if data.get("format") != FORMAT:
        raise CheckpointError(f"unsupported checkpoint format {data.get('format')!r}, "
                              f"this lyricnn reads format {FORMAT}")
    return RunConfig.from_dict(data["config"])


def _check_vocab(vocab, config, expected_vocab):
    if len(vocab) != config.vocab_size:
        raise CheckpointError(
            f"the vocabulary ({VOCAB}) has {len(vocab)} characters but the model "
            f"({CONFIG}) has vocab_size={config.vocab_size}: they come from different runs")
    if expected_vocab is not None and expected_vocab != vocab:
        if len(expected_vocab) != len(vocab):
            detail = f"{len(vocab)} characters in the checkpoint, {len(expected_vocab)} given"
        else:
            i = next(i for i, (a, b) in enumerate(zip(vocab.idx_to_token,
                                                      expected_vocab.idx_to_token)) if a != b)
            detail = (f"index {i} is {vocab.idx_to_token[i]!r} in the checkpoint, "
                      f"{expected_vocab.idx_to_token[i]!r} in the given vocabulary")
        raise CheckpointError(f"vocabulary mismatch: {detail}")


def load_checkpoint(path, ctx=None, vocab=None):
    """Load the checkpoint at ``path`` (see ``find_checkpoint``) onto ``ctx``.

    ``vocab``: if given, the checkpoint's vocabulary must equal it.  Raises
    ``CheckpointError`` (a ``ValueError``) naming what is missing or mismatched.
    Loading does not touch the global random generators: pass
    ``checkpoint.rng_state`` to ``restore_rng_state`` to resume.
    """
    folder = find_checkpoint(path)
    ctx = ctx if ctx is not None else mx.cpu()
    config = _read(folder, CONFIG, _parse_config)
    saved_vocab = _read(folder, VOCAB, Vocab.from_json)
    _check_vocab(saved_vocab, config, vocab)
    history = _read(folder, HISTORY, lambda t: History.from_dict(json.loads(t)))
    rng_state = _read(folder, RNG, json.loads)
    corpus_text = _read(folder, CORPUS, str)
    if config.corpus_sha1 and text_sha1(corpus_text) != config.corpus_sha1:
        raise CheckpointError(f"{folder / CORPUS} does not match the sha1 in {CONFIG}")
    if not (folder / PARAMS).is_file():
        raise CheckpointError(f"checkpoint {folder} is incomplete: {PARAMS} is missing")
    # Building initialises (and so draws from MXNet's generator) before the
    # saved values overwrite the parameters; restore_rng_state reseeds MXNet.
    lm = build_model(config, ctx)
    _load_parameters(lm, folder / PARAMS, config)
    return Checkpoint(folder, config, saved_vocab, lm, history, rng_state, corpus_text)
