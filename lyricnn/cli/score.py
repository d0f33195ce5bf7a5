"""``lyricnn score``: rank strings by their log-probability under a checkpoint and an n-gram."""
from lyricnn.checks import check_int
from lyricnn.cli.common import UsageError, add_checkpoint, add_ctx, checked, load
from lyricnn.decoding.score import scorer
from lyricnn.metrics import perplexity
from lyricnn.ngram.counts import check_order
from lyricnn.ngram.model import NGramLM, rank
from lyricnn.run.task import CHARS, task_of


def add_parser(sub):
    p = sub.add_parser(
        "score", help="log-probability and perplexity of strings, ranked",
        description="Rank strings by log P(text[1:] | text[0]) (natural log) under a "
                    "checkpoint and under a Kneser-Ney n-gram model fit on the "
                    "checkpoint's training text, most likely first.")
    add_checkpoint(p)
    p.add_argument("texts", nargs="+", metavar="TEXT", help="strings of >= 2 characters")
    p.add_argument("--ngram-order", default=3, metavar="N",
                   type=checked(lambda v: check_int("ngram_order", v, 0)),
                   help="order of the Kneser-Ney n-gram model (default 3; 0: no n-gram; at "
                        "most the training text's length and what memory allows)")
    add_ctx(p)
    p.set_defaults(handler=run)


def _print_ranking(ranked):
    print(f"{'rank':>4}  {'log_prob':>10}  {'perplexity':>10}  text")
    for i, (text, logp) in enumerate(ranked, start=1):
        print(f"{i:>4}  {logp:>10.4f}  {perplexity(-logp / (len(text) - 1)):>10.3f}  {text}")


def _ngram_scorer(ngram):
    """``log P(text[1:] | text[0])``: conditioned like the RNN, so the two rank alike."""
    return lambda text: float(ngram.token_log_probs(text)[1:].sum())


def run(args, signals):
    ckpt = load(args)
    if task_of(ckpt.config) is not CHARS:  # the n-gram model beside it reads characters
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
