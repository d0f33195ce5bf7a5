"""The run folder of ``lyricnn train``: a fresh run or a resumed one, locked, checked first.

A run folder (``--out``) holds ``checkpoint/`` (``lyricnn.run.checkpoint``),
its lock ``.checkpoint.lock``, for a run with a held-out split ``best/`` (the
checkpoint of the epoch with the lowest validation perplexity so far) and,
with ``--plot``, ``perplexity.png``. ``start`` and ``resume`` check everything
the flags and the corpus can tell before they take the lock and build a model.
"""
import dataclasses
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from lyricnn.cli.common import (BEST_NAME, CHECKPOINT_NAME, PLOT_NAME, Failure, UsageError,
                                corpus_of, corpus_text)
from lyricnn.context import set_seed
from lyricnn.memory import available_memory
from lyricnn.run.checkpoint import load_checkpoint, recover, restore_rng_state
from lyricnn.training.averaging import Averaging
from lyricnn.run.config import RunConfig, flag_of
from lyricnn.run.store import (CheckpointLock, CheckpointLocked, backup_path, find_checkpoint,
                               foreign_entries, is_checkpoint, is_leftover, remove_folder)
from lyricnn.run.task import task_of
from lyricnn.training.loop import History
from lyricnn.training.parallel import check_divisible

#: Share of the available memory a training run may plan to use.
MEMORY_SHARE = 0.8

log = logging.getLogger(__name__)


@dataclass
class Run:
    """What a training run works on, fresh or resumed."""

    config: RunConfig
    corpus: object        # lyricnn.run.task.Corpus: the vocabulary and the splits' indices
    lm: object            # the LanguageModel
    history: History
    corpus_text: str
    out: Path             # the run folder
    lock: object          # the held CheckpointLock of out/checkpoint
    fresh: bool
    saved_epoch: int = 0  # the last epoch this process saved (0: none yet)
    writer: bool = True   # False on the workers of rank > 0: they never write to the run
    stale_best: bool = False  # a best/ of an earlier run (--force), removed after our 1st save
    in_place: bool = False    # resumed in its own run folder (its plot is lyricnn's)
    averaging: object = None  # NT-ASGD (lyricnn.training.averaging.Averaging), --asgd N

    @property
    def checkpoint(self):
        return self.out / CHECKPOINT_NAME

    @property
    def vocab(self):
        return self.corpus.vocab


def check_memory(config):
    need, have = task_of(config).training_bytes(config), available_memory()
    if have is not None and need > MEMORY_SHARE * have:
        raise UsageError(
            f"this model would need about {need / 2**30:.1f} GiB ({config.describe()}, "
            f"batch_size={config.batch_size}, num_steps={config.num_steps}), more than the "
            f"{MEMORY_SHARE * have / 2**30:.1f} GiB this machine can spare; use a smaller "
            "--num-hiddens, --num-layers, --batch-size or --num-steps")


def check_own_names(out, plot=False):
    """Refuse, before any work, a run folder whose ``best/`` (or, with ``--plot``, whose
    plot) is something a run could not replace without damaging what is not its own: a
    link (a save would write where it points), a file, or a folder of other files."""
    best = out / BEST_NAME
    if best.is_symlink():
        raise UsageError(f"{best} is a symbolic link; each better epoch replaces {BEST_NAME}/, "
                         "so move the link away (or give another --out)")
    if best.exists() and not best.is_dir():
        raise UsageError(f"{best} is a file, where the run keeps its best checkpoint; move it "
                         "away (or give another --out)")
    if best.is_dir() and not is_checkpoint(best) and any(best.iterdir()):
        raise UsageError(f"{best} holds files that are not a lyricnn checkpoint; move them away "
                         "(each better epoch replaces that folder), or give another --out")
    aside = backup_path(out / CHECKPOINT_NAME)
    if (aside.exists() or aside.is_symlink()) and not is_leftover(aside):
        raise UsageError(f"{aside} is not one lyricnn left (each save sets the checkpoint "
                         "aside under that name): move it elsewhere, or give another --out")
    png = out / PLOT_NAME
    if plot and (png.is_symlink() or (png.exists() and not png.is_file())):
        raise UsageError(f"{png} is not a regular file (a link or a folder), so --plot cannot "
                         "write it; move it away, or give another --out")


def check_out(out, force, plot=False):
    """Refuse a run folder that cannot hold our checkpoint, or holds a run's files that a
    fresh run would replace without ``--force``, before any work is done."""
    if out.is_symlink() and not out.exists():
        raise UsageError(f"--out {out} is a symbolic link to {os.readlink(out)}, which does not "
                         "exist; give a folder, or create the link's target")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a folder (it will hold "
                         f"{CHECKPOINT_NAME}/ and {PLOT_NAME})")
    inside = next((p for p in [out, *out.parents] if is_checkpoint(p)), None)
    if inside is not None:
        raise UsageError(f"--out {out} is inside the checkpoint folder {inside}; give the run "
                         f"folder that holds {CHECKPOINT_NAME}/ ({inside.parent}) or a new one")
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
    check_own_names(out, plot)
    if is_checkpoint(out / BEST_NAME) and not force:
        raise UsageError(f"{out} holds {BEST_NAME}/, the best checkpoint of an earlier run: move "
                         "it away, or pass --force to replace it (it is replaced only once this "
                         "run has saved a checkpoint)")


