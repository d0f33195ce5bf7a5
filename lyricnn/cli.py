"""The ``lyricnn`` command: train, generate and score chapter 6's language models.

    lyricnn train --model gru --epochs 50 --valid-fraction 0.1 --out runs/gru --plot
    lyricnn train --resume runs/gru --epochs 100
    lyricnn generate --checkpoint runs/gru --prefix 分开 --prefix 不分开 --length 50
    lyricnn score --checkpoint runs/gru 分开 开分 --ngram-order 3
    lyricnn train --corpus ptb --tokens word --num-layers 2 --dropout 0.5 --tied --out runs/ptb
    lyricnn evaluate --checkpoint runs/ptb/best --split test

The train flags of the model and its training (``--model``, ``--num-hiddens``,
``--num-steps``, ``--batch-size``, ``--lr``, ``--clipping-theta``, ...) are
generated from ``lyricnn.config.RunConfig``, the dataclass a checkpoint saves,
so names, defaults, ranges and help cannot drift apart; the old short
spellings (``--hidden``, ``--steps``, ``--batch``, ``--clip``, ``--layers``)
still work.

Exit codes (errors are one line on stderr, never a traceback):

    0    success
    1    runtime failure: training diverged (NaN loss, or a whole epoch at
         infinite perplexity), a bad or corrupted checkpoint, another process
         writing the same run, a missing data-hub file, an I/O error
    2    usage error: a bad flag or flag value, or bad input named on the
         command line (a --corpus that is missing, a folder, a FIFO, empty, not
         UTF-8 or a corrupt zip; a --checkpoint/--resume path that holds no
         checkpoint; a character outside the vocabulary; a request beyond its
         limit: --length and --pred-len <= generation.MAX_LENGTH, --ngram-order
         within ngram.check_order, a model that does not fit in memory)
    130  interrupted by SIGINT (Ctrl-C); 143: by SIGTERM.  Training stops at
         the next minibatch, discards the partial epoch and keeps (or, if the
         last completed epoch was not saved yet, writes) a consistent checkpoint.

stdout carries the book's log lines (``epoch 50, perplexity ...`` and
`` - <sample>``), generated text and score tables; the progress bar and every
other message go to stderr.

A run directory (``--out``) holds ``checkpoint/`` (lyricnn.checkpoint), its
lock file ``.checkpoint.lock``, for a run with a held-out split ``best/`` (the
checkpoint of the epoch with the lowest validation perplexity so far, as
word_language_model keeps; ``lyricnn evaluate --checkpoint DIR/best``) (kept after the run: deleting a lock file races
with a process opening it) and ``perplexity.png``.  The plot always shows the
checkpoint beside it: it is redrawn at the end of every run that saved
something if ``--plot`` is given *or* a plot is already there (a ``--resume``
without ``--plot`` refreshes it instead of leaving a stale one).
"""
# Only the standard library at import time: the console script imports this
# module before main() can install its signal handlers, and a Ctrl-C while
# MXNet loads must still end in one line, not a traceback.  Importing
# lyricnn.cli runs lyricnn/__init__.py first, which sets OMP_NUM_THREADS
# before MXNet loads.
import argparse
import contextlib
import logging
import math
import os
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

BOOK_PREFIXES = ("分开", "不分开")
PLOT_NAME = "perplexity.png"
CHECKPOINT_NAME = "checkpoint"
BEST_NAME = "best"
EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}
#: Share of the available memory a training run may plan to use.
MEMORY_SHARE = 0.8


class UsageError(ValueError):
    """Bad flags or bad input named on the command line: exit 2."""


class Failure(RuntimeError):
    """A runtime failure that is not the user's flags: exit 1."""


# -- signals ----------------------------------------------------------------------

