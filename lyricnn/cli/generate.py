from lyricnn.cli.common import UsageError, _add_checkpoint, _add_ctx, _checked, _load, _prefixes
"""TODO docstring (cli.generate, from cli.py)."""
# Only the standard library at import time: the console script imports this
# module before main() can install its signal handlers, and a Ctrl-C while
# MXNet loads must still end in one line, not a traceback.  Importing
# lyricnn.cli runs lyricnn/__init__.py first, which sets OMP_NUM_THREADS
# before MXNet loads.


def _add_generate(sub):
    from lyricnn.checks import check_int, check_number
    from lyricnn.decoding.generate import MAX_LENGTH, STRATEGIES

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


def cmd_generate(args, signals):
    from lyricnn.decoding.generate import generate

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
    from lyricnn.data.tokenize import UNK
    from lyricnn.data.words import tokenize_lines
    words = tokenize_lines(prefix, ckpt.config.tokenizer, eos=False)
    if not words:
        raise UsageError(f"--prefix {prefix!r} has no words")
    unknown = [w for w in words if w not in ckpt.vocab]
    if unknown and UNK not in ckpt.vocab:
        raise UsageError(f"--prefix {prefix!r}: word(s) {unknown!r} are not in the vocabulary")
    return [w if w in ckpt.vocab else UNK for w in words]
