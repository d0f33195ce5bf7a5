"""Word-level Penn Treebank: train an LSTM language model and report test perplexity.

The recipes of the results table (docs/RESULTS.md, "Word-level Penn Treebank"):

    python examples/ptb_word_lm.py --recipe small      # Zaremba et al. "small", 13 epochs
    python examples/ptb_word_lm.py --recipe rnn --max-minutes 6     # a tanh RNN
    python examples/ptb_word_lm.py --recipe tied --max-minutes 58   # tied + dropout, < 1 hour

The time-budget recipes (issue 23) run the command line itself, as a user would:
``lyricnn train --max-minutes M`` with the recipe's flags (``_WORD_LANGUAGE_MODEL``
and an anneal), then ``lyricnn evaluate --split test`` of its ``best/`` in a fresh
process; they print both commands, the validation curve, the test perplexity, the wall
time, the peak resident memory of the two processes and the machine:

    python examples/ptb_word_lm.py --budget 60 --out runs/ptb-60
    python examples/ptb_word_lm.py --budget 120 --out runs/ptb-120
    python examples/ptb_word_lm.py --budget 60 --print      # the commands (timed first)
    python examples/ptb_word_lm.py --budget 60 --schedule fixed  # as published
    python examples/ptb_word_lm.py --budget 120 --dynamic   # + lyricnn evaluate --dynamic

A budget's learning-rate anneal is sized to the epochs this machine buys: the example
first times the recipe's model here (about 30 s: a hundred minibatches and a slice of
the validation split, in a process of its own), and from that picks ``--decay-from`` and
``--lr-decay`` by the rule of the measured runs (``ANNEALS``); ``--schedule fixed``
runs the published commands as they are.

"small" is Zaremba et al. (2014)'s non-regularised 2x200 LSTM: 20 steps, batch
20, lr 1 for 4 epochs then halved every epoch, 13 epochs, clipping 5 on the
loss summed over the 20 steps.  lyricnn's loss is the per-token mean, so the
same updates are lr 20 and clipping 0.25 here (both scaled by num_steps).

Every epoch prints its learning rate, training and validation perplexity,
seconds and tokens/s; the end prints the test perplexity of the epoch with the
best validation perplexity (the model word_language_model keeps), the wall
time and the process's peak resident memory.
"""
import argparse
import dataclasses
import json
import platform
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import lyricnn  # first: it sets MXNet's OpenMP threads, which MXNet reads when it loads
from mxnet import nd
from lyricnn.context import set_seed
from lyricnn.training.evaluate import EVAL_BATCH_SIZE, evaluate_perplexity
from lyricnn.models.word import build_word_lm
from lyricnn.data.words import load_ptb_corpus
from lyricnn.run.task import train_word_lm

RECIPES = {
    # Zaremba et al. "small": no dropout, fixed schedule (halve after epoch 4).
    "small": dict(cell="lstm", num_layers=2, num_hiddens=200, embed_size=200, dropout=0.0,
                  tied=False, num_steps=20, batch_size=20, lr=20.0, clipping_theta=0.25,
                  lr_decay=2.0, decay_from=4, epochs=13),
    # The chapter's recurrent network at word level: one tanh RNN layer, plateau annealing.
    # lr 2: at the LSTMs' lr 20 it diverged (perplexity 7.6e5 after epoch 1, measured).
    "rnn": dict(cell="rnn_tanh", num_layers=1, num_hiddens=200, embed_size=200, dropout=0.0,
                tied=False, num_steps=35, batch_size=20, lr=2.0, clipping_theta=0.25,
                lr_decay=4.0, decay_from=0, epochs=40),
    # Tied (Press & Wolf 2017; Inan et al. 2017) and dropout-regularised (Zaremba et al.),
    # sized for an hour on 2 CPU cores: 2 x 300 ran ~2,650 tokens/s, 9 epochs in 55 min
    # (2 x 400 ran 1,900) -- both measured while this script imported MXNet first, on one
    # thread of two (docs/RESULTS.md, "Process tuning"). Annealed on a fixed schedule (/1.6
    # each epoch after epoch 5):
    # validation still improved every epoch at lr 20 (188 -> 107 over epochs 1-5), so a
    # plateau rule (/4 when it stalls) would anneal too late for a one-hour budget.
    "tied": dict(cell="lstm", num_layers=2, num_hiddens=300, embed_size=300, dropout=0.3,
                 tied=True, num_steps=35, batch_size=20, lr=20.0, clipping_theta=0.25,
                 lr_decay=1.6, decay_from=5, epochs=40),
}