class Signals:
    """SIGINT/SIGTERM handling for one ``main`` call.

    Outside training a signal ends the process at once with one line on
    stderr (nothing is being written then, so nothing can be left half
    done).  Inside ``deferred()`` (training and saving) the first signal is
    only recorded: ``train_epochs`` polls ``stop_requested`` after every
    minibatch and stops at that safe point; a second signal exits at once
    (a save cut short is recovered at the next start).  Handlers set only a
    flag, so the signal can never be swallowed as a ``KeyboardInterrupt``
    inside MXNet's ``__del__``.
    """

    def __init__(self):
        self.received = None
        self._deferred = False
        self._previous = {}

    def stop_requested(self):
        return self.received is not None

    @property
    def exit_code(self):
        return EXIT_SIGNAL[self.received]

    @staticmethod
    def name(signum):
        return signal.Signals(signum).name

    def _handle(self, signum, frame):
        if self._deferred and self.received is None:
            self.received = signum
            return
        code = EXIT_SIGNAL.get(signum, 128 + signum)
        os.write(2, f"lyricnn: interrupted by {self.name(signum)}\n".encode())
        os._exit(code)

    @contextlib.contextmanager
    def installed(self):
        """Install the handlers (main thread only) and restore the previous ones after."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        for signum in EXIT_SIGNAL:
            self._previous[signum] = signal.signal(signum, self._handle)
        try:
            yield self
        finally:
            for signum, handler in self._previous.items():
                signal.signal(signum, handler)

    @contextlib.contextmanager
    def deferred(self):
        self._deferred = True
        try:
            yield self
        finally:
            self._deferred = False


# -- argument parsing -------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    """argparse with usage errors as one line (the usage is one ``--help`` away)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _checked(check):
    """argparse ``type=`` from a ``lyricnn.checks`` call on the parsed text."""
    def convert(text):
        value = text  # neither an int nor a float: the check names what it must be
        for parse in (int, float):
            try:
                value = parse(text)
                break
            except ValueError:
                continue
        try:
            return check(value)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
    return convert


def _add_ctx(p):
    p.add_argument("--ctx", choices=("cpu", "gpu"), default="cpu",
                   help="device; gpu falls back to the CPU with a warning (default cpu)")


def _add_checkpoint(p, help="run directory or checkpoint directory"):
    p.add_argument("--checkpoint", required=True, metavar="DIR", help=help)


def _add_train(sub):
    from .checks import check_int
    from .config import RunConfig, TrainSettings, add_config_arguments

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


def _add_generate(sub):
    from .checks import check_int, check_number
    from .generation import MAX_LENGTH, STRATEGIES

    p = sub.add_parser("generate", help="continue prefixes with a trained model",
                       description="Print one continuation per --prefix, decoded from "
                                   "a checkpoint (book 6.4.3).")
    _add_checkpoint(p)
    p.add_argument("--prefix", action="append", required=True, metavar="TEXT",
                   help="text to continue; repeat for several (one output line each)")
    p.add_argument("--length", default=50, metavar="N",
                   type=_checked(lambda v: check_int(
                       "length", v, 0, MAX_LENGTH,
                       hint="each character is one model step; generate in parts")),
                   help=f"characters to generate after each prefix (default 50, at most "
                        f"{MAX_LENGTH})")
    p.add_argument("--strategy", choices=STRATEGIES, default="greedy",
                   help="greedy: the most likely character (the book); sample: draw from "
                        "the softmax")
    p.add_argument("--temperature", default=1.0, metavar="T",
                   type=_checked(lambda v: check_number("temperature", v, 0)),
                   help="softmax temperature for --strategy sample; 0 is greedy (default 1)")
    p.add_argument("--top-k", metavar="K", type=_checked(lambda v: check_int("top_k", v, 1)),
                   help="sample among the K most likely characters only (1 is greedy)")
    p.add_argument("--seed", metavar="N", type=_checked(lambda v: check_int("seed", v, 0)),
                   help="seed for sampling; each prefix uses it afresh, so the same seed "
                        "gives the same text")
    _add_ctx(p)
    p.set_defaults(handler=cmd_generate)


