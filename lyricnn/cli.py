"""The ``lyricnn`` command: train, generate and score chapter 6's language models.

    lyricnn train --model gru --epochs 50 --valid-fraction 0.1 --out runs/gru --plot
    lyricnn train --resume runs/gru --epochs 100
    lyricnn generate --checkpoint runs/gru --prefix 分开 --prefix 不分开 --length 50
    lyricnn score --checkpoint runs/gru 分开 开分 --ngram-order 3

Exit codes: 0 success; 1 runtime failure (training diverged, a bad checkpoint,
an I/O error); 2 usage error (a bad flag, or bad input such as a missing corpus
file or a character outside the vocabulary).  Errors are one line on stderr.

stdout carries the book's log lines (``epoch 50, perplexity ...`` and
`` - <sample>``), generated text and score tables; the progress bar and every
other message go to stderr.
"""
# Importing lyricnn.cli runs lyricnn/__init__.py first, which sets
# OMP_NUM_THREADS before MXNet loads: keep MXNet imports below the package's.
import argparse
import contextlib
import logging
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import mxnet as mx
from tqdm import tqdm

from .checkpoint import (MODELS, SAMPLERS, CheckpointError, RunConfig,
                         backup_path, build_model, capture_rng_state, is_checkpoint,
                         load_checkpoint, mxnet_seed, restore_rng_state, save_checkpoint,
                         text_sha1)
from .context import resolve_ctx, set_seed
from .data import Vocab, load_corpus_chars
from .generation import STRATEGIES
from .ngram import NGramLM, rank
from .plotting import plot_history
from .sampling import data_iter_consecutive, data_iter_random
from .scoring import scorer
from .training import History, TrainingDiverged, book_logger, train_epochs

BOOK_PREFIXES = ("分开", "不分开")
PLOT_NAME = "perplexity.png"
CHECKPOINT_NAME = "checkpoint"

#: RunConfig field -> the train flag that sets it (the flags a resume may not change).
CONFIG_FLAGS = {"model": "--model", "layers": "--layers", "hidden": "--hidden",
                "sampler": "--sampler", "steps": "--steps", "batch": "--batch", "lr": "--lr",
                "clip": "--clip", "seed": "--seed", "corpus": "--corpus",
                "num_chars": "--num-chars", "valid_fraction": "--valid-fraction"}


# -- argument parsing -------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    """argparse with usage errors as one line (the usage is one ``--help`` away)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _int_at_least(minimum):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value
    return parse


def _float_in(low, high=math.inf, low_open=False):
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not (low < value if low_open else low <= value) or not value < high \
                or math.isnan(value):
            bound = f"> {low}" if low_open else f">= {low}"
            upper = f" and < {high}" if high < math.inf else ""
            raise argparse.ArgumentTypeError(f"must be {bound}{upper}, got {text}")
        return value
    return parse


def _num_chars(text):
    """``'all'`` or ``0``: the whole file (returned as 0); otherwise a positive count."""
    return 0 if text.strip().lower() == "all" else _int_at_least(0)(text)