#: The time-budget recipes, as ``lyricnn train`` flags, each annealed on a fixed schedule
#: sized to its budget (a plateau rule anneals too late for a short budget). The schedule is
#: in epochs (reproducible, unlike one in minutes: the printed command is the whole run), so
#: it fits the CPU it was measured on; ``--schedule measured`` (the default) resizes it to
#: the epochs this machine buys (``measure_epoch``, ``anneal``).
#:
#: Both are PyTorch word_language_model's tied 2 x 650 recipe -- the full softmax, plain
#: dropout 0.5 (a fresh mask per position) on the embeddings, between the layers and before
#: the decoder, lr 20, clipping 0.25 -- with a fixed anneal in place of its plateau rule.
#: They replaced AWD-style recipes (tied 2 x 450 or 2 x 650, adaptive softmax, locked
#: dropout, weight drop, AR/TAR: 84.25 in 60 minutes on an Intel Xeon, 82.08-84.59 in five
#: two-hour runs) because AWD's regularisers, tuned for hundreds of epochs, slow learning
#: more than a few dozen can repay: validation 93.90 after 9 epochs here against 105.49 for
#: the same width under them. docs/RESULTS.md has the curves.
_WORD_LANGUAGE_MODEL = ["--tokens", "word", "--corpus", "ptb", "--model", "lstm",
                        "--num-layers", "2", "--num-hiddens", "650", "--embed", "650",
                        "--tied", "--dropout", "0.5", "--num-steps", "35", "--batch-size",
                        "20", "--lr", "20", "--clipping-theta", "0.25", "--epochs", "1000"]
#: The published schedules (``--schedule fixed``), as measured on the AMD EPYC, 2 vCPUs:
#: 60 minutes, 17 epochs, test 77.92: lr 20 for 11 epochs, then /1.5; 120 minutes, 32
#: epochs, test 75.84: lr 20 for 13 epochs, then /1.3. Not run on the Intel Xeon, which
#: buys about 10 epochs of the model an hour; the AWD-style recipe reached 84.25 there.
FIXED_SCHEDULES = {60: ["--decay-from", "11", "--lr-decay", "1.5"],
                   120: ["--decay-from", "13", "--lr-decay", "1.3"]}

#: The rule of the two measured runs (AMD EPYC, 2 vCPUs; docs/RESULTS.md, issue 23): budget
#: -> (the share of its whole epochs trained at the full rate, the last epoch's rate over
#: the first's). 60 minutes bought 17 epochs, lr 20 for 11, then /1.5 down to 20 / 1.5^6;
#: 120 minutes bought 32, lr 20 for 13, then /1.3 down to 20 / 1.3^19. ``anneal`` gives
#: exactly those flags at 17 and 32 epochs. On a CPU that buys fewer epochs (the Intel Xeon
#: of the earlier sessions: about 10 an hour) the rule keeps both the share and the final
#: rate; whether that is the best anneal there is not measured.
ANNEALS = {60: (11 / 17, 1.5 ** -6), 120: (13 / 32, 1.3 ** -19)}


def anneal(budget, epochs):
    """``(decay_from, lr_decay)`` for a run of ``epochs`` whole epochs under ``budget``'s
    rule (``ANNEALS``): the full rate for ``share`` of them, then divided by ``lr_decay``
    every epoch so that the last trains at ``fall`` times the first's rate. Fewer than
    two epochs: no anneal (``lr_decay`` 1)."""
    share, fall = ANNEALS[budget]
    decay_from = max(1, round(share * epochs))
    if epochs - decay_from < 1:
        return max(1, epochs), 1.0
    return decay_from, float(f"{fall ** (-1 / (epochs - decay_from)):.6g}")