def _add_score(sub):
    from .checks import check_int

    p = sub.add_parser(
        "score", help="log-probability and perplexity of strings, ranked",
        description="Rank strings by log P(text[1:] | text[0]) (natural log) under a "
                    "checkpoint and under a Kneser-Ney n-gram model fit on the "
                    "checkpoint's training text, most likely first.")
    _add_checkpoint(p)
    p.add_argument("texts", nargs="+", metavar="TEXT", help="strings of >= 2 characters")
    p.add_argument("--ngram-order", default=3, metavar="N",
                   type=_checked(lambda v: check_int("ngram_order", v, 0)),
                   help="order of the Kneser-Ney n-gram model (default 3; 0: no n-gram; at "
                        "most the training text's length and what memory allows)")
    _add_ctx(p)
    p.set_defaults(handler=cmd_score)


def _add_evaluate(sub):
    p = sub.add_parser(
        "evaluate", help="perplexity of a checkpoint on a held-out split or a text file",
        description="Print '<split> perplexity X': the whole split read as consecutive "
                    "streams with the state carried, every token scored once, full softmax "
                    "(<unk> counts as a token, as in the published PTB figures).")
    _add_checkpoint(p, "run directory, checkpoint directory, or DIR/best")
    p.add_argument("--split", choices=("valid", "test"),
                   help="held-out split of the checkpoint's corpus (default: test if the "
                        "corpus has one, else valid)")
    p.add_argument("--text", metavar="FILE",
                   help="score this UTF-8 file instead (tokenised as the checkpoint's corpus; "
                        "unknown words become <unk>)")
    p.add_argument("--corpus", metavar="PATH|ptb",
                   help="take --split from this corpus instead of the checkpoint's (its "
                        "vocabulary must be the checkpoint's)")
    _add_ctx(p)
    p.set_defaults(handler=cmd_evaluate)


def _add_launch(sub):
    from .checks import check_int, check_number
    p = sub.add_parser(
        "launch", help="train on several worker processes (MXNet's dist_sync KVStore)",
        description="Start a scheduler, --servers parameter servers and --workers workers "
                    "of 'lyricnn train' on this machine (loopback, a free port), with "
                    "--kvstore dist_sync added: each worker trains on its share of every "
                    "minibatch, gradients are summed, and worker 0 writes the run. Output "
                    "lines are prefixed [worker i]/[server i]/[scheduler]; if one process "
                    "fails, all are stopped and its exit code is returned. Example: "
                    "lyricnn launch --workers 2 -- train --out runs/dist --epochs 50",
        epilog="Several machines: see the README (the DMLC_* variables each host needs).")
    p.add_argument("--workers", type=_checked(lambda v: check_int("workers", v, 1)),
                   required=True, metavar="N", help="worker processes")
    p.add_argument("--servers", type=_checked(lambda v: check_int("servers", v, 1)), default=1,
                   metavar="M", help="parameter-server processes (default 1)")
    p.add_argument("--port", type=_checked(lambda v: check_int("port", v, 1, 65535)),
                   metavar="P", help="the scheduler's port on 127.0.0.1 (default: a free one)")
    p.add_argument("--timeout", type=_checked(lambda v: check_number("timeout", v, 0,
                                                                     low_open=True)),
                   metavar="SECONDS", help="stop every process after this long (exit 124)")
    p.add_argument("worker_command", nargs=argparse.REMAINDER, metavar="-- train ...",
                   help="the lyricnn train command each worker runs")
    p.set_defaults(handler=cmd_launch)


def build_parser():
    parser = _Parser(prog="lyricnn", description="Train, sample from and score the "
                     "language models of chapter 6 of 《动手学深度学习》, character- or "
                     "word-level.",
                     epilog="Run 'lyricnn COMMAND --help' for the flags of a command.")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show the library's INFO messages on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_train(sub)
    _add_generate(sub)
    _add_score(sub)
    _add_evaluate(sub)
    _add_launch(sub)
    return parser


# -- limits -----------------------------------------------------------------------

def available_memory():
    """Bytes this process may still allocate (MemAvailable, cgroup limits), or ``None``."""
    from .ngram import available_memory  # the one reader of the OS's figures
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


def _flag(name):
    from .config import flag_of
    return flag_of(name)


