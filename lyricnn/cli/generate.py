"""``lyricnn generate``: continue prefixes with a trained model (book 6.4.3)."""

from lyricnn.checks import check_int, check_number
from lyricnn.cli.common import UsageError, add_checkpoint, add_ctx, checked, load
from lyricnn.decoding.generate import MAX_LENGTH, STRATEGIES, generate
from lyricnn.run.task import task_of


def add_parser(sub):
    p = sub.add_parser("generate", help="continue prefixes with a trained model",
                       description="Print one continuation per --prefix, decoded from "
                                   "a checkpoint (book 6.4.3).")
    add_checkpoint(p)
    p.add_argument("--prefix", action="append", required=True, metavar="TEXT",
                   help="text to continue; repeat for several (one output line each)")
    p.add_argument("--length", default=50, metavar="N",
                   type=checked(lambda v: check_int(
                       "length", v, 0, MAX_LENGTH,
                       hint="each token is one model step; generate in parts")),
                   help=f"tokens (characters or words) to generate after each prefix "
                        f"(default 50, at most {MAX_LENGTH})")
    p.add_argument("--strategy", choices=STRATEGIES, default="greedy",
                   help="greedy: the most likely token (the book); sample: draw from the "
                        "softmax")
    p.add_argument("--temperature", default=1.0, metavar="T",
                   type=checked(lambda v: check_number("temperature", v, 0)),
                   help="softmax temperature for --strategy sample; 0 is greedy (default 1)")
    p.add_argument("--top-k", metavar="K", type=checked(lambda v: check_int("top_k", v, 1)),
                   help="sample among the K most likely tokens only (1 is greedy)")
    p.add_argument("--seed", metavar="N", type=checked(lambda v: check_int("seed", v, 0)),
                   help="seed for sampling; each prefix uses it afresh, so the same seed "
                        "gives the same text")
    add_ctx(p)
    p.set_defaults(handler=run)


def run(args, signals):
    ckpt = load(args)
    config, vocab, task = ckpt.config, ckpt.vocab, task_of(ckpt.config)
    # Check every prefix before printing any: no half-done output on an error.
    prefixes = []
    for prefix in args.prefix:
        try:
            indices = task.encode(config, vocab, prefix, f"--prefix {prefix!r}")
        except ValueError as err:
            raise UsageError(str(err)) from None
        prefixes.append(vocab.to_tokens(indices))
    if args.top_k is not None and args.top_k > len(vocab):
        raise UsageError(f"--top-k must be at most the vocabulary size ({len(vocab)}), got "
                         f"{args.top_k}")
    for prefix in prefixes:
        print(generate(ckpt.lm, prefix, args.length, vocab.idx_to_token, vocab.token_to_idx,
                       strategy=args.strategy, temperature=args.temperature, top_k=args.top_k,
                       seed=args.seed, sep=task.separator(config)), flush=True)
    return 0