def epoch_seconds(measured):
    """One epoch's seconds from ``measure_epoch``'s figures: its training pass at the
    measured rate and its held-out evaluation."""
    return measured["train_tokens"] / measured["tokens_per_s"] + measured["valid_seconds"]


def whole_epochs(budget, measured):
    """The whole epochs ``budget`` minutes buy, from ``measure_epoch``'s figures (what
    starting the process costs once, then per epoch: its training pass at the measured
    rate and its held-out evaluation), and no more than the run's ``--epochs``. (Two
    saves an epoch are not counted, a second or so against ~230; the process's start
    is counted though ``--max-minutes``' clock starts after it: the two roughly cancel,
    and the one 60-minute run made the 15 epochs predicted.)"""
    fits = max(0, int((60 * budget - measured["startup_seconds"]) // epoch_seconds(measured)))
    return min(fits, measured.get("epochs", fits))


def measure_epoch(flags, warmup=50, minibatches=50):
    """This machine's time for ``lyricnn train FLAGS``: the training rate (tokens/s) of
    ``minibatches`` minibatches after ``warmup`` untimed, through the library's loop on the
    run's own model and corpus; the held-out evaluation of the validation split (timed on a
    tenth of it, after a warm-up call); and how long all that timing took (the rest of the
    process's life is what starting a run costs). Run in a process of its own
    (``--measure``), so that the training run starts on a fresh one."""
    import itertools
    import mxnet as mx
    from lyricnn.checks import check_indices
    from lyricnn.cli.common import corpus_of, corpus_text
    from lyricnn.cli.main import build_parser
    from lyricnn.run.config import LEVEL_TRAIN_DEFAULTS, RunConfig, TrainSettings
    from lyricnn.run.task import task_of
    from lyricnn.training.loop import run_epoch
    from lyricnn.tuning import retain_freed_memory
    retain_freed_memory()                        # as lyricnn train does
    args = build_parser().parse_args(["train", *flags])
    config = RunConfig.from_args(args)
    epochs = TrainSettings.from_args(args, LEVEL_TRAIN_DEFAULTS[config.tokens]).num_epochs
    text = corpus_text(config)
    corpus = corpus_of(config, text)
    config = config.with_corpus(text, len(corpus.vocab))
    task = task_of(config)
    set_seed(config.seed)
    lm = task.build_model(config, mx.cpu())
    train = check_indices("train", corpus.train, lm.vocab_size)
    available = (len(train) - 1) // (config.batch_size * config.num_steps)
    if available < 2:
        raise ValueError(f"the training split makes {available} minibatch(es) of --batch-size "
                         f"{config.batch_size} x --num-steps {config.num_steps}: too few to "
                         "time; give smaller ones, or --schedule fixed")
    warmup, minibatches = min(warmup, available // 2), min(minibatches, available - available // 2)
    batches = iter(task.batches(config, train, lm.ctx)())
    timing = time.perf_counter()
    run_epoch(lm, itertools.islice(batches, warmup), True, config.lr, config.clipping_theta)
    counted = []
    started = time.perf_counter()
    run_epoch(lm, itertools.islice(batches, minibatches), True, config.lr,
              config.clipping_theta, on_batch=counted.append)   # returns a float: synchronised
    train_seconds = time.perf_counter() - started
    valid_seconds = 0.0
    if corpus.valid is not None:
        valid = check_indices("valid", corpus.valid, lm.vocab_size)
        tenth = valid[:max(len(valid) // 10, 2 * config.num_steps)]
        task.evaluator(config, tenth[:len(tenth) // 4])(lm)   # warm-up: the first call builds
        started = time.perf_counter()
        task.evaluator(config, tenth)(lm)
        valid_seconds = (time.perf_counter() - started) * len(valid) / len(tenth)
    return {"train_tokens": len(train), "tokens_per_s": sum(counted) / train_seconds,
            "valid_seconds": valid_seconds, "timed_seconds": time.perf_counter() - timing,
            "epochs": epochs, "max_minutes": args.max_minutes}


def measured_schedule(budget, flags):
    """``measure_epoch`` of ``lyricnn train FLAGS`` in a fresh process, then ``anneal``'s
    flags for the whole epochs ``budget`` buys here; one line on stdout says what was
    measured and chosen."""
    started = time.monotonic()
    child, interrupted = run_child([sys.executable, __file__, "--measure", "--",
                                    *map(str, flags)], capture_output=True, text=True)
    if interrupted:
        print("ptb_word_lm.py: interrupted while timing the model; nothing was trained",
              file=sys.stderr)
        raise SystemExit(130)
    try:
        measured = json.loads(child.stdout.strip().splitlines()[-1]) if child.returncode == 0 \
            else None
    except (IndexError, ValueError):
        measured = None
    if measured is None:
        lines = child.stderr.strip().splitlines() or [f"exit code {child.returncode}"]
        if any(line.startswith("Traceback") for line in lines):
            print(child.stderr, file=sys.stderr, end="")        # a fault: all of it
        print(f"ptb_word_lm.py: timing the recipe failed: {lines[-1]} (--schedule fixed runs "
              "the published anneal without timing)", file=sys.stderr)
        raise SystemExit(child.returncode or 1)
    measured["startup_seconds"] = time.monotonic() - started - measured.pop("timed_seconds")
    minutes = measured.pop("max_minutes") or budget    # a --max-minutes after -- wins
    epochs = whole_epochs(minutes, measured)
    decay_from, lr_decay = anneal(budget, epochs)
    capped = " (--epochs)" if epochs == measured.get("epochs") else ""
    rate = "constant" if lr_decay == 1 else f"full for {decay_from}, then /{lr_decay:g}"
    print(f"measured here: {measured['tokens_per_s']:,.0f} tokens/s, about "
          f"{epoch_seconds(measured):.0f} s an epoch with validation: about {epochs} whole epochs{capped} in {minutes:g} "
          f"minutes, so lr {rate}", flush=True)
    if epochs == 0:   # the run would save nothing to evaluate
        print(f"ptb_word_lm.py: no whole epoch of this model fits in {minutes:g} minutes "
              "here: give a longer --max-minutes or a smaller model after --", file=sys.stderr)
        raise SystemExit(2)
    return ["--decay-from", str(decay_from), "--lr-decay", f"{lr_decay:g}"]


def run_child(argv, **kwargs):
    """``subprocess.run(argv)`` with Ctrl-C left to the child; ``(the CompletedProcess,
    whether Ctrl-C came)``. A terminal's Ctrl-C reaches the whole process group: ``lyricnn
    train`` then saves its last whole epoch and exits 130 -- unless this process's
    ``KeyboardInterrupt`` made ``subprocess.run`` kill it first (it does, on any exception)
    and printed a traceback."""
    came = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: came.append(signum))
    try:
        return subprocess.run(argv, **kwargs), bool(came)
    finally:
        signal.signal(signal.SIGINT, previous)


def lyricnn_command(*args):
    """The ``lyricnn`` command line, run by this interpreter (its venv's lyricnn)."""
    return [sys.executable, "-m", "lyricnn.cli", *map(str, args)]


def run_budget(budget, out, extra, print_only=False, dynamic=False, schedule="measured"):
    """``lyricnn train`` of the ``budget``-minute recipe, then ``lyricnn evaluate`` of its
    best/ on the test split, each a process of its own; a report on stdout. ``dynamic``:
    then also ``lyricnn evaluate --dynamic`` (dynamic evaluation, about 8 minutes on PTB's
    test split here: a figure reported beside the static one). ``schedule`` "measured":
    the anneal sized to this machine (``measured_schedule``) unless ``extra`` sets it;
    "fixed": the published one (``FIXED_SCHEDULES``)."""
    anneal_flags = FIXED_SCHEDULES[budget]
    given = {str(flag).split("=", 1)[0] for flag in extra}
    if schedule == "measured" and not {"--decay-from", "--lr-decay"} & given:
        anneal_flags = measured_schedule(budget, _WORD_LANGUAGE_MODEL + list(extra))
    train = ["train", *_WORD_LANGUAGE_MODEL, *anneal_flags, "--max-minutes", budget,
             "--out", out, "--force", *extra]
    evaluate = ["evaluate", "--checkpoint", Path(out) / "best", "--split", "test"]
    commands = [train, evaluate] + ([evaluate + ["--dynamic"]] if dynamic else [])
    for command in commands:
        print("$ lyricnn " + " ".join(map(str, command)), flush=True)
    if print_only:
        return 0
    start = time.time()
    trained, interrupted = run_child(lyricnn_command(*train))
    train_minutes = (time.time() - start) / 60
    if trained.returncode != 0 or interrupted:   # lyricnn train said what it kept
        return trained.returncode or 130
    started = time.time()
    scored, interrupted = run_child(lyricnn_command(*evaluate), capture_output=True, text=True)
    print(scored.stdout.strip(), flush=True)
    if scored.returncode != 0 or interrupted:
        print(scored.stderr.strip(), file=sys.stderr)
        return scored.returncode or 130
    history = json.loads((Path(out) / "checkpoint" / "history.json").read_text())
    curve = ", ".join(f"{v:.2f}" for v in history["valid_perplexity"])
    best = json.loads((Path(out) / "best" / "history.json").read_text())
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"budget {budget} min: {len(history['epoch'])} whole epochs; validation "
          f"perplexity by epoch: {curve}; best epoch {best['epoch'][-1]}; averaged updates "
          f"at the end {history['averaged'][-1]:,}", flush=True)
    print(f"training {train_minutes:.1f} min on the wall, test evaluation "
          f"{time.time() - started:.0f} s; peak RSS {peak:,.0f} MiB (the larger of the two "
          f"processes); machine: {machine()}", flush=True)
    if dynamic:
        started = time.time()
        scored, interrupted = run_child(lyricnn_command(*evaluate, "--dynamic"),
                                        capture_output=True, text=True)
        print(scored.stdout.strip(), flush=True)
        if scored.returncode != 0 or interrupted:
            print(scored.stderr.strip(), file=sys.stderr)
            return scored.returncode or 130
        print(f"dynamic evaluation {time.time() - started:.0f} s", flush=True)
    return 0


def machine():
    """The CPU model and core count (Linux: /proc/cpuinfo)."""
    try:
        names = [line.split(":", 1)[1].strip() for line in
                 Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")]
        return f"{names[0]}, {len(names)} vCPUs"
    except (OSError, IndexError):
        return platform.processor() or platform.machine()


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="small")
    parser.add_argument("--budget", type=int, choices=sorted(FIXED_SCHEDULES), default=None,
                        help="run the time-budget recipe of this many minutes through the "
                             "lyricnn command (the other flags above do not apply; add "
                             "lyricnn train flags after --)")
    parser.add_argument("--out", default=None, help="--budget: the run folder (default "
                                                    "runs/ptb-BUDGET)")
    parser.add_argument("--print", action="store_true",
                        help="--budget: print the commands and stop (having timed the "
                             "model first, unless --schedule fixed)")
    parser.add_argument("--dynamic", action="store_true",
                        help="--budget: also evaluate best/ dynamically (lyricnn evaluate "
                             "--dynamic)")
    parser.add_argument("--schedule", choices=("measured", "fixed"), default="measured",
                        help="--budget: size the anneal to the epochs this machine buys, "
                             "timed first (measured), or run the published schedule (fixed)")
    parser.add_argument("--measure", action="store_true",
                        help="time the model of the lyricnn train flags after -- on this "
                             "machine (100 minibatches and a tenth of the validation split); "
                             "print the figures as JSON and stop")
    for name, value in RECIPES["small"].items():
        kind = {bool: lambda s: s.lower() in ("1", "true", "yes")}.get(type(value), type(value))
        if name == "cell":
            kind = str
        parser.add_argument("--" + name.replace("_", "-"), type=kind, default=None,
                            help=f"override the recipe's {name}")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="start no epoch that would end after this many minutes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, metavar="N",
                        help="use the first N tokens of each split (a quick dry run)")
    argv = list(sys.argv[1:] if argv is None else argv)
    cut = argv.index("--") if "--" in argv else len(argv)   # after --: lyricnn train flags
    args = parser.parse_args(argv[:cut])
    args.extra = argv[cut + 1:]
    recipe = dict(RECIPES[args.recipe])
    recipe.update({k: v for k, v in vars(args).items() if k in recipe and v is not None})
    return args, recipe


def main(argv=None):
    args, r = parse_args(argv)
    if args.measure:
        try:
            print(json.dumps(measure_epoch(args.extra)), flush=True)
        except ValueError as err:    # a bad value among the flags: one line, as lyricnn's
            print(f"lyricnn train: {err}", file=sys.stderr)
            return 2
        return 0
    if args.budget is not None:
        return run_budget(args.budget, args.out or f"runs/ptb-{args.budget}", args.extra,
                          args.print, args.dynamic, args.schedule)
    start = time.time()
    corpus = load_ptb_corpus()
    if args.limit:
        corpus = dataclasses.replace(corpus, **{split: getattr(corpus, split)[:args.limit]
                                                for split in ("train", "valid", "test")})
    set_seed(args.seed)
    lm = build_word_lm(r["cell"], corpus.vocab_size, r["embed_size"], r["num_hiddens"],
                       r["num_layers"], r["dropout"], r["tied"])
    print(f"{args.recipe}: {r}; {corpus}", flush=True)
    best = {"valid": float("inf"), "params": None, "epoch": 0}
    stop = {"now": False, "signal": None}
    # Ctrl-C / SIGTERM: stop at the next minibatch, report what was trained, no traceback.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda sig, frame: stop.update(now=True, signal=sig))
    progress = {"tokens": 0, "shown": time.time()}

    def on_batch(tokens):
        """A progress line on stderr every 30 s: an epoch of PTB takes minutes."""
        progress["tokens"] += tokens
        if time.time() - progress["shown"] >= 30:
            progress["shown"] = time.time()
            print(f"  ... {progress['tokens']:,} tokens trained, "
                  f"{(time.time() - start) / 60:.1f} min", file=sys.stderr, flush=True)

    def on_epoch_end(epoch, h):
        seconds = h.seconds[-1]
        print(f"epoch {epoch:2d}, lr {h.lr[-1]:.4g}, perplexity {h.perplexity[-1]:.2f}, "
              f"valid {h.valid_perplexity[-1]:.2f}, {seconds:.0f} s, "
              f"{len(corpus.train) / seconds:,.0f} tokens/s", flush=True)
        if h.valid_perplexity[-1] < best["valid"]:
            best.update(valid=h.valid_perplexity[-1], epoch=epoch,
                        params={k: v.copy() for k, v in lm.named_parameters().items()})
        elapsed = (time.time() - start) / 60
        if args.max_minutes and elapsed + (time.time() - start) / 60 / epoch > args.max_minutes:
            stop["now"] = True

    try:
        train_word_lm(lm, corpus.train, corpus.valid, range(1, r["epochs"] + 1),
                      batch_size=r["batch_size"], num_steps=r["num_steps"], lr=r["lr"],
                      clipping_theta=r["clipping_theta"], lr_decay=r["lr_decay"],
                      decay_from=r["decay_from"], seed=args.seed, on_epoch_end=on_epoch_end,
                      should_stop=lambda: stop["now"], on_batch=on_batch)
    except lyricnn.TrainingInterrupted:
        if stop["signal"] is not None:
            print(f"interrupted by {signal.Signals(stop['signal']).name}: evaluating the best "
                  f"epoch so far ({best['epoch']})", flush=True)
        else:
            print(f"stopped: the next epoch would end after --max-minutes {args.max_minutes}")
    if best["params"] is None:
        print("no epoch was completed: nothing to evaluate", flush=True)
        return 130 if stop["signal"] == signal.SIGINT else 143 if stop["signal"] else 0
    lm.load_named_parameters(best["params"])
    test = evaluate_perplexity(lm, corpus.test, EVAL_BATCH_SIZE, r["num_steps"])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"best epoch {best['epoch']}: valid perplexity {best['valid']:.2f}, "
          f"test perplexity {test:.2f}; wall time {(time.time() - start) / 60:.1f} min, "
          f"peak RSS {peak:,.0f} MiB", flush=True)
    nd.waitall()
    return 0


if __name__ == "__main__":
    sys.exit(main())