def _check_out(out, force):
    """Refuse a run directory that cannot hold our checkpoint, before any work is done."""
    from .checkpoint import find_checkpoint, is_checkpoint
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
    from .checkpoint import CheckpointLock, CheckpointLocked
    try:
        return CheckpointLock(path).acquire()
    except CheckpointLocked as err:
        raise Failure(str(err)) from None


def _load_corpus(config):
    from .config import PTB_CORPUS
    from .data import load_corpus_chars
    from .wordlm import corpus_text_of
    try:
        if config.is_word:
            return corpus_text_of(config)
        return load_corpus_chars(config.corpus, config.num_chars)
    except (OSError, ValueError) as err:
        if config.corpus in (None, PTB_CORPUS):  # the data hub's file: not the user's input
            raise Failure(str(err)) from None
        raise UsageError(f"--corpus {config.corpus}: {err}" if config.corpus not in str(err)
                         else str(err)) from None


def _word_corpus(config, text, held_out=True):
    """The run's ``WordCorpus``; a text without words etc. is a usage error naming it."""
    from .wordlm import word_corpus_of
    try:
        return word_corpus_of(config, text, held_out)
    except ValueError as err:
        raise UsageError(f"--corpus {config.corpus or 'of the data hub'}: {err}") from None


def _check_split(config, ctxs, workers):
    from .parallel import check_divisible
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

    from .checkpoint import build_model, recover
    from .config import RunConfig
    from .context import set_seed
    from .data import Vocab

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

    from .checkpoint import CheckpointLock, is_checkpoint
    best = out / BEST_NAME
    if best.is_dir() and not best.is_symlink() and is_checkpoint(best):
        with CheckpointLock(best):
            shutil.rmtree(best)


def _new_history():
    from .training import History
    return History()


def _resume_target(resume):
    """The canonical checkpoint folder of ``--resume DIR`` (DIR/checkpoint or DIR)."""
    from .checkpoint import find_checkpoint
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
    from .checkpoint import load_checkpoint, recover, restore_rng_state
    from .config import RunConfig

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


def _prefixes(requested, vocab, text):
    """The log's prefixes: the given ones (checked now, not after an epoch) or defaults."""
    if requested:
        for prefix in requested:
            if not prefix:
                raise UsageError("--prefix must not be empty")
            missing = "".join(dict.fromkeys(c for c in prefix if c not in vocab))
            if missing:
                raise UsageError(f"--prefix {prefix!r}: character(s) {missing!r} are not in "
                                 "the corpus")
        return list(requested)
    if all(c in vocab for p in BOOK_PREFIXES for c in p):
        return list(BOOK_PREFIXES)
    return [text[:2]]


def _postfix(history):
    postfix = {"perplexity": f"{history.perplexity[-1]:.3f}"}
    if history.valid_perplexity[-1] is not None:
        postfix["valid"] = f"{history.valid_perplexity[-1]:.3f}"
    return postfix


def _diverged(run, epoch, history):
    from .training import TrainingDiverged
    return TrainingDiverged(
        f"epoch {epoch}: the training perplexity is infinite (mean cross-entropy above "
        f"709 nats): the model diverged. Use a smaller learning rate (--lr "
        f"{run.config.lr:g}) or a smaller --clipping-theta ({run.config.clipping_theta:g})")


def _epoch_end(args, settings, run, bar, signals, prefixes):
    """``on_epoch_end``: refuse divergence, print the book's lines, advance the bar, save."""
    from tqdm import tqdm

    from .checkpoint import capture_rng_state, mxnet_seed, save_checkpoint
    from .training import book_logger

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
    from .plotting import plot_history
    from .training import History
    plot = run.out / PLOT_NAME
    if not run.writer or not run.saved_epoch or not (args.plot or plot.exists()):
        return None
    h = run.history
    n = h.epoch.index(run.saved_epoch) + 1
    saved = History(h.epoch[:n], h.perplexity[:n], h.seconds[:n], h.valid_perplexity[:n])
    return plot_history(saved, plot, title=f"{run.config.model}, {run.config.num_hiddens} "
                                           "hidden units")