def _add_train(sub):
    p = sub.add_parser(
        "train", help="train a model, saving a checkpoint after every epoch",
        description="Train a character-level language model (book 6.4/6.5). Defaults are "
                    "the book's. With --resume, training continues from the checkpoint up "
                    "to --epochs, and the per-epoch perplexities equal those of an "
                    "uninterrupted run with the same seed.")
    p.add_argument("--model", choices=MODELS, help="rnn-scratch: the scratch RNN of 6.4 "
                   "(default); rnn/gru/lstm: Gluon layers (6.5, 6.7, 6.8)")
    p.add_argument("--layers", type=_int_at_least(1), help="recurrent layers of a Gluon "
                   "model (default 1; rnn-scratch has exactly 1)")
    p.add_argument("--hidden", type=_int_at_least(1), help="hidden units (book: 256)")
    p.add_argument("--sampler", choices=SAMPLERS, help="minibatch sampler; default: random "
                   "for rnn-scratch, consecutive for Gluon models (as the book)")
    p.add_argument("--epochs", type=_int_at_least(1), default=250,
                   help="total epochs; with --resume, train up to this many (book: 250)")
    p.add_argument("--steps", type=_int_at_least(1), help="num_steps per sequence (book: 35)")
    p.add_argument("--batch", type=_int_at_least(1), help="batch size (book: 32)")
    p.add_argument("--lr", type=_float_in(0, low_open=True), help="learning rate (book: 1e2)")
    p.add_argument("--clip", type=_float_in(0, low_open=True),
                   help="gradient clipping threshold theta (book: 1e-2)")
    p.add_argument("--seed", type=_int_at_least(0), help="random seed (default 0)")
    p.add_argument("--ctx", choices=("cpu", "gpu"), default="cpu",
                   help="device; gpu falls back to the CPU with a warning (default cpu)")
    p.add_argument("--corpus", metavar="PATH", help="UTF-8 .txt or .zip to train on "
                   "(default: the Jay Chou lyrics from the data hub)")
    p.add_argument("--num-chars", type=_num_chars, metavar="N|all",
                   help="characters of the corpus to use; 0 or 'all' for the whole file "
                        "(book: 10000)")
    p.add_argument("--valid-fraction", type=_float_in(0, 1), metavar="F",
                   help="hold out the last F of the characters for a held-out perplexity "
                        "(never trained on; default 0)")
    p.add_argument("--out", metavar="DIR", help="run directory: checkpoint/ and the plot "
                   "(default: runs/MODEL, or the --resume directory)")
    p.add_argument("--resume", metavar="DIR", help="continue the run (or checkpoint) in DIR")
    p.add_argument("--force", action="store_true",
                   help="overwrite a checkpoint already in --out (otherwise an error)")
    p.add_argument("--save-every", type=_int_at_least(1), default=1, metavar="N",
                   help="save the checkpoint every N epochs and after the last (default 1)")
    p.add_argument("--plot", action="store_true",
                   help=f"write the perplexity curves to DIR/{PLOT_NAME}")
    p.add_argument("--period", type=_int_at_least(1), default=50, metavar="N",
                   help="print the book's log lines every N epochs (book: 50)")
    p.add_argument("--pred-len", type=_int_at_least(0), default=50, metavar="N",
                   help="characters generated per prefix in the log (book: 50)")
    p.add_argument("--prefix", action="append", metavar="TEXT",
                   help="prefix to continue in the log; repeatable (default: 分开 and 不分开 "
                        "when the corpus has those characters, else its first 2)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(handler=cmd_train)


def _add_generate(sub):
    p = sub.add_parser("generate", help="continue prefixes with a trained model",
                       description="Print one continuation per --prefix, decoded from "
                                   "a checkpoint (book 6.4.3).")
    p.add_argument("--checkpoint", required=True, metavar="DIR",
                   help="run directory or checkpoint directory")
    p.add_argument("--prefix", action="append", required=True, metavar="TEXT",
                   help="text to continue; repeat for several (one output line each)")
    p.add_argument("--length", type=_int_at_least(0), default=50,
                   help="characters to generate after each prefix (default 50)")
    p.add_argument("--strategy", choices=STRATEGIES, default="greedy",
                   help="greedy: the most likely character (the book); sample: draw from "
                        "the softmax")
    p.add_argument("--temperature", type=_float_in(0), default=1.0,
                   help="softmax temperature for --strategy sample; 0 is greedy (default 1)")
    p.add_argument("--top-k", type=_int_at_least(1), metavar="K",
                   help="sample among the K most likely characters only (1 is greedy)")
    p.add_argument("--seed", type=_int_at_least(0), help="seed for sampling; each prefix "
                   "uses it afresh, so the same seed gives the same text")
    p.add_argument("--ctx", choices=("cpu", "gpu"), default="cpu",
                   help="device; gpu falls back to the CPU with a warning (default cpu)")
    p.set_defaults(handler=cmd_generate)


def _add_score(sub):
    p = sub.add_parser(
        "score", help="log-probability and perplexity of strings, ranked",
        description="Rank strings by log P(text[1:] | text[0]) (natural log) under a "
                    "checkpoint and under a Kneser-Ney n-gram model fit on the "
                    "checkpoint's training text, most likely first.")
    p.add_argument("--checkpoint", required=True, metavar="DIR",
                   help="run directory or checkpoint directory")
    p.add_argument("texts", nargs="+", metavar="TEXT", help="strings of >= 2 characters")
    p.add_argument("--ngram-order", type=_int_at_least(0), default=3, metavar="N",
                   help="order of the Kneser-Ney n-gram model (default 3; 0: no n-gram)")
    p.add_argument("--ctx", choices=("cpu", "gpu"), default="cpu",
                   help="device; gpu falls back to the CPU with a warning (default cpu)")
    p.set_defaults(handler=cmd_score)


def build_parser():
    parser = _Parser(prog="lyricnn", description="Train, sample from and score the "
                     "character-level language models of chapter 6 of 《动手学深度学习》.",
                     epilog="Run 'lyricnn COMMAND --help' for the flags of a command.")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show the library's INFO messages on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_train(sub)
    _add_generate(sub)
    _add_score(sub)
    return parser


# -- train ------------------------------------------------------------------------

@dataclass
class _Run:
    """What a training run works on, fresh or resumed."""

    config: RunConfig
    vocab: Vocab
    lm: object
    history: History
    corpus_text: str
    out: Path  # run directory

    @property
    def checkpoint(self):
        return self.out / CHECKPOINT_NAME


def _requested(args):
    """The RunConfig fields given on the command line, in RunConfig's terms."""
    given = {field: getattr(args, field) for field in CONFIG_FLAGS
             if getattr(args, field) is not None}
    if "num_chars" in given and given["num_chars"] == 0:
        given["num_chars"] = None  # the whole file
    if "corpus" in given:
        given["corpus"] = str(Path(given["corpus"]).resolve())
    return given


def _check_out(out, force):
    """Refuse to overwrite a checkpoint (or a folder that is not one) by accident."""
    ckpt = out / CHECKPOINT_NAME
    if (is_checkpoint(ckpt) or is_checkpoint(backup_path(ckpt))) and not force:
        raise ValueError(f"{out} already holds a checkpoint: continue it with --resume "
                         f"{out}, or pass --force to overwrite it")
    if ckpt.exists() and not is_checkpoint(ckpt):
        raise ValueError(f"{ckpt} exists and is not a lyricnn checkpoint; choose another --out")


def _start(args, ctx):
    """A fresh run: load the corpus, build the vocabulary, seed, initialise the model."""
    given = _requested(args)
    model = given.get("model", RunConfig.model)
    given.setdefault("sampler", "random" if model == "rnn-scratch" else "consecutive")
    text = load_corpus_chars(given.get("corpus"), given.get("num_chars", RunConfig.num_chars))
    vocab = Vocab.from_tokens(text)
    config = RunConfig(**given, vocab_size=len(vocab), corpus_sha1=text_sha1(text)).validate()
    out = Path(args.out) if args.out else Path("runs") / config.model
    _check_out(out, args.force)
    set_seed(config.seed)
    return _Run(config, vocab, build_model(config, ctx), History(), text, out)


def _resume(args, ctx):
    """Continue a checkpoint: its config, vocabulary, corpus and RNG states."""
    ckpt = load_checkpoint(args.resume, ctx)
    conflicts = [f"{CONFIG_FLAGS[k]} {v} (checkpoint: {getattr(ckpt.config, k)})"
                 for k, v in _requested(args).items() if getattr(ckpt.config, k) != v]
    if conflicts:
        raise ValueError("cannot resume with settings that differ from the checkpoint's: "
                         + "; ".join(conflicts) + ". Drop those flags to resume")
    out = Path(args.out) if args.out else ckpt.path.parent
    if out.resolve() != ckpt.path.parent.resolve():
        _check_out(out, args.force)
    restore_rng_state(ckpt.rng_state)
    return _Run(ckpt.config, ckpt.vocab, ckpt.lm, ckpt.history, ckpt.corpus_text, out)


def _prefixes(requested, vocab, text):
    """The log's prefixes: the given ones (checked now, not after an epoch) or defaults."""
    if requested:
        for prefix in requested:
            missing = "".join(dict.fromkeys(c for c in prefix if c not in vocab))
            if missing:
                raise ValueError(f"--prefix {prefix!r}: character(s) {missing!r} are not in "
                                 "the corpus")
            if not prefix:
                raise ValueError("--prefix must not be empty")
        return list(requested)
    if all(c in vocab for p in BOOK_PREFIXES for c in p):
        return list(BOOK_PREFIXES)
    return [text[:2]]


def _postfix(history):
    postfix = {"perplexity": f"{history.perplexity[-1]:.3f}"}
    if history.valid_perplexity[-1] is not None:
        postfix["valid"] = f"{history.valid_perplexity[-1]:.3f}"
    return postfix


def _epoch_end(args, run, bar, last_epoch, prefixes):
    """``on_epoch_end``: reseed MXNet, print the book's lines, advance the bar, save."""
    config, vocab = run.config, run.vocab
    log_lines = book_logger(run.lm, args.period, args.pred_len, prefixes,
                            vocab.idx_to_token, vocab.token_to_idx)

    def on_epoch_end(epoch, history):
        # MXNet's state cannot be saved: both an uninterrupted and a resumed run
        # reseed it here, so they agree from the next epoch on (checkpoint.py).
        mx.random.seed(mxnet_seed(config.seed, epoch))
        with tqdm.external_write_mode(file=sys.stdout):
            log_lines(epoch, history)
        bar.set_postfix(_postfix(history), refresh=False)
        bar.update(1)
        if epoch % args.save_every == 0 or epoch == last_epoch:
            save_checkpoint(run.checkpoint, config, vocab, run.lm, history, run.corpus_text,
                            capture_rng_state(mxnet_seed(config.seed, epoch)))
    return on_epoch_end


def _describe(run, first, last, n_train, n_valid):
    source = run.config.corpus or "the Jay Chou lyrics"
    held = f", {n_valid} held out" if n_valid else ""
    return (f"lyricnn: training {run.config.describe()}, "
            f"{len(run.corpus_text)} characters of {source} ({n_train} training{held}), "
            f"epochs {first}..{last}, checkpoint in {run.checkpoint}")


def cmd_train(args):
    ctx = resolve_ctx(args.ctx)
    run = _resume(args, ctx) if args.resume else _start(args, ctx)
    done = run.history.epoch[-1] if run.history.epoch else 0
    if done >= args.epochs:
        print(f"lyricnn: {run.checkpoint} has {done} epochs already, --epochs is "
              f"{args.epochs}: nothing to train", file=sys.stderr)
        return 0
    config = run.config
    train_idx, valid_idx = config.split(run.vocab.to_indices(run.corpus_text))
    is_random = config.sampler == "random"
    # Samplers validate when called: a corpus too short for one minibatch fails now.
    (data_iter_random if is_random else data_iter_consecutive)(train_idx, config.batch,
                                                               config.steps)
    prefixes = _prefixes(args.prefix, run.vocab, run.corpus_text)
    print(_describe(run, done + 1, args.epochs, len(train_idx),
                    len(valid_idx) if valid_idx else 0), file=sys.stderr)
    bar = tqdm(total=args.epochs, initial=done, unit="epoch", file=sys.stderr,
               disable=args.no_progress, dynamic_ncols=True)
    try:
        train_epochs(run.lm, train_idx, is_random, config.steps, config.batch, config.lr,
                     config.clip, range(done + 1, args.epochs + 1), history=run.history,
                     valid_indices=valid_idx,
                     on_epoch_end=_epoch_end(args, run, bar, args.epochs, prefixes))
    except TrainingDiverged as err:
        saved = (f"the last checkpoint is in {run.checkpoint}" if is_checkpoint(run.checkpoint)
                 else "no checkpoint was saved")
        raise TrainingDiverged(f"{err} ({saved})") from None
    finally:
        bar.close()
        if args.plot and run.history.epoch:
            plot_history(run.history, run.out / PLOT_NAME,
                         title=f"{config.model}, {config.hidden} hidden units")
    print(f"lyricnn: checkpoint (epoch {run.history.epoch[-1]}) in {run.checkpoint}"
          + (f", plot in {run.out / PLOT_NAME}" if args.plot else ""), file=sys.stderr)
    return 0


# -- generate and score -----------------------------------------------------------

def cmd_generate(args):
    ckpt = load_checkpoint(args.checkpoint, resolve_ctx(args.ctx))
    vocab = ckpt.vocab
    for prefix in args.prefix:
        print(ckpt.lm.predict(prefix, args.length, vocab.idx_to_token, vocab.token_to_idx,
                              strategy=args.strategy, temperature=args.temperature,
                              top_k=args.top_k, seed=args.seed), flush=True)
    return 0


def _print_ranking(ranked):
    print(f"{'rank':>4}  {'log_prob':>10}  {'perplexity':>10}  text")
    for i, (text, logp) in enumerate(ranked, start=1):
        try:
            ppl = math.exp(-logp / (len(text) - 1))
        except OverflowError:
            ppl = math.inf
        print(f"{i:>4}  {logp:>10.4f}  {ppl:>10.3f}  {text}")


def _ngram_scorer(ngram):
    """``log P(text[1:] | text[0])``: conditioned like the RNN, so the two rank alike."""
    return lambda text: float(ngram.token_log_probs(text)[1:].sum())


def cmd_score(args):
    ckpt = load_checkpoint(args.checkpoint, resolve_ctx(args.ctx))
    # Rank everything before printing anything: a bad string fails with no partial table.
    tables = [(f"# {ckpt.config.model} checkpoint {ckpt.path} (epoch {ckpt.epoch}): "
               "natural-log P(text[1:] | text[0])",
               rank(args.texts, scorer(ckpt.lm, ckpt.vocab.token_to_idx)))]
    if args.ngram_order:
        train_text, _ = ckpt.split_text()
        ngram = NGramLM(args.ngram_order, "kneser-ney").fit(train_text)
        tables.append((f"# {args.ngram_order}-gram Kneser-Ney on the checkpoint's "
                       f"{len(train_text)} training characters: natural-log "
                       "P(text[1:] | text[0])", rank(args.texts, _ngram_scorer(ngram))))
    for title, ranked in tables:
        print(title)
        _print_ranking(ranked)
    return 0


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


def _error(args, message, code):
    print(f"lyricnn {args.command}: error: {message}", file=sys.stderr)
    return code


def main(argv=None):
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help (0) or a usage error (2): return, don't exit
        return exit_.code if isinstance(exit_.code, int) else 2
    with _log_to_stderr(args.verbose):
        try:
            return args.handler(args)
        except TrainingDiverged as err:
            return _error(args, err, 1)
        except CheckpointError as err:
            return _error(args, f"bad checkpoint: {err}", 1)
        except (ValueError, FileNotFoundError) as err:
            return _error(args, err, 2)
        except OSError as err:
            return _error(args, err, 1)
        except mx.base.MXNetError as err:  # MXNet's messages carry a C++ trace: keep line 1
            return _error(args, str(err).strip().splitlines()[0], 1)
        except KeyboardInterrupt:
            return _error(args, "interrupted", 130)


if __name__ == "__main__":
    sys.exit(main())
