"""Checkpoints: everything needed to rebuild, resume and score a trained model.

A checkpoint is one directory (format 2)::

    config.json    {"format": 2, "config": RunConfig.to_dict()}: every field of
                   ``lyricnn.run.config.RunConfig`` (model, num_layers, num_hiddens,
                   vocab_size, num_steps, batch_size, lr, clipping_theta, sampler,
                   seed, corpus, num_chars, valid_fraction, corpus_sha1, tokens,
                   tokenizer, embed_size, dropout, tied, lr_decay, decay_from,
                   dropout_input, dropout_hidden, dropout_output, dropout_embed,
                   weight_drop, ar, tar, asgd, cutoffs, div_value, workers); fields a
                   checkpoint predates get their defaults
    vocab.json     the Vocab (first-appearance order of corpus.txt, lyricnn.data.corpus)
    params.params  ``nd.save`` of ``lm.named_parameters()``, for every model
    history.json   the History: per-epoch perplexities (training and held-out),
                   seconds and learning rates
    iterate.params only once NT-ASGD averages (``lyricnn.training.averaging``): the SGD
                   iterate; params.params then holds the mean, the model to use
    rng.json       Python ``random`` and NumPy states after the last epoch,
                   and the MXNet seed to set on resume
    corpus.txt     the exact text trained on (training + held-out part; for Penn
                   Treebank its training file), so resuming and n-gram scoring need
                   nothing but this folder (and PTB's held-out files)
    manifest.json  written last: SHA-256 and size of each file above, the
                   format and the time of the save

The model is rebuilt from ``config.json`` alone (its task's ``build_model``,
``lyricnn.run.task``), once the parameter file holds as many weights as that
model has, and the parameters are loaded with ``lm.load_named_parameters``,
which checks every name and shape first: a checkpoint that does not fit raises
``CheckpointError`` (a ``ValueError``) naming the file, the mismatch and what
to do, never an MXNet shape assertion.

**Integrity.** Loading reads every file once into memory (regular files only, at
most one byte past the size the manifest states: ``lyricnn.run.store``), checks it against
the manifest (a flipped byte is refused, not decoded into garbage), then
validates each file's content (types, ranges, lengths), that the vocabulary
is the one ``corpus.txt`` gives, that the corpus has the SHA-1 of the config,
that the RNG state belongs to the last epoch and that the parameters are
finite.  Any failure is one ``CheckpointError`` naming the file.

**JSON.** Files hold standard JSON only (``allow_nan=False``).  A non-finite
perplexity (a held-out text a model finds impossible) is written as the
string ``"inf"`` (or ``"-inf"``, ``"nan"``); ``null`` keeps its meaning of
"no held-out set".

**RNG.** MXNet 1.x can seed its generator but cannot read its state back.
The models draw from MXNet to initialise parameters and, for word models with
``dropout``, for the dropout masks; the data order comes from Python's
``random`` (random sampling) and sampled text from NumPy.  So the checkpoint stores the Python and NumPy states exactly and,
instead of an MXNet state, the seed ``mxnet_seed(seed, epoch)`` that
``train_epochs(seed=...)`` sets after every epoch; a resumed run sets it too.

**Crash-safe saves.** Everything is written into a temp folder
``.NAME.tmp-*`` next to the target, each file fsync'ed, the manifest last;
then the old checkpoint is renamed aside (``.NAME.old``), the new one renamed
into place, the parent fsync'ed and only then the old one removed.  A crash at
any point leaves a complete checkpoint (the new or the old one): readers pick
the newest complete one (by the manifest's time) among ``NAME``,
``.NAME.old`` and ``.NAME.tmp-*``, and the next writer (``recover``) renames
it into place and removes the rest.  A checkpoint folder that is a symlink is
written through: the link stays and its target is replaced.

**One writer.** A writer holds an advisory ``fcntl.flock`` on ``.NAME.lock``
beside the checkpoint (``CheckpointLock``) for as long as it writes; a second
writer fails at once with ``CheckpointLocked``.  Readers take no lock: they
read a folder through one directory handle and retry if a save replaced it
while they read, so they never see a half-written checkpoint.

**Format 1** (lyricnn before the config rework: ``hidden``, ``steps``,
``batch``, ``clip``, ``layers``; Gluon parameters under Gluon's structural
names; no manifest) still loads: ``upgrade_format1`` renames the keys and
the model's ``load_named_parameters`` gets the parameters under the new
names.  The next save writes format 2.
"""
import contextlib
import errno
import json
import logging
import math
import os
import random
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import mxnet as mx
import numpy as np
from mxnet import nd