def cmd_train(args, signals):
    from .config import WORD_TRAIN_DEFAULTS, TrainSettings
    from .context import resolve_ctx_list
    from .parallel import barrier, kvstore, worker_info

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

    from .sampling import data_iter_consecutive, data_iter_random
    from .training import TrainingDiverged, TrainingInterrupted, train_epochs
    from .wordlm import train_word_lm

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
    from .config import flag_of
    from .wordlm import EVAL_BATCH_SIZE
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


def _load(args):
    from .checkpoint import load_checkpoint
    from .context import resolve_ctx
    return load_checkpoint(args.checkpoint, resolve_ctx(args.ctx))


def cmd_generate(args, signals):
    from .generation import generate

    ckpt = _load(args)
    vocab = ckpt.vocab
    # Check every prefix before printing any: no half-done output on an error.
    if ckpt.config.is_word:
        prefixes = [_word_prefix(ckpt, prefix) for prefix in args.prefix]
    else:
        for prefix in args.prefix:
            _prefixes([prefix], vocab, "")
        prefixes = args.prefix
    if args.top_k is not None and args.top_k > len(vocab):
        raise UsageError(f"--top-k must be at most the vocabulary size ({len(vocab)}), got "
                         f"{args.top_k}")
    sep = " " if ckpt.config.is_word and ckpt.config.tokenizer == "whitespace" else ""
    for prefix in prefixes:
        print(generate(ckpt.lm, prefix, args.length, vocab.idx_to_token, vocab.token_to_idx,
                       strategy=args.strategy, temperature=args.temperature, top_k=args.top_k,
                       seed=args.seed, sep=sep), flush=True)
    return 0


def _word_prefix(ckpt, prefix):
    """A word-level prefix as vocabulary words: unknown ones become <unk> if the model has
    it, else a usage error naming them."""
    from .tokenize import UNK
    from .wordlm import tokenize_lines
    words = tokenize_lines(prefix, ckpt.config.tokenizer, eos=False)
    if not words:
        raise UsageError(f"--prefix {prefix!r} has no words")
    unknown = [w for w in words if w not in ckpt.vocab]
    if unknown and UNK not in ckpt.vocab:
        raise UsageError(f"--prefix {prefix!r}: word(s) {unknown!r} are not in the vocabulary")
    return [w if w in ckpt.vocab else UNK for w in words]


def _print_ranking(ranked):
    from .metrics import perplexity
    print(f"{'rank':>4}  {'log_prob':>10}  {'perplexity':>10}  text")
    for i, (text, logp) in enumerate(ranked, start=1):
        print(f"{i:>4}  {logp:>10.4f}  {perplexity(-logp / (len(text) - 1)):>10.3f}  {text}")


def _ngram_scorer(ngram):
    """``log P(text[1:] | text[0])``: conditioned like the RNN, so the two rank alike."""
    return lambda text: float(ngram.token_log_probs(text)[1:].sum())


def cmd_score(args, signals):
    from .ngram import NGramLM, check_order, rank
    from .scoring import scorer

    ckpt = _load(args)
    if ckpt.config.is_word:
        raise UsageError("score ranks character strings of a character-level checkpoint; for "
                         "a word-level one use: lyricnn evaluate --checkpoint "
                         f"{args.checkpoint} --text FILE")
    train_text, _ = ckpt.split_text()
    if args.ngram_order:
        try:  # before any work: the order's limits (text length, memory)
            check_order(args.ngram_order, len(train_text))
        except ValueError as err:
            raise UsageError(f"--ngram-order: {err}") from None
    # Rank everything before printing anything: a bad string fails with no partial table.
    tables = [(f"# {ckpt.config.model} checkpoint {ckpt.path} (epoch {ckpt.epoch}): "
               "natural-log P(text[1:] | text[0])",
               rank(args.texts, scorer(ckpt.lm, ckpt.vocab.token_to_idx)))]
    if args.ngram_order:
        ngram = NGramLM(args.ngram_order, "kneser-ney").fit(train_text)
        tables.append((f"# {args.ngram_order}-gram Kneser-Ney on the checkpoint's "
                       f"{len(train_text)} training characters: natural-log "
                       "P(text[1:] | text[0])", rank(args.texts, _ngram_scorer(ngram))))
    for title, ranked in tables:
        print(title)
        _print_ranking(ranked)
    return 0


