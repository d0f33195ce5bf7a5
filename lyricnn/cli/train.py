"""TODO docstring (cli.train, from cli.py)."""
# Only the standard library at import time: the console script imports this
# module before main() can install its signal handlers, and a Ctrl-C while
# MXNet loads must still end in one line, not a traceback.  Importing
# lyricnn.cli runs lyricnn/__init__.py first, which sets OMP_NUM_THREADS
# before MXNet loads.
import math
import sys
from lyricnn.cli.common import BEST_NAME, PLOT_NAME, UsageError, _checked, _prefixes, _word_corpus
from lyricnn.cli.rundir import _resume, _start


def _add_train(sub):
    from lyricnn.checks import check_int
    from lyricnn.run.config import RunConfig, TrainSettings, add_config_arguments

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
    p.add_argument("--save-every", type=_checked(lambda v: check_int("save_every", v, 1)),
                   default=1, metavar="N",
                   help="save the checkpoint every N epochs and after the last (default 1)")
    p.add_argument("--plot", action="store_true",
                   help=f"write the perplexity curves to DIR/{PLOT_NAME} (an existing plot "
                        "is always refreshed)")
    p.add_argument("--prefix", action="append", metavar="TEXT",
                   help="prefix to continue in the log; repeatable (default: 分开 and 不分开 "
                        "when the corpus has those characters, else its first 2)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(handler=cmd_train)


def _postfix(history):
    postfix = {"perplexity": f"{history.perplexity[-1]:.3f}"}
    if history.valid_perplexity[-1] is not None:
        postfix["valid"] = f"{history.valid_perplexity[-1]:.3f}"
    return postfix


def _diverged(run, epoch, history):
    from lyricnn.training.loop import TrainingDiverged
    return TrainingDiverged(
        f"epoch {epoch}: the training perplexity is infinite (mean cross-entropy above "
        f"709 nats): the model diverged. Use a smaller learning rate (--lr "
        f"{run.config.lr:g}) or a smaller --clipping-theta ({run.config.clipping_theta:g})")


def _epoch_end(args, settings, run, bar, signals, prefixes):
    """``on_epoch_end``: refuse divergence, print the book's lines, advance the bar, save."""
    from tqdm import tqdm

    from lyricnn.run.checkpoint import capture_rng_state, save_checkpoint
    from lyricnn.training.loop import mxnet_seed
    from lyricnn.book.trainers import book_logger

    config, vocab, last = run.config, run.vocab, settings.num_epochs
    log_lines = book_logger(run.lm, settings.pred_period, settings.pred_len, prefixes,
                            vocab.idx_to_token, vocab.token_to_idx)

    def on_epoch_end(epoch, history):
        # An epoch at infinite perplexity trained nothing useful: fail before saving it.
        if not math.isfinite(history.perplexity[-1]):
            raise _diverged(run, epoch, history)
        if not run.writer:   # worker 0 logs and saves for the whole job
            return
        with tqdm.external_write_mode(file=sys.stdout):
            if config.is_word:
                if epoch % settings.pred_period == 0 or epoch == last:
                    _word_log(epoch, history, len(run.words.train))
            else:
                log_lines(epoch, history)
        bar.set_postfix(_postfix(history), refresh=False)
        if not config.is_word:
            bar.update(1)
        rng = capture_rng_state(mxnet_seed(config.seed, epoch))
        valid = history.valid_perplexity
        if valid[-1] is not None and valid[-1] <= min(valid):  # the best so far
            save_checkpoint(run.out / BEST_NAME, config, vocab, run.lm, history,
                            run.corpus_text, rng)
        # A stop request saves now: the parameters are those of a whole epoch.
        if epoch % args.save_every == 0 or epoch == last or signals.stop_requested():
            save_checkpoint(run.checkpoint, config, vocab, run.lm, history, run.corpus_text,
                            rng, lock=run.lock)
            run.saved_epoch = epoch
    return on_epoch_end


def _word_log(epoch, history, tokens):
    """A word-level run's epoch line on stdout (the book's fields, then lr and speed)."""
    valid = history.valid_perplexity[-1]
    held = "" if valid is None else f", valid perplexity {valid:.2f}"
    seconds = history.seconds[-1]
    print(f"epoch {epoch}, perplexity {history.perplexity[-1]:.2f}{held}, lr "
          f"{history.lr[-1]:.4g}, time {seconds:.1f} sec, {tokens / seconds:,.0f} tokens/s",
          flush=True)


def _describe(run, first, last, n_train, n_valid, ctxs, workers):
    source = run.config.corpus or "the Jay Chou lyrics"
    held = f", {n_valid} held out" if n_valid else ""
    unit = "words" if run.config.is_word else "characters"
    size = f"{n_train + (n_valid or 0)}" if run.config.is_word else f"{len(run.corpus_text)}"
    where = ""
    if len(ctxs) > 1 or workers > 1:
        where = f", on {len(ctxs)} device(s) ({','.join(map(str, ctxs))}) x {workers} worker(s)"
    return (f"lyricnn: training {run.config.describe()}, "
            f"{size} {unit} of {source} ({n_train} training{held}), "
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
    from lyricnn.plotting import plot_history
    from lyricnn.training.loop import History
    plot = run.out / PLOT_NAME
    if not run.writer or not run.saved_epoch or not (args.plot or plot.exists()):
        return None
    h = run.history
    n = h.epoch.index(run.saved_epoch) + 1
    saved = History(h.epoch[:n], h.perplexity[:n], h.seconds[:n], h.valid_perplexity[:n])
    return plot_history(saved, plot, title=f"{run.config.model}, {run.config.num_hiddens} "
                                           "hidden units")


def cmd_train(args, signals):
    from lyricnn.run.config import WORD_TRAIN_DEFAULTS, TrainSettings
    from lyricnn.context import resolve_ctx_list
    from lyricnn.training.parallel import barrier, kvstore, worker_info

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
        begin = _resume if args.resume else _start
        run = begin(args, ctxs, workers, writer=rank == 0)
        if rank == 0 and kv is not None:
            barrier(kv)
        try:
            settings = TrainSettings.from_args(
                args, WORD_TRAIN_DEFAULTS if run.config.is_word else None)
            return _train(args, settings, run, signals, ctxs, workers)
        finally:
            run.lock.release()


def _train(args, settings, run, signals, ctxs, workers):
    from tqdm import tqdm

    from lyricnn.data.sampling import data_iter_consecutive, data_iter_random
    from lyricnn.training.loop import TrainingDiverged, TrainingInterrupted, train_epochs
    from lyricnn.training.loop import train_word_lm

    config = run.config
    done = run.history.epoch[-1] if run.history.epoch else 0
    if done >= settings.num_epochs:
        if not run.writer:
            return 0
        print(f"lyricnn: {run.checkpoint} has {done} epochs already, --epochs is "
              f"{settings.num_epochs}: nothing to train", file=sys.stderr)
        return 0
    if config.is_word:
        if args.prefix:
            raise UsageError("--prefix continues text in a character-level run's log; for a "
                             "word-level run use lyricnn generate")
        run.words = run.words or _word_corpus(config, run.corpus_text)
        train_idx, valid_idx, prefixes = run.words.train, run.words.valid, []
        _check_word_training(config, run.words)
    else:
        train_idx, valid_idx = config.split(run.vocab.to_indices(run.corpus_text))
        # Samplers validate when called: a corpus too short for one minibatch fails now.
        (data_iter_random if config.is_random_iter else data_iter_consecutive)(
            train_idx, config.batch_size, config.num_steps)
        prefixes = _prefixes(args.prefix, run.vocab, run.corpus_text)
    if run.writer:
        print(_describe(run, done + 1, settings.num_epochs, len(train_idx),
                        len(valid_idx) if valid_idx else 0, ctxs, workers), file=sys.stderr)
    if config.is_word:  # a word-level epoch takes minutes: count tokens (shows tokens/s)
        bar = tqdm(total=(settings.num_epochs - done) * len(train_idx), unit="tok",
                   unit_scale=True, file=sys.stderr, disable=args.no_progress,
                   dynamic_ncols=True)
    else:
        bar = tqdm(total=settings.num_epochs, initial=done, unit="epoch", file=sys.stderr,
                   disable=args.no_progress, dynamic_ncols=True)
    try:
        if signals.stop_requested():  # a signal while loading: stop before any work
            raise TrainingInterrupted(done)
        on_epoch_end = _epoch_end(args, settings, run, bar, signals, prefixes)
        epochs = range(done + 1, settings.num_epochs + 1)
        if config.is_word:
            train_word_lm(run.lm, train_idx, valid_idx, epochs, batch_size=config.batch_size,
                          num_steps=config.num_steps, lr=config.lr,
                          clipping_theta=config.clipping_theta, lr_decay=config.lr_decay,
                          decay_from=config.decay_from, history=run.history,
                          on_epoch_end=on_epoch_end, seed=config.seed,
                          should_stop=signals.stop_requested,
                          on_batch=None if args.no_progress else bar.update, ctx=ctxs,
                          kvstore=args.kvstore)
        else:
            train_epochs(run.lm, train_idx, config.is_random_iter, config.num_steps,
                         config.batch_size, config.lr, config.clipping_theta, epochs,
                         history=run.history, valid_indices=valid_idx,
                         on_epoch_end=on_epoch_end, seed=config.seed,
                         should_stop=signals.stop_requested, ctx=ctxs, kvstore=args.kvstore)
    except TrainingDiverged as err:
        raise TrainingDiverged(f"{err} ({_saved_status(run)})") from None
    except TrainingInterrupted:
        pass
    finally:
        bar.close()
        plot = _refresh_plot(args, run)
    if signals.stop_requested():
        if not run.writer:
            return signals.exit_code
        print(f"lyricnn train: interrupted by {signals.name(signals.received)}; "
              f"{_saved_status(run)}; continue with: lyricnn train --resume {run.out} "
              f"--epochs {settings.num_epochs}", file=sys.stderr)
        return signals.exit_code
    if run.writer:
        print(f"lyricnn: checkpoint (epoch {run.history.epoch[-1]}) in {run.checkpoint}"
              + (f", plot in {plot}" if plot else ""), file=sys.stderr)
    return 0


# -- generate and score -----------------------------------------------------------

def _check_word_training(config, words):
    """Refuse, before any MXNet call, a word-level run its corpus cannot feed."""
    from lyricnn.run.config import flag_of
    from lyricnn.training.evaluate import EVAL_BATCH_SIZE
    if len(words.train) // config.batch_size < 2:
        raise UsageError(f"the training split has {len(words.train)} words: cut into "
                         f"--batch-size {config.batch_size} streams that leaves fewer than 2 "
                         "per stream; use a smaller --batch-size or a longer corpus")
    if words.valid is not None and len(words.valid) // EVAL_BATCH_SIZE < 2:
        raise UsageError(f"the valid split has {len(words.valid)} words, fewer than "
                         f"{2 * EVAL_BATCH_SIZE} (it is read as {EVAL_BATCH_SIZE} streams); "
                         "use a larger --valid-fraction or a longer corpus")
    if words.valid is None and config.lr_decay != 1 and config.decay_from == 0:
        raise UsageError(f"{flag_of('lr_decay')} {config.lr_decay:g} anneals when the "
                         "validation perplexity stops improving, but this corpus has no valid "
                         "split: give --valid-fraction, --decay-from N, or --lr-decay 1")