from lyricnn.data.corpus import Vocab
from lyricnn.fileio import atomic_write_bytes, current_umask, fsync_path
from lyricnn.run.config import RunConfig, text_sha1
from lyricnn.run.parse import (check_manifest, check_rng, load_parameters, mxnet_message,
                               parse_config, parse_corpus, parse_history, parse_iterate, parse_rng,
                               parse_vocab)
from lyricnn.run.store import (CONFIG, CORPUS, DATA_FILES, FORMAT, HISTORY, MANIFEST, MARKER,
                               ITERATE, PARAMS,
                               READ_ATTEMPTS, RNG, VOCAB, CheckpointError, CheckpointLock,
                               checkpoint_error, find_checkpoint, is_checkpoint,
                               leftovers_of, read_folder, remove_folder, replaced, same_run, save_order,
                               carry_foreign, foreign_entries, backup_path,
                               sha256, swap_in, temp_prefix, writable_path)
from lyricnn.run.task import vocab_of
from lyricnn.training.loop import History, mxnet_seed

log = logging.getLogger(__name__)


def encode_float(x):
    if isinstance(x, float) and not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return x


def _json_bytes(data):
    return json.dumps(data, ensure_ascii=False, indent=1, allow_nan=False).encode("utf-8")


def _history_dict(history):
    return {key: [encode_float(v) for v in values]
            for key, values in history.to_dict().items()}


