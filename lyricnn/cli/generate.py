"""``lyricnn generate``: continue prefixes with a trained model through the decoding engine."""
import json

from lyricnn.checks import check_int, check_number
from lyricnn.cli.common import (UsageError, add_checkpoint, add_ctx, add_mixture, checked, load,
                                model_of)
from lyricnn.decoding.engine import LINE_LENGTH, MAX_CANDIDATES, MAX_LENGTH, Options
from lyricnn.decoding.originality import shown
from lyricnn.run.task import Task, task_of


def _number(name, low=None, high=None, **kw):
    return checked(lambda v: check_number(name, v, low, high, **kw))


def _int(name, low=0, high=None, **kw):
    return checked(lambda v: check_int(name, v, low, high, **kw))


def add_parser(sub):
    p = sub.add_parser(
        "generate", help="continue prefixes with a trained model",
        description="Continue each --prefix with a checkpoint's model (book 6.4.3): greedy "
                    "by default (the book), or sampled, or by beam search, with the samplers "
                    "and constraints below. Tokens are characters for a character-level "
                    "model and words for a word-level one. Plain output: the prefix and its "
                    "continuation, one per candidate; --json: one JSON object per line.")
    add_checkpoint(p)
    p.add_argument("--prefix", action="append", default=[], metavar="TEXT",
                   help="text to continue; repeat for several (optional with --acrostic)")
    p.add_argument("--length", default=50, metavar="N", type=_int(
        "length", 0, MAX_LENGTH, hint="each token is one model step; generate in parts"),
        help=f"tokens (characters or words) to generate after each prefix, at most (default "
             f"50, at most {MAX_LENGTH})")
    p.add_argument("-n", "--num-candidates", dest="n", default=1, metavar="N",
                   type=_int("num_candidates", 1, MAX_CANDIDATES),
                   help=f"candidates per prefix, generated as one batch (at most "
                        f"{MAX_CANDIDATES})")
    g = p.add_argument_group("choosing each token")
    g.add_argument("--strategy", choices=("greedy", "sample"), default="greedy",
                   help="greedy: the most likely token (the book); sample: draw from the "
                        "softmax (the options below)")
    g.add_argument("--temperature", default=1.0, metavar="T", type=_number("temperature", 0),
                   help="softmax temperature when sampling; 0 is greedy (default 1)")
    g.add_argument("--top-k", metavar="K", type=_int("top_k", 1),
                   help="sample among the K most likely tokens only (1 is greedy)")
    g.add_argument("--top-p", default=1.0, metavar="P",
                   type=_number("top_p", 0, 1, low_open=True),
                   help="nucleus: the most likely tokens holding P of the mass (default 1)")
    g.add_argument("--min-p", default=0.0, metavar="P", type=_number("min_p", 0, 1),
                   help="drop tokens less likely than P times the most likely (default 0)")
    g.add_argument("--seed", metavar="N", type=_int("seed", 0, 2**63 - 1 - MAX_CANDIDATES),
                   help="seed of candidate 1; candidate i gets seed + i - 1, and that seed "
                        "alone reproduces it (default: a random one, printed with --json)")
    g.add_argument("--beam-width", default=0, metavar="W",
                   type=_int("beam_width", 0, MAX_CANDIDATES),
                   help="beam search of W beams: the most likely continuations (-n of them)")
    g.add_argument("--length-penalty", default=1.0, metavar="A",
                   type=_number("length_penalty", 0, 10),
                   help="beam search ranks by log_prob / length**A (default 1)")
    r = p.add_argument_group("repetition")
    r.add_argument("--repetition-penalty", default=1.0, metavar="X",
                   type=_number("repetition_penalty", 0, low_open=True),
                   help="> 1 discourages tokens among the last --repetition-last-n")
    r.add_argument("--repetition-last-n", default=64, metavar="N",
                   type=_int("repetition_last_n", 0), help="0: the whole text (default 64)")
    r.add_argument("--presence-penalty", default=0.0, metavar="X",
                   type=_number("presence_penalty", -2, 2),
                   help="OpenAI's: subtract X from every token already generated")
    r.add_argument("--frequency-penalty", default=0.0, metavar="X",
                   type=_number("frequency_penalty", -2, 2),
                   help="OpenAI's: subtract X per time a token was generated")
    r.add_argument("--no-repeat-ngram", default=0, metavar="N", type=_int("no_repeat_ngram"),
                   help="never repeat an N-gram")
    r.add_argument("--dry-multiplier", default=0.0, metavar="X",
                   type=_number("dry_multiplier", 0),
                   help="DRY: penalise a token that extends a repeat (0: off; try 0.8); a "
                        "repeat never spans a line end, so a chorus may come back")
    r.add_argument("--dry-base", default=1.75, metavar="B", type=_number("dry_base", 1, 8),
                   help="DRY: the penalty is X * B ** (repeat length - allowed) (default 1.75)")
    r.add_argument("--dry-allowed-length", default=2, metavar="N",
                   type=_int("dry_allowed_length", 1),
                   help="DRY: repeats this long are free (default 2)")
    c = p.add_argument_group("constraints")
    c.add_argument("--ban", default="", metavar="TOKENS",
                   help="characters (words, space-separated, for a word model) never to "
                        "generate")
    c.add_argument("--stop", action="append", default=[], metavar="TEXT",
                   help="end a candidate where TEXT appears (not included); at most 4")
    c.add_argument("--lines", default=0, metavar="N", type=_int("lines", 0, MAX_LENGTH),
                   help="end after N lines (line ends: the newline if the model kept them, "
                        "--keep-newlines; else the space; <eos> for words)")
    c.add_argument("--line-length", default=LINE_LENGTH, metavar="N",
                   type=_int("line_length", 1, MAX_LENGTH),
                   help=f"with --lines or --acrostic, a line ends after N tokens (default "
                        f"{LINE_LENGTH})")
    c.add_argument("--acrostic", metavar="TEXT",
                   help="藏头: each line after the prefix's own starts with the next "
                        "character of TEXT (word of TEXT, for words); ends after the last")
    c.add_argument("--max-copy", default=0, metavar="N", type=_int("max_copy", 0),
                   help="never copy more than N tokens in a row verbatim from the training "
                        "text (0: no guard); it guards verbatim copies only, not near-copies")
    c.add_argument("--unknown", choices=Task.UNKNOWN, default="error",
                   help="prefix tokens outside the vocabulary: refuse them (default), skip "
                        "them, or read them as <unk> (word models)")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per candidate: prefix, text, tokens, log_prob "
                        "(natural log of P(tokens | prefix)), seed, finish_reason, and its "
                        "originality against the training text: longest_copy, copied_spans "
                        "(with their source lines), duplication, novel_ngram_fraction "
                        "(n = 1..10) beside human_novel_ngram_fraction, the same curve for "
                        "the held-out text")
    add_mixture(p)
    add_ctx(p)
    p.set_defaults(handler=run)


