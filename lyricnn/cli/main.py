"""The ``lyricnn`` command: train, generate and score chapter 6's language models.

    lyricnn train --model gru --epochs 50 --valid-fraction 0.1 --out runs/gru --plot
    lyricnn train --resume runs/gru --epochs 100
    lyricnn generate --checkpoint runs/gru --prefix 分开 --prefix 不分开 --length 50
    lyricnn score --checkpoint runs/gru 分开 开分 --ngram-order 3
    lyricnn train --corpus ptb --tokens word --num-layers 2 --dropout 0.5 --tied --out runs/ptb
    lyricnn evaluate --checkpoint runs/ptb/best --split test

The train flags of the model and its training (``--model``, ``--num-hiddens``,
``--num-steps``, ``--batch-size``, ``--lr``, ``--clipping-theta``, ...) are
generated from ``lyricnn.run.config.RunConfig``, the dataclass a checkpoint saves,
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
         limit: --length and --pred-len <= decoding.generate.MAX_LENGTH, --ngram-order
         within ngram.check_order, a model that does not fit in memory)
    130  interrupted by SIGINT (Ctrl-C); 143: by SIGTERM.  Training stops at
         the next minibatch, discards the partial epoch and keeps (or, if the
         last completed epoch was not saved yet, writes) a consistent checkpoint.

stdout carries the book's log lines (``epoch 50, perplexity ...`` and
`` - <sample>``), generated text and score tables; the progress bar and every
other message go to stderr.

A run directory (``--out``) holds ``checkpoint/`` (lyricnn.run.checkpoint), its
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
# MXNet loads must still end in one line, not a traceback. The subcommands
# (lyricnn/cli/<command>.py, which load MXNet) are imported by main() once the
# handlers are in place.
import argparse
import codecs
import contextlib
import importlib
import logging
import os
import signal
import sys
import threading

from lyricnn import __version__

#: The subcommands, in --help order: each is lyricnn/cli/<name>.py with
#: ``add_parser(subparsers)`` and ``run(args, signals) -> exit code``.
COMMANDS = ("train", "generate", "score", "evaluate", "launch", "serve")
#: Exit codes of the signals that stop a run (128 + the signal number, as a shell reports).
#: SIGHUP (the terminal closed, the ssh session dropped) is handled as SIGTERM.
EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}


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


def build_parser():
    parser = _Parser(prog="lyricnn", description="Train, sample from and score the "
                     "language models of chapter 6 of 《动手学深度学习》, character- or "
                     "word-level.",
                     epilog="Run 'lyricnn COMMAND --help' for the flags of a command.")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show the library's INFO messages on stderr")
    parser.add_argument("--version", action="version", version=f"lyricnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"lyricnn.cli.{name}").add_parser(sub)
    return parser


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


def _escape_what_cannot_be_printed():
    """A terminal or pipe whose encoding cannot show the lyrics (``PYTHONIOENCODING=ascii``,
    ``LANG=C`` on old Pythons) gets ``\\uXXXX`` escapes instead of an error that would end
    a run after its first epoch; one line says so."""
    for stream in (sys.stdout, sys.stderr):
        encoding = getattr(stream, "encoding", None) or "utf-8"
        if codecs.lookup(encoding).name != "utf-8" and hasattr(stream, "reconfigure"):
            try:
                "分".encode(encoding)
            except UnicodeEncodeError:
                stream.reconfigure(errors="backslashreplace")
                if stream is sys.stdout:
                    print(f"lyricnn: standard output's encoding is {encoding}: characters it "
                          "cannot show are printed as \\u escapes; set PYTHONIOENCODING=utf-8 "
                          "to see them", file=sys.stderr)


def _error(args, message, code):
    print(f"lyricnn {args.command}: error: {_one_line(message)}", file=sys.stderr)
    return code


def _run(argv, signals):
    import mxnet as mx   # after the signal handlers: see the top of this module

    from lyricnn.cli.common import Failure, UsageError
    from lyricnn.run.store import CheckpointError, NotACheckpoint
    from lyricnn.training.loop import TrainingDiverged

    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help (0) or a usage error (2): return, don't exit
        return exit_.code if isinstance(exit_.code, int) else 2
    if sys.stdout is None:   # started with its standard output closed (>&-)
        return _error(args, "standard output is closed, so nothing could be printed; "
                      "redirect it to a file or to /dev/null", 1)
    _escape_what_cannot_be_printed()
    with _log_to_stderr(args.verbose):
        try:
            code = args.handler(args, signals)
            sys.stdout.flush()   # a write that fails is an error, not a silent exit 0
            return code
        except (TrainingDiverged, Failure) as err:
            return _error(args, err, 1)
        except RuntimeError as err:   # pathlib's "Symlink loop from ..."
            if "symlink loop" not in str(err).lower():
                raise
            return _error(args, f"{err} (a symbolic link that leads back to itself)", 2)
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
    from lyricnn import tuning
    if tuning.INVALID_THREADS is not None:   # MXNet would abort on it (a C++ terminate)
        print(f"lyricnn: error: OMP_NUM_THREADS={tuning.INVALID_THREADS!r} is not a number of "
              "threads; set a positive whole number (e.g. 2) or unset it", file=sys.stderr)
        return 2
    role = os.environ.get("DMLC_ROLE")
    if role in ("scheduler", "server"):
        # MXNet reads DMLC_ROLE at import: this process would become a parameter server
        # waiting for workers that never come, deaf to Ctrl-C.
        print(f"lyricnn: error: DMLC_ROLE={role} is set in the environment, which would make "
              "this process an MXNet parameter server; unset DMLC_ROLE (lyricnn launch sets "
              "the DMLC_* variables for the processes it starts)", file=sys.stderr)
        return 2
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
    parallel = sys.modules.get("lyricnn.training.parallel")   # not loaded: not a dist worker
    return parallel is not None and parallel.in_distributed_job()


if __name__ == "__main__":
    sys.exit(main())
