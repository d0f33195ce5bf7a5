"""TODO docstring (cli.rundir, from cli.py)."""
# Only the standard library at import time: the console script imports this
# module before main() can install its signal handlers, and a Ctrl-C while
# MXNet loads must still end in one line, not a traceback.  Importing
# lyricnn.cli runs lyricnn/__init__.py first, which sets OMP_NUM_THREADS
# before MXNet loads.
from dataclasses import dataclass
from pathlib import Path
from lyricnn.cli.common import BEST_NAME, CHECKPOINT_NAME, Failure, PLOT_NAME, UsageError, _flag, _load_corpus, _word_corpus
#: Share of the available memory a training run may plan to use.
MEMORY_SHARE = 0.8


# -- limits -----------------------------------------------------------------------

def available_memory():
    """Bytes this process may still allocate (MemAvailable, cgroup limits), or ``None``."""
    from lyricnn.memory import available_memory
    return available_memory()


def training_bytes(config):
    """A generous estimate of the memory a training run of ``config`` needs, in bytes.

    Parameters with their gradients and MXNet's workspace (4 copies of
    ``P`` float32 values), plus one minibatch's activations: the one-hot
    inputs, logits and their gradients (about ``4 V``) and the gate values
    (about ``6 gates h``) per layer, for ``batch_size * num_steps`` positions.
    """
    gates = {"rnn": 1, "gru": 3, "lstm": 4}[config.model.replace("-scratch", "")]
    V, h, L = config.vocab_size, config.num_hiddens, config.num_layers
    inputs = config.embedding_size if config.is_word else V  # word level: an embedding
    params = sum(gates * h * ((inputs if layer == 0 else h) + h + 2) for layer in range(L))
    params += h * V + V + (V * inputs if config.is_word and not config.tied else 0)
    positions = config.batch_size * config.num_steps
    return 4 * (4 * params + positions * (4 * V + 6 * gates * h * L))


def _check_memory(config):
    need, have = training_bytes(config), available_memory()
    if have is not None and need > MEMORY_SHARE * have:
        raise UsageError(
            f"this model would need about {need / 2**30:.1f} GiB ({config.describe()}, "
            f"batch_size={config.batch_size}, num_steps={config.num_steps}), more than the "
            f"{MEMORY_SHARE * have / 2**30:.1f} GiB this machine can spare; use a smaller "
            "--num-hiddens, --num-layers, --batch-size or --num-steps")


# -- train ------------------------------------------------------------------------

@dataclass
class _Run:
    """What a training run works on, fresh or resumed."""

    config: object  # RunConfig
    vocab: object
    lm: object
    history: object
    corpus_text: str
    out: Path  # run directory
    lock: object  # the held CheckpointLock of out/checkpoint
    fresh: bool
    saved_epoch: int = 0  # the last epoch this process saved (0: none yet)
    words: object = None  # a word-level run's WordCorpus (lyricnn.wordlm)
    writer: bool = True  # False on the workers of rank > 0: they never write to the run

    @property
    def checkpoint(self):
        return self.out / CHECKPOINT_NAME


def _check_out(out, force):
    """Refuse a run directory that cannot hold our checkpoint, before any work is done."""
    from lyricnn.run.store import find_checkpoint, is_checkpoint
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a folder (it will hold "
                         f"{CHECKPOINT_NAME}/ and {PLOT_NAME})")
    ckpt = out / CHECKPOINT_NAME
    if ckpt.exists() and not ckpt.is_dir():
        raise UsageError(f"{ckpt} is a file, not a lyricnn checkpoint; choose another --out")
    if ckpt.is_dir() and not is_checkpoint(ckpt) and any(ckpt.iterdir()):
        raise UsageError(f"{ckpt} exists and is not a lyricnn checkpoint; choose another --out")
    try:
        existing = find_checkpoint(ckpt)
    except (FileNotFoundError, ValueError):
        existing = None
    if existing is not None and not force:
        raise UsageError(f"{out} already holds a checkpoint: continue it with --resume "
                         f"{out}, or pass --force to overwrite it")


def _lock(path):
    from lyricnn.run.store import CheckpointLock, CheckpointLocked
    try:
        return CheckpointLock(path).acquire()
    except CheckpointLocked as err:
        raise Failure(str(err)) from None


def _check_split(config, ctxs, workers):
    from lyricnn.training.parallel import check_divisible
    check_divisible(config.batch_size, len(ctxs) * workers, len(ctxs), workers,
                    name="--batch-size")


class _NoLock:
    """What a worker of rank > 0 holds instead of the run's lock: it never writes."""

    def release(self):
        pass