# -- evaluate ---------------------------------------------------------------------

def cmd_evaluate(args, signals):
    from .config import PTB_CORPUS
    from .metrics import perplexity
    from .training import evaluate_loss

    if args.text is not None and (args.split or args.corpus):
        raise UsageError("--text scores a file; it does not combine with --split or --corpus")
    ckpt = _load(args)
    config = ckpt.config
    if args.text is not None:
        name, text = args.text, _read_user_text(args.text)
        indices = _text_indices(ckpt, text)
    else:
        if args.corpus is not None:
            if not config.is_word:
                raise UsageError("--corpus applies to word-level checkpoints; for a character "
                                 "one use --text FILE")
            corpus = args.corpus if args.corpus == PTB_CORPUS else str(
                Path(args.corpus).resolve())
            config = _replace(config, corpus=corpus)
            text = _load_corpus(config)
        else:
            text = ckpt.corpus_text
        indices, has_test = _split_indices(ckpt, config, text, args.split)
        name = args.split or ("test" if has_test else "valid")
    if config.is_word:
        from .wordlm import EVAL_BATCH_SIZE, evaluate_perplexity
        batch = max(1, min(EVAL_BATCH_SIZE, len(indices) // 2))
        if len(indices) < 2:
            raise UsageError(f"{name} has {len(indices)} word(s); perplexity needs at least 2")
        value = evaluate_perplexity(ckpt.lm, indices, batch, config.num_steps)
    else:
        if len(indices) < 2:
            raise UsageError(f"{name} has {len(indices)} character(s); perplexity needs at "
                             "least 2")
        value = perplexity(evaluate_loss(ckpt.lm, indices, config.num_steps))
    print(f"{name} perplexity {value:.3f}", flush=True)
    return 0


def cmd_launch(args, signals):
    from .launch import launch

    command = args.worker_command
    command = command[1:] if command[:1] == ["--"] else command
    if command[:1] != ["train"]:
        raise UsageError("launch runs 'lyricnn train' on every worker: give it after '--', "
                         "e.g. lyricnn launch --workers 2 -- train --out runs/dist")
    for i, arg in enumerate(command):
        if arg == "--kvstore" or arg.startswith("--kvstore="):
            value = arg.partition("=")[2] or (command[i + 1] if i + 1 < len(command) else "")
            if value != "dist_sync":
                raise UsageError(f"--kvstore {value} under launch: the workers sum their "
                                 "gradients through dist_sync; drop --kvstore")
            break
    else:
        command = command + ["--kvstore", "dist_sync"]
    return launch([sys.executable, "-m", "lyricnn.cli"] + command, workers=args.workers,
                  servers=args.servers, port=args.port, timeout=args.timeout)


def _replace(config, **changes):
    import dataclasses
    return dataclasses.replace(config, **changes)


def _read_user_text(path):
    from .data import read_text
    try:
        return read_text(path)
    except (OSError, ValueError) as err:
        raise UsageError(f"--text {path}: {err}" if str(path) not in str(err) else str(err)) \
            from None


def _text_indices(ckpt, text):
    """A text file's indices under the checkpoint's tokenisation and vocabulary."""
    from .tokenize import UNK
    config, vocab = ckpt.config, ckpt.vocab
    if config.is_word:
        from .wordlm import encode_words, tokenize_lines
        words = tokenize_lines(text, config.tokenizer, eos=True)
        try:
            return encode_words(words, vocab, "--text")
        except ValueError as err:
            raise UsageError(str(err)) from None
    text = text.replace("\n", " ").replace("\r", " ")
    missing = "".join(dict.fromkeys(c for c in text if c not in vocab))
    if missing:
        raise UsageError(f"--text has character(s) {missing[:20]!r} that are not in the "
                         f"checkpoint's vocabulary ({UNK} is word-level only)")
    return vocab.to_indices(text)


def _split_indices(ckpt, config, text, split):
    """``(indices of split, has_test)`` of the checkpoint's (or --corpus's) held-out data."""
    if not config.is_word:
        _, held = config.split(ckpt.vocab.to_indices(text))
        if split == "test":
            raise UsageError("a character-level run has no test split; use --split valid "
                             "(its --valid-fraction tail) or --text FILE")
        if held is None:
            raise UsageError("this run held nothing out (--valid-fraction 0): use --text FILE")
        return held, False
    words = _word_corpus(config, text)
    if words.vocab != ckpt.vocab:
        raise UsageError(f"--corpus {config.corpus}: its vocabulary ({len(words.vocab)} types, "
                         f"{config.tokenizer} tokens) is not the checkpoint's "
                         f"({len(ckpt.vocab)} types): the model can only be evaluated on the "
                         "corpus it was trained on, or on a file with --text")
    split = split or ("test" if words.test is not None else "valid")
    if getattr(words, split) is None:
        raise UsageError(f"the corpus {config.corpus or 'of the data hub'} has no {split} "
                         "split" + (" (train with --valid-fraction F to hold one out)"
                                    if split == "valid" else "; use --split valid or --text"))
    return getattr(words, split), words.test is not None


# -- entry point ------------------------------------------------------------------

@contextlib.contextmanager
def _log_to_stderr(verbose):
    """Show lyricnn's log records (e.g. the gpu -> cpu fallback) on stderr for one call."""
    logger = logging.getLogger("lyricnn")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("lyricnn: %(levelname)s: %(message)s"))
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def _one_line(message):
    """Messages are one line: a multi-line one (MXNet's C++ trace) keeps its last line."""
    lines = [line.strip() for line in str(message).strip().splitlines() if line.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else ""
    informative = [line for line in lines if not line.startswith(("Traceback", "File "))]
    last = (informative or lines)[-1]
    return last[len("MXNetError: "):] if last.startswith("MXNetError: ") else last


def _error(args, message, code):
    print(f"lyricnn {args.command}: error: {_one_line(message)}", file=sys.stderr)
    return code


def _run(argv, signals):
    import mxnet as mx

    from .checkpoint import CheckpointError, NotACheckpoint
    from .training import TrainingDiverged

    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help (0) or a usage error (2): return, don't exit
        return exit_.code if isinstance(exit_.code, int) else 2
    with _log_to_stderr(args.verbose):
        try:
            return args.handler(args, signals)
        except (TrainingDiverged, Failure) as err:
            return _error(args, err, 1)
        except NotACheckpoint as err:  # the path given is wrong, not a checkpoint broken
            return _error(args, err, 2)
        except CheckpointError as err:
            return _error(args, f"bad checkpoint: {err}", 1)
        except (UsageError, ValueError, FileNotFoundError) as err:
            return _error(args, err, 2)
        except OSError as err:
            return _error(args, err, 1)
        except mx.base.MXNetError as err:
            return _error(args, err, 1)


def main(argv=None):
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the exit code.

    The signal handlers go in first, before MXNet and the rest of lyricnn
    load, so that a Ctrl-C at any moment ends in one line.
    """
    signals = Signals()
    with signals.installed():
        try:
            code = _run(argv, signals)
        except KeyboardInterrupt:  # only where no handler could be installed (a thread)
            print("lyricnn: interrupted", file=sys.stderr)
            code = 130
        except Exception as err:
            if not _in_distributed_job():
                raise
            # An unexpected error in a dist worker: one line, then leave as below.
            print(f"lyricnn: error: {type(err).__name__}: {_one_line(str(err))}",
                  file=sys.stderr)
            code = 1
    if code and _in_distributed_job():
        # A dist_sync worker's KVStore waits at exit for every other worker, which
        # are blocked waiting for this one: a failed worker would never end. Leave
        # now, so that lyricnn launch sees the code and stops the others.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _in_distributed_job():
    parallel = sys.modules.get("lyricnn.parallel")   # never loaded: not a dist worker
    return parallel is not None and parallel.in_distributed_job()


if __name__ == "__main__":
    sys.exit(main())
