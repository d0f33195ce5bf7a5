"""TODO docstring (cli.evaluate, from cli.py)."""
# Only the standard library at import time: the console script imports this
# module before main() can install its signal handlers, and a Ctrl-C while
# MXNet loads must still end in one line, not a traceback.  Importing
# lyricnn.cli runs lyricnn/__init__.py first, which sets OMP_NUM_THREADS
# before MXNet loads.
from pathlib import Path
from lyricnn.cli.common import UsageError, _add_checkpoint, _add_ctx, _load, _load_corpus, _read_user_text, _replace, _word_corpus


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


# -- evaluate ---------------------------------------------------------------------

def cmd_evaluate(args, signals):
    from lyricnn.run.config import PTB_CORPUS
    from lyricnn.metrics import perplexity
    from lyricnn.training.evaluate import evaluate_loss

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
        from lyricnn.training.evaluate import EVAL_BATCH_SIZE, evaluate_perplexity
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


def _text_indices(ckpt, text):
    """A text file's indices under the checkpoint's tokenisation and vocabulary."""
    from lyricnn.data.tokenize import UNK
    config, vocab = ckpt.config, ckpt.vocab
    if config.is_word:
        from lyricnn.data.words import encode_words, tokenize_lines
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