def options_of(args, encode):
    """The engine's ``Options`` from the flags; ``encode(text, name)`` gives token ids."""
    sampling = args.strategy == "sample"
    return Options(
        max_tokens=args.length, temperature=args.temperature if sampling else 0.0,
        top_k=args.top_k, top_p=args.top_p, min_p=args.min_p,
        repetition_penalty=args.repetition_penalty, repetition_last_n=args.repetition_last_n,
        presence_penalty=args.presence_penalty, frequency_penalty=args.frequency_penalty,
        no_repeat_ngram=args.no_repeat_ngram, dry_multiplier=args.dry_multiplier,
        dry_base=args.dry_base, dry_allowed_length=args.dry_allowed_length,
        beam_width=args.beam_width, length_penalty=args.length_penalty,
        banned=encode(args.ban, "--ban") if args.ban else (), stop=tuple(args.stop),
        lines=args.lines, line_length=args.line_length, max_copy=args.max_copy,
        acrostic=encode(args.acrostic, "--acrostic") if args.acrostic else ())


def run(args, signals):
    ckpt = load(args)
    config, vocab, task = ckpt.config, ckpt.vocab, task_of(ckpt.config)
    if not args.prefix and not args.acrostic:
        raise UsageError("give at least one --prefix (or an --acrostic, which needs none)")
    if args.beam_width and args.n > args.beam_width:
        raise UsageError(f"-n {args.n} is more than --beam-width {args.beam_width}: beam "
                         "search returns at most its width")
    if args.top_k is not None and args.top_k > len(vocab):
        raise UsageError(f"--top-k must be at most the vocabulary size ({len(vocab)}), got "
                         f"{args.top_k}")

    def encode(text, name, unknown="error", empty=False):
        try:
            return task.encode(config, vocab, text, name, unknown=unknown, empty=empty)
        except ValueError as err:
            raise UsageError(str(err)) from None
    # Check everything before printing anything: no half-done output on an error.
    try:
        options = options_of(args, encode).checked(len(vocab))
    except ValueError as err:
        raise UsageError(str(err)) from None
    prefixes = [(p, encode(p, f"--prefix {p!r}", args.unknown, empty=bool(args.acrostic)))
                for p in (args.prefix or [""])]
    index = baseline = None
    if args.json or args.max_copy:
        index, baseline = task.originality(config, vocab, ckpt.corpus_text)
    decoder = task.decoder(config, vocab, model_of(args, ckpt), index)
    joiner = task.separator(config)
    for text, ids in prefixes:
        candidates = decoder.generate(ids, options, n=args.n, seed=args.seed,
                                      should_stop=signals.stop_requested)
        for c in candidates:
            if args.json:
                record = {**_record(text, ids, c, vocab),
                          **originality(index, baseline, c.tokens, vocab, joiner)}
                print(json.dumps(record, ensure_ascii=False), flush=True)
            else:
                print(_plain(text, ids, c, vocab, task.separator(config)), flush=True)
        if signals.stop_requested():
            return signals.exit_code
    return 0


def _plain(prefix, ids, candidate, vocab, joiner):
    """As before the engine: the prefix's tokens, then the continuation."""
    head = joiner.join(vocab.to_tokens(ids))
    if head and candidate.text and joiner and not candidate.text.startswith("\n"):
        return head + joiner + candidate.text.lstrip(joiner)
    return head + candidate.text


def _record(prefix, ids, candidate, vocab):
    return {"prefix": prefix, "text": candidate.text,
            "tokens": vocab.to_tokens(candidate.tokens), "log_prob": candidate.log_prob,
            "seed": candidate.seed, "finish_reason": candidate.finish_reason}


def originality(index, baseline, tokens, vocab, joiner):
    """A candidate's originality fields: its copies of the training text, with the text of
    each copy's source line, and its novelty curve beside the human baseline."""
    return shown(index, index.report(tokens), baseline,
                 lambda ids: joiner.join(vocab.to_tokens(ids.tolist())))
