"""``lyricnn evaluate``: the perplexity of a checkpoint on a held-out split or a text file."""
import math
from pathlib import Path

from lyricnn.checks import check_number
from lyricnn.cli.common import (UsageError, add_checkpoint, add_ctx, add_mixture, checked,
                                corpus_of, corpus_text, load, model_of, read_user_text, replace)
from lyricnn.run.config import PTB_CORPUS
from lyricnn.run.task import task_of
from lyricnn.training import dynamic


def add_parser(sub):
    p = sub.add_parser(
        "evaluate", help="perplexity of a checkpoint on a held-out split or a text file",
        description="Print '<split> perplexity X': the whole split read as consecutive "
                    "streams with the state carried, every token scored once, full softmax "
                    "(<unk> counts as a token, as in the published PTB figures).")
    add_checkpoint(p, "run directory, checkpoint directory, or DIR/best")
    p.add_argument("--split", choices=("valid", "test"),
                   help="held-out split of the checkpoint's corpus (default: test if the "
                        "corpus has one, else valid)")
    p.add_argument("--text", metavar="FILE",
                   help="score this UTF-8 file instead (tokenised as the checkpoint's corpus; "
                        "unknown words become <unk>)")
    p.add_argument("--corpus", metavar="PATH|ptb",
                   help="take --split from this corpus instead of the checkpoint's (its "
                        "vocabulary must be the checkpoint's)")
    p.add_argument("--dynamic", action="store_true",
                   help="dynamic evaluation (Krause et al. 2018): the text is read as one "
                        f"stream, and after scoring each segment of {dynamic.NUM_STEPS} tokens "
                        "the model takes a gradient step on it, so it adapts to the text as it "
                        "reads (the checkpoint is not changed). An evaluation protocol: report "
                        "it beside the static figure")
    p.add_argument("--dynamic-lr", type=checked(lambda v: check_number("dynamic_lr", v, 0, 1)),
                   metavar="LR", help=f"its learning rate (default {dynamic.LR:g})")
    p.add_argument("--dynamic-decay", metavar="D",
                   type=checked(lambda v: check_number("dynamic_decay", v, 0, 1)),
                   help=f"its pull back to the trained weights (default {dynamic.DECAY:g})")
    add_mixture(p)
    add_ctx(p)
    p.set_defaults(handler=run)


def run(args, signals):
    if args.text is not None and (args.split or args.corpus):
        raise UsageError("--text scores a file; it does not combine with --split or --corpus")
    if not args.dynamic and (args.dynamic_lr is not None or args.dynamic_decay is not None):
        raise UsageError("--dynamic-lr and --dynamic-decay set dynamic evaluation; add --dynamic")
    if args.dynamic and args.mix_ngram:
        raise UsageError("--dynamic adapts the network's weights; it does not combine with "
                         "--mix-ngram")
    ckpt = load(args)
    config, task = ckpt.config, task_of(ckpt.config)
    corpus = None      # the corpus read for --split (dynamic evaluation's training text too)
    if args.text is not None:
        name = args.text
        try:
            indices = task.encode(config, ckpt.vocab, read_user_text(args.text), "--text",
                                  eos=True)
        except ValueError as err:
            raise UsageError(str(err)) from None
    else:
        if args.corpus is not None:
            corpus = args.corpus if args.corpus == PTB_CORPUS else str(
                Path(args.corpus).resolve())
            config = replace(config, corpus=corpus)
            text = corpus_text(config)
        else:
            text = ckpt.corpus_text
        corpus, indices, name = _split(ckpt, config, text, args.split)
    if len(indices) < 2:
        raise UsageError(f"{name} has {len(indices)} {task.unit}; perplexity needs at least 2")
    if args.dynamic:
        own = corpus if args.corpus is None else None
        value, how = _dynamic(ckpt, indices, args, own), " (dynamic evaluation)"
    else:
        value, how = task.evaluator(config, indices)(model_of(args, ckpt)), ""
    print(f"{name} perplexity {value:.3f}{how}", flush=True)
    return 0


def _dynamic(ckpt, indices, args, corpus=None):
    """Dynamic evaluation's perplexity of ``indices``, the statistics from the checkpoint's
    own training text (``corpus``: its corpus, when already read)."""
    train = (corpus or corpus_of(ckpt.config, ckpt.corpus_text)).train
    lr = dynamic.LR if args.dynamic_lr is None else args.dynamic_lr
    decay = dynamic.DECAY if args.dynamic_decay is None else args.dynamic_decay
    try:
        rms = dynamic.gradient_statistics(ckpt.lm, train)
    except ValueError as err:
        raise UsageError(f"--dynamic: {err}") from None
    value = dynamic.dynamic_evaluate_perplexity(ckpt.lm, indices, rms, lr, decay)
    if not math.isfinite(value):
        raise UsageError(f"--dynamic: the adapted model diverged (perplexity {value}) at "
                         f"--dynamic-lr {lr:g}; use a smaller one (default {dynamic.LR:g}), "
                         "tuned on the validation split")
    return value


def _split(ckpt, config, text, split):
    """``(corpus, indices, name)``: the held-out split of the checkpoint's (or --corpus's)
    text."""
    corpus = corpus_of(config, text)
    if corpus.vocab != ckpt.vocab:
        raise UsageError(f"--corpus {config.corpus}: its vocabulary ({len(corpus.vocab)} "
                         f"types) is not the checkpoint's ({len(ckpt.vocab)} types): the model "
                         "can only be evaluated on the corpus it was trained on, or on a file "
                         "with --text")
    split = split or ("test" if corpus.test is not None else "valid")
    if getattr(corpus, split) is None:
        hint = (" (train with --valid-fraction F to hold one out), or use --text FILE"
                if split == "valid" else "; use --split valid or --text FILE")
        raise UsageError(f"the corpus {config.corpus or 'of the data hub'} has no {split} "
                         "split" + hint)
    return corpus, getattr(corpus, split), split