# -- RNG states ---------------------------------------------------------------------

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
    state = check_rng(state)
    py, npy = state["python"], state["numpy"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss_next"]))
    np.random.set_state((npy["name"], np.array(npy["keys"], dtype=np.uint32), npy["pos"],
                         npy["has_gauss"], npy["cached_gaussian"]))
    mx.random.seed(state["mxnet_seed"])


def _params_bytes(arrays):
    """``nd.save``'s file format, made in memory.

    MXNet's own file writer reports a full disk as a C++ check failure
    ("FileStream.Write incomplete", found by the tmpfs test in
    ``tests/test_catalogue.py``); written through ``atomic_write_bytes`` a
    full disk is an ``OSError`` (ENOSPC) naming the file, like every other file.
    Linux: an anonymous in-memory file; elsewhere a file in the system temp folder.
    """
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("lyricnn-params")
        try:
            _save(f"/proc/self/fd/{fd}", arrays)
            os.lseek(fd, 0, os.SEEK_SET)
            chunks = []
            while True:
                chunk = os.read(fd, 1 << 24)
                if not chunk:
                    return b"".join(chunks)
                chunks.append(chunk)
        finally:
            os.close(fd)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / PARAMS
        _save(str(path), arrays)
        return path.read_bytes()


def _save(path, arrays):
    """``nd.save``, its writer's failure (a file-size limit, ``ulimit -f``; a full disk)
    an ``OSError`` naming the file like any other write's, not a C++ check failure."""
    try:
        nd.save(path, arrays)
    except mx.base.MXNetError as err:   # its check says only "Write incomplete"
        log.debug("nd.save: %s", mxnet_message(err))
        raise OSError(errno.EIO, "MXNet could not write the parameters: a file-size limit "
                      "(ulimit -f) or a full disk", PARAMS) from None


def _write_contents(folder, config, vocab, lm, history, corpus_text, rng_state, iterate=None):
    """Write every file of a checkpoint into ``folder``, the manifest last."""
    contents = {
        CONFIG: _json_bytes({"format": FORMAT, "config": config.to_dict()}),
        VOCAB: vocab.to_json().encode("utf-8"),
        HISTORY: _json_bytes(_history_dict(history)),
        RNG: _json_bytes(rng_state),
        CORPUS: corpus_text.encode("utf-8"),
    }
    files = {}
    for name in DATA_FILES:
        data = _params_bytes(lm.named_parameters()) if name == PARAMS else contents[name]
        atomic_write_bytes(folder / name, data)
        files[name] = {"sha256": sha256(data), "bytes": len(data)}
    if iterate is not None:
        data = _params_bytes(iterate)
        atomic_write_bytes(folder / ITERATE, data)
        files[ITERATE] = {"sha256": sha256(data), "bytes": len(data)}
    manifest = {"format": FORMAT, "created_ns": time.time_ns(),
                "epoch": history.epoch[-1] if history.epoch else 0, "files": files}
    atomic_write_bytes(folder / MANIFEST, _json_bytes(manifest))


def _check_save_args(config, vocab, lm, history, corpus_text, rng_state, iterate=None):
    if not isinstance(config, RunConfig):
        raise TypeError(f"config must be a RunConfig, got {type(config).__name__}")
    config.validate()
    if len(vocab) != config.vocab_size:
        raise ValueError(f"the vocabulary has {len(vocab)} tokens, the config says "
                         f"vocab_size={config.vocab_size}")
    if vocab_of(config, corpus_text) != vocab:
        raise ValueError("the vocabulary is not the one of corpus_text (first-appearance "
                         "order of its characters, or of its training words): pass the text "
                         "it was built from")
    if text_sha1(corpus_text) != config.corpus_sha1:
        raise ValueError("config.corpus_sha1 is not the SHA-1 of corpus_text: build the "
                         "config with config.with_corpus(corpus_text)")
    if lm.vocab_size != config.vocab_size:
        raise ValueError(f"the model has vocab_size={lm.vocab_size}, the config "
                         f"{config.vocab_size}")
    check_rng(rng_state)
    epoch = history.epoch[-1] if history.epoch else 0
    averaged = history.averaged[-1] if history.epoch else 0
    if bool(averaged) != (iterate is not None):
        raise ValueError(f"iterate (NT-ASGD's SGD iterate) must be given exactly when the "
                         f"history says updates were averaged ({averaged})")
    if rng_state["mxnet_seed"] != mxnet_seed(config.seed, epoch):
        raise ValueError(f"rng_state['mxnet_seed'] is {rng_state['mxnet_seed']}, but after "
                         f"epoch {epoch} with seed {config.seed} it is "
                         f"mxnet_seed(seed, epoch) = {mxnet_seed(config.seed, epoch)}")


def save_checkpoint(path, config, vocab, lm, history, corpus_text, rng_state, *, lock=None,
                    iterate=None):
    """Write a checkpoint folder at ``path`` crash-safely (see the module docstring).

    ``rng_state``: ``capture_rng_state(mxnet_seed(config.seed, last_epoch))``.
    ``lock``: a held ``CheckpointLock`` for ``path`` (a training run holds one
    for its whole length); without one, the save takes it for its duration
    and raises ``CheckpointLocked`` if another process writes ``path``.
    Leftovers of an earlier crashed save are recovered first (``recover``).
    ``iterate``: with NT-ASGD under way, ``lm`` holds the mean and ``iterate``
    (``{name: NDArray}``, ``Averaging.iterate``) the SGD iterate, saved as ``iterate.params``.
    Returns the folder written, as a ``Path``.
    """
    _check_save_args(config, vocab, lm, history, corpus_text, rng_state, iterate)
    path = writable_path(path)
    if path.exists() and not path.is_dir():
        raise CheckpointError(f"cannot save a checkpoint at {path}: it is a file; choose "
                              "another folder")
    if path.exists() and not is_checkpoint(path) and any(path.iterdir()):
        raise CheckpointError(f"refusing to replace {path}: it is not a lyricnn checkpoint; "
                              "choose another folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    if lock is not None and (not lock.held or lock.path != path):
        raise ValueError(f"lock must be a held CheckpointLock for {path}")
    with contextlib.nullcontext() if lock is not None else CheckpointLock(path):
        recover(path)
        tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(path), dir=path.parent))
        try:
            os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes it private (0700)
            (tmp / MARKER).write_bytes(b"a folder lyricnn's save made\n")   # see store.MARKER
            _write_contents(tmp, config, vocab, lm, history, corpus_text, rng_state, iterate)
            fsync_path(tmp)
            swap_in(tmp, path)
        finally:
            if tmp.exists():   # the save failed: a user's files it had moved go back first
                home = next((f for f in (path, backup_path(path)) if f.is_dir()
                             and not f.is_symlink()), None)
                if home is not None:
                    carry_foreign(tmp, home)
                if not foreign_entries(tmp):
                    shutil.rmtree(tmp, ignore_errors=True)
    return path


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
    format: int = FORMAT
    iterate: object = None   # NT-ASGD's SGD iterate ({name: NDArray}), lm holding the mean

    @property
    def epoch(self):
        """The number of epochs trained (0 before the first)."""
        return self.history.epoch[-1] if self.history.epoch else 0

    def split_text(self):
        """``(training_text, held_out_text or None)`` as the run split its corpus."""
        return self.config.split(self.corpus_text)


def _verified(folder):
    """Whether ``folder`` holds a complete checkpoint whose files match its manifest."""
    try:
        contents, _ = read_folder(folder)
        config, fmt = parse_config(folder, contents)
        if fmt == FORMAT:
            check_manifest(folder, contents)
        return True
    except (OSError, CheckpointError):
        return False