def _lock(path):
    try:
        return CheckpointLock(path).acquire()
    except CheckpointLocked as err:
        raise Failure(str(err)) from None


def check_split(config, ctxs, workers):
    check_divisible(config.batch_size, len(ctxs) * workers, len(ctxs), workers,
                    name="--batch-size")


class _NoLock:
    """What a worker of rank > 0 holds instead of the run's lock: it never writes."""

    def release(self):
        pass


def start(args, ctxs, workers=1, writer=True):
    """A fresh run: check the flags, load the corpus, lock the run, seed, build the model.

    ``writer`` False (a worker of rank > 0): the same model, but no lock and no
    change to the run folder, which worker 0 owns.
    """
    config = dataclasses.replace(RunConfig.from_args(args), workers=workers)
    check_split(config, ctxs, workers)
    out = out_folder(args, config)
    if writer:
        check_out(out, args.force, args.plot)
    text = corpus_text(config)
    if not text:
        raise UsageError(f"the corpus {config.corpus or 'of the data hub'} is empty: there is "
                         "nothing to train on")
    corpus = corpus_of(config, text)
    config = config.with_corpus(text, len(corpus.vocab))
    try:
        task_of(config).check_trainable(config, corpus)
    except ValueError as err:
        raise UsageError(str(err)) from None
    check_memory(config)
    lock = _lock(out / CHECKPOINT_NAME) if writer else _NoLock()
    try:
        if writer:
            recover(out / CHECKPOINT_NAME)
            check_out(out, args.force, args.plot)  # a recovered save may have made one
        set_seed(config.seed)
        return Run(config, corpus, task_of(config).build_model(config, ctxs[0]), History(),
                   text, out, lock, True, writer=writer,
                   stale_best=writer and is_checkpoint(out / BEST_NAME),
                   averaging=Averaging(config.asgd) if config.asgd else None)
    except BaseException:
        lock.release()
        raise


def out_folder(args, config):
    """The run folder of a fresh run: ``--out``, or ``runs/MODEL``."""
    return Path(args.out) if args.out else Path("runs") / config.model


def drop_stale_best(run):
    """After a fresh run (``--force``) has saved its first checkpoint: the earlier run's
    ``best/``, if this run has not replaced it yet, goes (it would be taken for this run's).
    Until then it is kept, so that a run that fails early loses nothing."""
    best = run.out / BEST_NAME
    if run.stale_best and best.is_dir() and not best.is_symlink() and is_checkpoint(best):
        with CheckpointLock(best):
            kept = foreign_entries(best)
            if not kept:
                shutil.rmtree(best)
            else:   # a user's files in it stay: only the stale checkpoint's own files go
                for name in set(os.listdir(best)) - set(kept):
                    remove_folder(best / name)
                log.warning("%s: removed the earlier run's checkpoint files, kept %s", best,
                            ", ".join(kept))
    run.stale_best = False


def _resume_target(resume):
    """The canonical checkpoint folder of ``--resume DIR`` (DIR/checkpoint or DIR)."""
    folder = find_checkpoint(resume)  # FileNotFoundError/CheckpointError name the problem
    resume = Path(resume).absolute()
    nested = resume / CHECKPOINT_NAME
    if folder == nested or folder.parent == nested.parent and folder.name.startswith(
            f".{CHECKPOINT_NAME}."):
        return nested
    return resume


def resume(args, ctxs, workers=1, writer=True):
    """Continue a checkpoint: its config, vocabulary, corpus, parameters and RNG states.

    ``writer``: as ``start``. A distributed run resumes with as many workers
    as it was trained with.
    """
    source = _resume_target(args.resume)
    out = Path(args.out) if args.out else source.parent
    same = out.absolute() == source.parent.absolute() and source.name == CHECKPOINT_NAME
    if not same and writer:
        check_out(out, args.force, args.plot)
    elif writer:
        check_own_names(out, args.plot)
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
        check_split(ckpt.config, ctxs, workers)
        given = RunConfig.given(args)
        if "corpus" in given:
            given["corpus"] = str(Path(given["corpus"]).resolve())
        conflicts = [f"{flag_of(k)} {v} (checkpoint: {getattr(ckpt.config, k)})"
                     for k, v in given.items() if getattr(ckpt.config, k) != v]
        if conflicts:
            raise UsageError("cannot resume with settings that differ from the checkpoint's: "
                             + "; ".join(conflicts) + ". Drop those flags to resume")
        corpus = corpus_of(ckpt.config, ckpt.corpus_text)
        restore_rng_state(ckpt.rng_state)
        # Resumed with --force into another run's folder: its best/ is that run's, replaced
        # by ours or removed once we have saved (as for a fresh --force run).
        return Run(ckpt.config, corpus, ckpt.lm, ckpt.history, ckpt.corpus_text, out, lock,
                   False, saved_epoch=ckpt.epoch if same and writer else 0, writer=writer,
                   in_place=same,
                   stale_best=writer and not same and is_checkpoint(out / BEST_NAME),
                   averaging=Averaging(ckpt.config.asgd).restore(ckpt.history, ckpt.lm,
                                                                 ckpt.iterate)
                   if ckpt.config.asgd else None)
    except BaseException:
        lock.release()
        raise