def _start(args, ctxs, workers=1, writer=True):
    """A fresh run: check the flags, load the corpus, lock the run, seed, build the model.

    ``writer`` False (a worker of rank > 0): the same model, but no lock and no
    change to the run directory, which worker 0 owns.
    """
    import dataclasses

    from lyricnn.run.task import build_model
    from lyricnn.run.checkpoint import recover
    from lyricnn.run.config import RunConfig
    from lyricnn.context import set_seed
    from lyricnn.data.corpus import Vocab

    config = dataclasses.replace(RunConfig.from_args(args), workers=workers)
    _check_split(config, ctxs, workers)
    out = Path(args.out) if args.out else Path("runs") / config.model
    if writer:
        _check_out(out, args.force)
    text = _load_corpus(config)
    if not text:
        raise UsageError(f"the corpus {config.corpus or 'of the data hub'} is empty: there is "
                         "nothing to train on")
    words = None
    if config.is_word:
        words = _word_corpus(config, text)
        config, vocab = config.with_corpus(text, len(words.vocab)), words.vocab
    else:
        config, vocab = config.with_corpus(text), Vocab.from_tokens(text)
    _check_memory(config)
    lock = _lock(out / CHECKPOINT_NAME) if writer else _NoLock()
    try:
        if writer:
            recover(out / CHECKPOINT_NAME)
            _check_out(out, args.force)  # a recovered save may have produced a checkpoint
            _drop_stale_best(out)
        set_seed(config.seed)
        return _Run(config, vocab, build_model(config, ctxs[0]), _new_history(), text, out,
                    lock, True, words=words, writer=writer)
    except BaseException:
        lock.release()
        raise


def _drop_stale_best(out):
    """A fresh run in ``out`` (--force) replaces the old run, its best/ included: a best/
    left from it would be taken for this run's."""
    import shutil

    from lyricnn.run.store import CheckpointLock, is_checkpoint
    best = out / BEST_NAME
    if best.is_dir() and not best.is_symlink() and is_checkpoint(best):
        with CheckpointLock(best):
            shutil.rmtree(best)


def _new_history():
    from lyricnn.training.loop import History
    return History()


def _resume_target(resume):
    """The canonical checkpoint folder of ``--resume DIR`` (DIR/checkpoint or DIR)."""
    from lyricnn.run.store import find_checkpoint
    folder = find_checkpoint(resume)  # FileNotFoundError/CheckpointError name the problem
    resume = Path(resume).absolute()
    nested = resume / CHECKPOINT_NAME
    if folder == nested or folder.parent == nested.parent and folder.name.startswith(
            f".{CHECKPOINT_NAME}."):
        return nested
    return resume


def _resume(args, ctxs, workers=1, writer=True):
    """Continue a checkpoint: its config, vocabulary, corpus, parameters and RNG states.

    ``writer``: as ``_start``. A distributed run resumes with as many workers
    as it was trained with.
    """
    from lyricnn.run.checkpoint import load_checkpoint, recover, restore_rng_state
    from lyricnn.run.config import RunConfig

    source = _resume_target(args.resume)
    out = Path(args.out) if args.out else source.parent
    same = out.absolute() == source.parent.absolute() and source.name == CHECKPOINT_NAME
    if not same and writer:
        _check_out(out, args.force)
    lock = _lock(out / CHECKPOINT_NAME) if writer else _NoLock()
    try:
        if same and writer:
            recover(source)
        ckpt = load_checkpoint(source, ctxs[0])
        if ckpt.config.workers != workers:
            raise UsageError(
                f"{source} was trained by {ckpt.config.workers} worker process(es) and this "
                f"run has {workers}: resume it with the same number (lyricnn launch --workers "
                f"{ckpt.config.workers} -- train --kvstore dist_sync --resume ..."
                + (")" if ckpt.config.workers > 1 else ", or plain lyricnn train --resume)"))
        _check_split(ckpt.config, ctxs, workers)
        given = RunConfig.given(args)
        if "corpus" in given:
            given["corpus"] = str(Path(given["corpus"]).resolve())
        conflicts = [f"{_flag(k)} {v} (checkpoint: {getattr(ckpt.config, k)})"
                     for k, v in given.items() if getattr(ckpt.config, k) != v]
        if conflicts:
            raise UsageError("cannot resume with settings that differ from the checkpoint's: "
                             + "; ".join(conflicts) + ". Drop those flags to resume")
        restore_rng_state(ckpt.rng_state)
        return _Run(ckpt.config, ckpt.vocab, ckpt.lm, ckpt.history, ckpt.corpus_text, out,
                    lock, False, saved_epoch=ckpt.epoch if same and writer else 0,
                    writer=writer)
    except BaseException:
        lock.release()
        raise