def recover(path):
    """Clean up after crashed saves of the checkpoint at ``path`` (call under its lock).

    The newest complete checkpoint among ``path``, ``.NAME.old`` and
    ``.NAME.tmp-*`` (verified against its manifest) is renamed to ``path``;
    every other leftover is removed; one of another run (``same_run``) never
    replaces a complete checkpoint at ``path``.  A ``path`` that is not a checkpoint at
    all is left alone.  Returns the list of actions taken (also logged).
    """
    path = writable_path(path)
    leftovers = leftovers_of(path)
    if not leftovers:
        return []
    actions = []
    mine = is_checkpoint(path) and _verified(path)
    # A leftover of another run (another model or corpus) never replaces this run's.
    complete = [p for p in [path, *leftovers] if p.is_dir() and _verified(p)
                and (p == path or not mine or same_run(p, path))]
    best = max(complete, key=lambda p: (save_order(p), p == path)) if complete else None
    if best is not None and best != path:
        if path.exists() and is_checkpoint(path):
            carry_foreign(path, best)   # a user's files in the folder go with the checkpoint
            remove_folder(path)
            actions.append(f"removed the older or incomplete checkpoint {path}")
        if not path.exists():
            os.rename(best, path)
            fsync_path(path.parent)
            actions.append(f"recovered the newest complete checkpoint from {best.name}")
    winner = path if is_checkpoint(path) else None
    for leftover in leftovers:
        if not leftover.exists():
            continue
        if winner is not None:
            carry_foreign(leftover, winner)
        if foreign_entries(leftover):   # nowhere to carry them: the leftover stays
            actions.append(f"kept {leftover.name}: it holds files no save writes")
            continue
        remove_folder(leftover)
        actions.append(f"removed {leftover.name}, left by an interrupted save")
    for action in actions:
        log.warning("%s: %s", path, action)
    return actions


def load_checkpoint(path, ctx=None, vocab=None):
    """Load the checkpoint at ``path`` (see ``find_checkpoint``) onto ``ctx``.

    ``vocab``: if given, the checkpoint's vocabulary must equal it.  Every file
    is verified (manifest checksums) and validated; a problem raises one
    ``CheckpointError`` (a ``ValueError``) naming the file and what to do.
    Loading does not touch the global random generators: pass
    ``checkpoint.rng_state`` to ``restore_rng_state`` to resume.
    """
    for attempt in range(READ_ATTEMPTS):
        folder, inode = find_checkpoint(path), None
        try:
            contents, inode = read_folder(folder)
            return _load(folder, contents, ctx, vocab)
        except (CheckpointError, FileNotFoundError, NotADirectoryError):
            # A save replaced the folder while we read it: read the new one.
            if attempt + 1 < READ_ATTEMPTS and replaced(folder, inode):
                time.sleep(0.05 * (attempt + 1))
                continue
            raise


def _load(folder, contents, ctx, expected_vocab):
    # Checksums first: a damaged file is reported as damaged, not as its symptom.
    if MANIFEST in contents:
        check_manifest(folder, contents)
    config, fmt = parse_config(folder, contents)
    if fmt == FORMAT and MANIFEST not in contents:
        check_manifest(folder, contents)  # names the missing manifest
    for name in DATA_FILES:
        if name not in contents:
            raise checkpoint_error(folder, name, "missing: the checkpoint is incomplete")
    corpus_text = parse_corpus(folder, contents, config)
    vocab = parse_vocab(folder, contents, config, corpus_text)
    if expected_vocab is not None and expected_vocab != vocab:
        raise CheckpointError(_vocab_mismatch(vocab, expected_vocab))
    history = parse_history(folder, contents, fmt)
    epoch = history.epoch[-1] if history.epoch else 0
    rng_state = parse_rng(folder, contents, config, epoch)
    lm = load_parameters(folder, contents, config, fmt, ctx)
    iterate = parse_iterate(folder, contents, lm, history)
    return Checkpoint(folder, config, vocab, lm, history, rng_state, corpus_text, fmt, iterate)


def _vocab_mismatch(vocab, expected):
    if len(expected) != len(vocab):
        detail = f"{len(vocab)} characters in the checkpoint, {len(expected)} given"
    else:
        i = next(i for i, (a, b) in enumerate(zip(vocab.idx_to_token, expected.idx_to_token))
                 if a != b)
        detail = (f"index {i} is {vocab.idx_to_token[i]!r} in the checkpoint, "
                  f"{expected.idx_to_token[i]!r} in the given vocabulary")
    return f"vocabulary mismatch: {detail}"
