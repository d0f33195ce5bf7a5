"""``lyricnn train``: train a model, saving a checkpoint after every epoch.

The flags of the model and its training are generated from
``lyricnn.run.config`` (``RunConfig``, ``TrainSettings``); what depends on the
token level comes from the run's task (``lyricnn.run.task``); the loop is
``lyricnn.training.loop.train_epochs``.
"""
import math
import sys
import time

from tqdm import tqdm

from lyricnn.checks import check_int, check_number
from lyricnn.cli import rundir
from lyricnn.cli.common import BEST_NAME, PLOT_NAME, UsageError, checked
from lyricnn.context import resolve_ctx_list
from lyricnn.run import task as tasks
from lyricnn.run.checkpoint import capture_rng_state, save_checkpoint
from lyricnn.run.config import LEVEL_TRAIN_DEFAULTS, RunConfig, TrainSettings
from lyricnn.run.flags import add_config_arguments
from lyricnn.training.loop import (History, TrainingConverged, TrainingDiverged,
                                   TrainingInterrupted, mxnet_seed)
from lyricnn.training.parallel import barrier, kvstore, worker_info
from lyricnn.tuning import retain_freed_memory


def add_parser(sub):
    p = sub.add_parser(
        "train", help="train a model, saving a checkpoint after every epoch",
        description="Train a character-level language model (book 6.4-6.9; defaults are "
                    "the book's) or, with --tokens word, a word-level one (e.g. --corpus ptb; "
                    "defaults are word_language_model's). With --resume, training continues "
                    "from the checkpoint up to --epochs, and the per-epoch perplexities equal "
                    "those of an uninterrupted run with the same seed.")
    add_config_arguments(p, RunConfig)
    add_config_arguments(p, TrainSettings)
    p.add_argument("--ctx", default="cpu", metavar="DEVICES",
                   help="device(s): cpu, gpu (falls back to the CPU with a warning), or a "
                        "comma-separated list such as gpu:0,gpu:1 (cpu:0,cpu:1 exercises the "
                        "multi-device path on one CPU): each minibatch is split over them "
                        "(default cpu)")
    p.add_argument("--kvstore", choices=("local", "device", "dist_sync"), default=None,
                   help="how gradients are summed: local/device across --ctx devices (default "
                        "local with several), dist_sync across the worker processes of "
                        "lyricnn launch")
    p.add_argument("--out", metavar="DIR", help="run directory: checkpoint/ and the plot "
                   "(default: runs/MODEL, or the --resume directory)")
    p.add_argument("--resume", metavar="DIR", help="continue the run (or checkpoint) in DIR")
    p.add_argument("--force", action="store_true",
                   help="overwrite a checkpoint already in --out (otherwise an error)")
    p.add_argument("--save-every", type=checked(lambda v: check_int("save_every", v, 1)),
                   default=1, metavar="N",
                   help="save the checkpoint every N epochs and after the last (default 1)")
    p.add_argument("--max-minutes", type=checked(_minutes), default=None, metavar="M",
                   help="a time budget: stop at the first minibatch boundary past M minutes "
                        "of this command, keep best/ and the checkpoint of the last whole "
                        "epoch (every epoch is then saved), exit 0; --resume continues")
    p.add_argument("--plot", action="store_true",
                   help=f"write the perplexity curves to DIR/{PLOT_NAME} (a resumed run "
                        "also refreshes a plot already there)")
    p.add_argument("--prefix", action="append", metavar="TEXT",
                   help="prefix to continue in the log; repeatable (default: 分开 and 不分开 "
                        "when the corpus has those characters, else its first 2)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(handler=run)


MAX_MINUTES_DIST = ("--max-minutes under lyricnn launch: each worker's clock would stop it "
                    "at a different minibatch, and the workers must stop together; use "
                    "--epochs")
#: A budget beyond a year is a typo (minutes for seconds), not a plan.
MAX_MINUTES = 366 * 24 * 60


def _minutes(value):
    return check_number("max_minutes", value, 0, MAX_MINUTES, low_open=True,
                        hint="minutes of wall time, e.g. 60")


def run(args, signals):
    args.started = time.monotonic()   # --max-minutes counts from here
    if args.max_minutes is not None and args.kvstore == "dist_sync":
        raise UsageError(MAX_MINUTES_DIST)
    ctxs = resolve_ctx_list(args.ctx)
    # dist_sync: this blocks until the scheduler, servers and every worker are up.
    kv = kvstore(args.kvstore) if args.kvstore == "dist_sync" else None
    rank, workers = worker_info(kv)
    if rank > 0:
        args.no_progress = True
    # From here on the run may hold its lock and save: a signal only asks it to stop.
    with signals.deferred():
        if rank > 0 and kv is not None:
            barrier(kv)   # worker 0 has checked, recovered and locked the run directory
        begin = rundir.resume if args.resume else rundir.start
        this = begin(args, ctxs, workers, writer=rank == 0)
        if rank == 0 and kv is not None:
            barrier(kv)
        try:
            settings = TrainSettings.from_args(args, LEVEL_TRAIN_DEFAULTS[this.config.tokens])
            return _train(args, settings, this, signals, ctxs, workers)
        finally:
            this.lock.release()


def _train(args, settings, run, signals, ctxs, workers):
    config, task = run.config, tasks.task_of(run.config)
    done = run.history.epoch[-1] if run.history.epoch else 0
    if done >= settings.num_epochs:
        if run.writer:
            print(f"lyricnn: {run.checkpoint} has {done} epochs already, --epochs is "
                  f"{settings.num_epochs}: nothing to train", file=sys.stderr)
        return 0
    try:
        prefixes = task.log_prefixes(args.prefix, run.vocab, run.corpus_text)
        task.check_trainable(config, run.corpus)
    except ValueError as err:
        raise UsageError(str(err)) from None
    if run.writer:
        print(_describe(run, done + 1, settings.num_epochs, ctxs, workers), file=sys.stderr)
    # Under --max-minutes the clock, not --epochs, usually ends the run: a total from
    # --epochs (1000 in the PTB recipes) would show 0 % and an ETA of days, so the bar
    # counts without a total (tokens or epochs, the rate and the time so far).
    budgeted = args.max_minutes is not None
    if task.counts_tokens:
        total = None if budgeted else (settings.num_epochs - done) * len(run.corpus.train)
        bar = tqdm(total=total, unit="tok", unit_scale=True, file=sys.stderr,
                   disable=args.no_progress, dynamic_ncols=True)
    else:
        bar = tqdm(total=None if budgeted else settings.num_epochs, initial=done,
                   unit="epoch", file=sys.stderr, disable=args.no_progress,
                   dynamic_ncols=True)
    retain_freed_memory()   # lyricnn.tuning: MXNet allocates per minibatch
    started = time.monotonic()
    budget = _Budget(args)
    try:
        if signals.stop_requested():  # a signal while loading: stop before any work
            raise TrainingInterrupted(done)
        tasks.train(config, run.lm, run.corpus, range(done + 1, settings.num_epochs + 1),
                    history=run.history,
                    on_epoch_end=_epoch_end(args, settings, run, bar, signals, prefixes),
                    seed=config.seed,
                    should_stop=lambda: signals.stop_requested() or budget.spent(),
                    on_batch=bar.update if task.counts_tokens and not args.no_progress
                    else None, ctx=ctxs, kvstore=args.kvstore, averaging=run.averaging)
    except TrainingDiverged as err:
        raise TrainingDiverged(f"{err} ({_saved_status(run)})") from None
    except TrainingInterrupted:
        pass
    except TrainingConverged as err:   # the plateau rule's floor: an early stop, not a failure
        if run.writer:
            print(f"lyricnn train: {err}", file=sys.stderr)
    finally:
        bar.close()
        plot = _refresh_plot(args, run)
    if budget.spent() and not signals.stop_requested():
        if run.writer:
            if run.saved_epoch or run.in_place:
                best = run.out / BEST_NAME
                advice = ((f", the best in {best}" if best.is_dir() and not run.stale_best
                           else "") + f"; continue with: lyricnn train --resume {run.out} "
                          f"--epochs {settings.num_epochs} [--max-minutes M]")
            else:
                advice = "; no epoch ended within the budget: give a larger --max-minutes"
            print(f"lyricnn train: --max-minutes {args.max_minutes:g} reached "
                  f"({(time.monotonic() - args.started) / 60:.1f} min); the epoch under way "
                  f"is not kept; {_saved_status(run)}{advice}", file=sys.stderr)
        return 0
    if signals.stop_requested():
        if not run.writer:
            return signals.exit_code
        if run.saved_epoch or run.in_place:   # a checkpoint of this run is in run.out
            launcher = f"lyricnn launch --workers {workers} -- " if workers > 1 else "lyricnn "
            advice = (f"continue with: {launcher}train --resume {run.out} "
                      f"--epochs {settings.num_epochs}")
        else:
            advice = "run the same command again to start over"
        print(f"lyricnn train: interrupted by {signals.name(signals.received)}; "
              f"{_saved_status(run)}; {advice}", file=sys.stderr)
        return signals.exit_code
    if run.writer:
        print(f"lyricnn: checkpoint (epoch {run.history.epoch[-1]}) in {run.checkpoint}"
              + (f", plot in {plot}" if plot else "")
              + _wall_time(time.monotonic() - started, run.history.epoch[-1] - done),
              file=sys.stderr)
    return 0


class _Budget:
    """``spent()``: whether ``--max-minutes`` have passed since the command started."""

    def __init__(self, args):
        self.deadline = None if args.max_minutes is None else \
            args.started + 60 * args.max_minutes

    def spent(self):
        return self.deadline is not None and time.monotonic() >= self.deadline


def _wall_time(seconds, epochs):
    """What the epochs cost on the wall: the log's ``time`` is the training pass alone."""
    if epochs < 1:
        return ""
    return (f"; {epochs} epoch(s) in {seconds:.1f} s on the wall, {seconds / epochs:.2f} s each "
            "with held-out evaluation, samples and saves (the log's 'time' is the training "
            "pass alone)")


def _epoch_end(args, settings, run, bar, signals, prefixes):
    """``on_epoch_end``: refuse divergence, print the log, advance the bar, save."""
    config, vocab, last = run.config, run.vocab, settings.num_epochs
    task = tasks.task_of(config)
    log = task.epoch_logger(run.lm, settings, vocab, prefixes, len(run.corpus.train),
                            signals.stop_requested)   # a signal cuts a long sample short

    def on_epoch_end(epoch, history):
        # An epoch at infinite perplexity trained nothing useful: fail before saving it.
        if not math.isfinite(history.perplexity[-1]):
            raise _diverged(run, epoch)
        if not run.writer:   # worker 0 logs and saves for the whole job
            return
        with tqdm.external_write_mode(file=sys.stdout):
            log(epoch, history)
        bar.set_postfix(_postfix(history), refresh=False)
        if not task.counts_tokens:
            bar.update(1)
        rng = capture_rng_state(mxnet_seed(config.seed, epoch))
        # NT-ASGD under way: run.lm holds the mean (the model saved), this the SGD iterate.
        iterate = None if run.averaging is None else run.averaging.iterate
        valid = history.valid_perplexity
        if valid[-1] is not None and valid[-1] <= min(valid):  # the best so far
            save_checkpoint(run.out / BEST_NAME, config, vocab, run.lm, history,
                            run.corpus_text, rng, iterate=iterate)
            run.stale_best = False   # replaced by this run's
        # A stop request saves now: the parameters are those of a whole epoch. A budget
        # saves every epoch: the one before the stop must be on disk.
        if epoch % args.save_every == 0 or epoch == last or signals.stop_requested() \
                or args.max_minutes is not None:
            save_checkpoint(run.checkpoint, config, vocab, run.lm, history, run.corpus_text,
                            rng, lock=run.lock, iterate=iterate)
            run.saved_epoch = epoch
            rundir.drop_stale_best(run)
    return on_epoch_end


def _postfix(history):
    postfix = {"perplexity": f"{history.perplexity[-1]:.3f}"}
    if history.valid_perplexity[-1] is not None:
        postfix["valid"] = f"{history.valid_perplexity[-1]:.3f}"
    return postfix


def _diverged(run, epoch):
    return TrainingDiverged(
        f"epoch {epoch}: the training perplexity is infinite (mean cross-entropy above "
        f"709 nats): the model diverged. Use a smaller learning rate (--lr "
        f"{run.config.lr:g}) or a smaller --clipping-theta ({run.config.clipping_theta:g})")


def _describe(run, first, last, ctxs, workers):
    task = tasks.task_of(run.config)
    n_train = len(run.corpus.train)
    n_valid = len(run.corpus.valid) if run.corpus.valid is not None else 0
    source = run.config.corpus or "the Jay Chou lyrics"
    held = f", {n_valid} held out" if n_valid else ""
    where = ""
    if len(ctxs) > 1 or workers > 1:
        where = f", on {len(ctxs)} device(s) ({','.join(map(str, ctxs))}) x {workers} worker(s)"
    return (f"lyricnn: training {run.config.describe()}, "
            f"{n_train + n_valid} {task.unit} of {source} ({n_train} training{held}), "
            f"epochs {first}..{last}{where}, checkpoint in {run.checkpoint}")


def _saved_status(run):
    """Where the last good checkpoint of *this* run is (not an earlier run's)."""
    if run.saved_epoch:
        return f"the checkpoint of epoch {run.saved_epoch} is in {run.checkpoint}"
    if run.fresh and (run.checkpoint.exists()):
        return (f"no checkpoint of this run was saved; {run.checkpoint} still holds the "
                "earlier run's")
    return "no checkpoint was saved"


def _refresh_plot(args, run):
    """Redraw the run's plot from the epochs saved, if asked for or already there."""
    from lyricnn.plotting import plot_history   # matplotlib: only for a run that plots
    plot = run.out / PLOT_NAME
    # Only a run resumed in its own folder redraws unasked: elsewhere a plot may be the user's.
    if not run.writer or not run.saved_epoch or not (args.plot or (run.in_place
                                                                   and plot.exists())):
        return None
    h = run.history
    n = h.epoch.index(run.saved_epoch) + 1
    saved = History(h.epoch[:n], h.perplexity[:n], h.seconds[:n], h.valid_perplexity[:n])
    return plot_history(saved, plot, title=f"{run.config.model}, {run.config.num_hiddens} "
                                           "hidden units")
