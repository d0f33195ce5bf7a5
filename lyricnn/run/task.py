"""The task of a run: everything that depends on the token level, decided here and only here.

A run reads characters (the book) or words (``--tokens word``). ``task_of(config)``
returns the one object that knows, for that level:

================  ========================================  =========================================
                  ``CHARS`` (the book, 6.3-6.9)             ``WORDS`` (PTB, word_language_model)
================  ========================================  =========================================
corpus text       the first ``num_chars`` characters,       PTB's training file, or the corpus file
                  newlines as spaces                        (its first ``num_chars`` characters)
vocabulary        characters, first-appearance order        words of the training part, ``<unk>``
held-out split    the last ``valid_fraction`` of the text   PTB's valid and test files, or the last
                                                            ``valid_fraction`` of the lines
model             ``models.build.build_lm``                 ``models.word.build_word_lm``
minibatches       the book's sampler (6.3)                  consecutive streams (6.3.3), the last
                                                            chunk shorter
held-out reading  one stream                                ``EVAL_BATCH_SIZE`` streams
learning rate     constant                                  ``annealed_lr`` (``lr_decay``)
tokens joined by  nothing                                   a space (whitespace tokenizer)
================  ========================================  =========================================

The defaults of each level are one table, ``lyricnn.run.config.LEVEL_DEFAULTS``.
The CLI, checkpoints and examples go through a task; none of them asks which
level a run is.
"""
from types import SimpleNamespace

from lyricnn.data.corpus import JAY_LYRICS, Corpus, Vocab, load_corpus_chars, read_text
from lyricnn.data.hub import locate
from lyricnn.data.sampling import data_iter_consecutive, data_iter_random, streams
from lyricnn.data.tokenize import EOS, UNK, read_ptb_text
from lyricnn.data.words import frequency_sorted, tokenize_lines, word_corpus
from lyricnn.models.build import build_lm
from lyricnn.models.word import REGULARISERS, build_word_lm
from lyricnn.training.log import book_logger, book_print
from lyricnn.checks import check_choice, check_indices, check_int, check_number
from lyricnn.decoding.engine import Decoder, Vocabulary
from lyricnn.decoding.originality import OriginalityIndex, human_baseline
from lyricnn.models.mixture import NGramMixture
from lyricnn.ngram.counts import check_order
from lyricnn.ngram.model import NGramLM
from lyricnn.run.config import PTB_CORPUS, WORD_DEFAULTS
from lyricnn.training.evaluate import EVAL_BATCH_SIZE, evaluate_perplexity
from lyricnn.training.loop import annealed_lr, train_epochs

#: The book's prefixes (6.4.5), logged when the corpus has their characters.
BOOK_PREFIXES = ("分开", "不分开")

__all__ = ["Task", "CHARS", "WORDS", "task_of", "build_model", "vocab_of", "train",
           "train_word_lm"]


class Task:
    """The interface; ``CHARS`` and ``WORDS`` are its two instances."""

    name: str            # the value of ``RunConfig.tokens``
    unit: str            # what a token is, in messages: 'characters' or 'words'
    eval_batch_size: int  # streams a held-out split is read as

    def text(self, config):
        """The text a run of ``config`` trains on (what its checkpoint keeps as corpus.txt)."""
        raise NotImplementedError

    def corpus(self, config, text, held_out=True):
        """The ``Corpus`` of ``text``; ``held_out=False`` skips the held-out splits."""
        raise NotImplementedError

    def vocab(self, config, text):
        """The vocabulary a run of ``config`` builds from ``text``."""
        return self.corpus(config, text, held_out=False).vocab

    def build_model(self, config, ctx=None):
        """A freshly initialised ``LanguageModel`` for ``config``."""
        raise NotImplementedError

    def batches(self, config, train, ctx):
        """``() -> iterator of (X, Y)``: one epoch's minibatches of the ``train`` indices."""
        raise NotImplementedError

    def carries_state(self, config):
        """Whether the recurrent state runs on from one minibatch to the next."""
        return config.sampler == "consecutive"

    def schedule(self, config):
        """``(epoch, history) -> lr`` of ``annealed_lr`` (``--lr-decay``, ``--decay-from``),
        or ``None`` for the constant ``config.lr`` (the book's)."""
        if config.lr_decay == 1:
            return None

        def lr(epoch, history):
            return annealed_lr(epoch, history, config.lr, config.lr_decay, config.decay_from)
        return lr

    def evaluator(self, config, indices):
        """``lm -> perplexity`` of the held-out ``indices`` (``None`` without them)."""
        if indices is None:
            return None
        batch = max(1, min(self.eval_batch_size, len(indices) // 2))
        return lambda lm: evaluate_perplexity(lm, indices, batch, config.num_steps)

    def tokens(self, config, text, eos=False):
        """``text`` cut into this level's tokens: a prefix, or (``eos``: an ``<eos>`` after
        each line of words) a file to score."""
        raise NotImplementedError

    #: What ``encode`` does with tokens outside the vocabulary.
    UNKNOWN = ("error", "skip", "unk")

    def encode(self, config, vocab, text, name="text", eos=False, unknown=None, empty=False):
        """Indices of ``text``; tokens the vocabulary lacks are, by ``unknown``: ``'error'``
        (a ``ValueError`` naming them), ``'skip'`` (left out) or ``'unk'`` (read as
        ``<unk>``, which word vocabularies have). ``None``: the level's policy for text to
        score (words ``'unk'`` when the vocabulary has it, as Penn Treebank's; characters
        ``'error'``). ``empty``: an empty result is allowed."""
        if unknown is None:
            unknown = self.unknown_policy
        check_choice("unknown", unknown, self.UNKNOWN)
        tokens = self.tokens(config, text, eos)
        missing = list(dict.fromkeys(t for t in tokens if t not in vocab))
        if missing and unknown == "unk" and UNK in vocab:
            tokens = [t if t in vocab else UNK for t in tokens]
        elif missing and unknown == "skip":
            tokens = [t for t in tokens if t in vocab]
        elif missing:
            extra = "" if unknown == "error" else " (and the vocabulary has no <unk>)"
            raise ValueError(f"{name}: {self.unit} {missing[:20]!r} are not in the corpus the "
                             f"model was trained on{extra}; use {self.unit} of its "
                             "vocabulary, or skip them (--unknown skip)")
        if not tokens and not empty:
            raise ValueError(f"{name} has no {self.unit}" + (
                " of the vocabulary" if missing else ""))
        return vocab.to_indices(tokens)

    def originality(self, config, vocab, text):
        """``(index, baseline)``: an ``OriginalityIndex`` of the training split of ``text``
        (its lines end at the line separator), and the human baseline, the novelty curve
        of the held-out split against it (``None`` without one). Built in memory when a
        checkpoint is loaded; nothing is written."""
        corpus = self.corpus(config, text)
        sep = self.line_separator(config, vocab)
        index = OriginalityIndex(corpus.train, line_breaks=None if sep is None else
                                 {vocab.token_to_idx[sep]})
        baseline = None if corpus.valid is None or len(corpus.valid) < 2 else \
            human_baseline(None, corpus.valid, index=index)
        return index, baseline

    def mixture(self, config, vocab, lm, text, order, weight=0.5):
        """``lm`` interpolated with a Kneser-Ney ``order``-gram fitted on the training split
        of ``text`` (``lyricnn.models.mixture.NGramMixture``; ``weight`` on ``lm``)."""
        train = self.corpus(config, text, held_out=False).train
        check_order(order, len(train))
        ngram = NGramLM(order, "kneser-ney").fit(vocab.to_tokens([int(i) for i in train]))
        return NGramMixture(lm, ngram, vocab.idx_to_token, weight)

    def decoder(self, config, vocab, lm, index=None):
        """The decoding engine for a model of this level (``lyricnn.decoding.engine``)."""
        sep = self.line_separator(config, vocab)
        return Decoder(lm, Vocabulary(vocab.idx_to_token, None if sep is None else
                                      vocab.token_to_idx[sep], self.separator(config)), index)

    def separator(self, config):
        """What joins generated tokens into text."""
        return ""

    def line_separator(self, config, vocab):
        """The token that ends a line when decoding asks for lines: the newline for a
        character model that kept them (``--keep-newlines``), else the space (the book's
        stand-in for it); ``<eos>`` for words. ``None`` if the vocabulary has none."""
        raise NotImplementedError

    #: The progress bar of training counts epochs (characters) or tokens (words: an epoch
    #: of Penn Treebank takes minutes, and tokens/s is the figure to watch).
    counts_tokens = False

    def log_prefixes(self, requested, vocab, text):
        """The prefixes continued in the training log (``ValueError`` for a bad one)."""
        return []

    def epoch_logger(self, lm, settings, vocab, prefixes, train_tokens, should_stop=None):
        """``on_epoch_end(epoch, history)`` printing this level's training log on stdout;
        ``should_stop()`` cuts a sample in it short."""
        raise NotImplementedError

    def check_trainable(self, config, corpus):
        """``ValueError`` naming the flags when ``corpus`` cannot feed one epoch of ``config``."""
        if len(corpus.vocab) < 2:
            raise ValueError(f"the corpus has {len(corpus.vocab)} distinct {self.unit} "
                             f"({corpus.vocab.idx_to_token!r}): there is nothing to predict; "
                             "a language model needs at least 2")
        n = len(corpus.train)
        if config.sampler == "consecutive":
            need = config.batch_size * (config.num_steps + 1)
        else:
            need = config.batch_size * config.num_steps + 1
        if n < need:
            raise ValueError(
                f"one minibatch of --batch-size {config.batch_size} x --num-steps "
                f"{config.num_steps} needs at least {need:,} {self.unit}, but the training "
                f"text has {n:,}; use a longer corpus (or --num-chars all), or a smaller "
                "--batch-size or --num-steps")
        self._check_schedule(config, corpus)
        if corpus.valid is not None and len(corpus.valid) < 2:
            raise ValueError(f"the held-out split has {len(corpus.valid)} {self.unit}, "
                             "perplexity needs at least 2: use a larger --valid-fraction")

    @staticmethod
    def _check_schedule(config, corpus):
        if corpus.valid is None and getattr(config, "asgd", 0):
            raise ValueError(f"--asgd {config.asgd} starts averaging when the validation "
                             "perplexity stalls, but this corpus has no valid split: give "
                             "--valid-fraction, or drop --asgd")
        if corpus.valid is None and config.lr_decay != 1 and config.decay_from == 0:
            raise ValueError(f"--lr-decay {config.lr_decay:g} anneals when the validation "
                             "perplexity stops improving, but this corpus has no valid split: "
                             "give --valid-fraction, --decay-from N, or --lr-decay 1")

    def num_parameters(self, config):
        """The number of weights of the model ``config`` describes, computed, not built:
        per layer ``gates·h·(d + h + b)`` (``b`` biases per gate: one in the book's cells,
        two in Gluon's), then the output layer ``h·V + V``, plus what the level adds."""
        gates = {"rnn": 1, "gru": 3, "lstm": 4}[config.model.replace("-scratch", "")]
        h, biases = config.num_hiddens, self._biases(config)
        first, extra = self._input_size(config)
        layers = sum(gates * h * ((first if layer == 0 else h) + h + biases)
                     for layer in range(config.num_layers))
        return layers + self._output_size(config) + extra

    @staticmethod
    def _output_size(config):
        """The output layer's weights: ``h·V + V`` (a tied model's ``h·V`` is counted as the
        embedding's, in ``extra``), or the adaptive softmax's (``lyricnn.models.adaptive``):
        the head's ``c_1 + k`` rows (tied: its ``k`` cluster rows) and biases, then per tail
        cluster of ``n_i`` words its projection ``h·d_i`` and ``d_i·n_i + n_i`` (tied:
        ``h·h`` and the biases ``n_i``; the word vectors are the embedding's)."""
        h, V = config.num_hiddens, config.vocab_size
        if not getattr(config, "cutoffs", ()):
            return h * V + V
        cutoffs = tuple(config.cutoffs)
        k, head = len(cutoffs), cutoffs[0] + len(cutoffs)
        total = (k if config.tied else head) * h + head
        bounds = cutoffs + (V,)
        for i in range(1, k + 1):
            n = bounds[i] - bounds[i - 1]
            if config.tied:
                total += h * h + n
            else:
                d = max(1, int(h // config.div_value ** i))
                total += h * d + d * n + n
        return total

    def training_bytes(self, config):
        """A generous estimate of the memory training ``config`` needs, in bytes.

        The weights with their gradients and MXNet's workspace (4 copies), plus one
        minibatch's activations: the inputs, logits and their gradients (about
        ``4 V``) and the gate values (about ``6 gates h``) per layer, for
        ``batch_size * num_steps`` positions.
        """
        gates = {"rnn": 1, "gru": 3, "lstm": 4}[config.model.replace("-scratch", "")]
        positions = config.batch_size * config.num_steps
        activations = 4 * config.vocab_size + 6 * gates * config.num_hiddens * config.num_layers
        return 4 * (4 * self.num_parameters(config) + positions * activations)

    def _input_size(self, config):
        """``(layer 1's input width, weights outside the layers and the output layer)``."""
        if config.embeds:
            # A tied full softmax counts the shared matrix as the output layer's.
            shared = config.tied and not getattr(config, "cutoffs", ())
            return config.embedding_size, 0 if shared else \
                config.vocab_size * config.embedding_size
        return config.vocab_size, 0

    def _biases(self, config):
        """Biases per gate: the book's cells have one, Gluon's layers two."""
        return 1 if config.model.endswith("-scratch") else 2


class _Chars(Task):
    name, unit, eval_batch_size = "char", "characters", 1
    unknown_policy = "error"      # a character outside the vocabulary is refused

    def text(self, config):
        if not config.keep_newlines:
            return load_corpus_chars(config.corpus, config.num_chars)   # the book's
        text = read_text(locate(JAY_LYRICS) if config.corpus is None else config.corpus)
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        return text if config.num_chars is None else text[:config.num_chars]

    def corpus(self, config, text, held_out=True):
        vocab = Vocab.from_tokens(text)
        train, valid = config.split(vocab.to_indices(text))
        return Corpus(vocab, train, valid if held_out else None)

    def build_model(self, config, ctx=None):
        config.validate()
        if config.embeds:   # the word models' embedding-dropout-RNN path, on characters
            return build_word_lm(config.model, config.vocab_size, config.embedding_size,
                                 config.num_hiddens, config.num_layers, config.dropout,
                                 config.tied, ctx)
        return build_lm(config.model, config.vocab_size, config.num_hiddens, config.num_layers,
                        ctx=ctx)

    def batches(self, config, train, ctx):
        sampler = data_iter_random if config.sampler == "random" else data_iter_consecutive
        return lambda: sampler(train, config.batch_size, config.num_steps, ctx)

    def tokens(self, config, text, eos=False):
        if config.keep_newlines:
            return list(text.replace("\r\n", "\n").replace("\r", "\n"))
        return list(text.replace("\n", " ").replace("\r", " "))

    def line_separator(self, config, vocab):
        return next((c for c in ("\n", " ") if c in vocab), None)

    def log_prefixes(self, requested, vocab, text):
        if requested:
            for prefix in requested:
                if not prefix:
                    raise ValueError("--prefix must not be empty")
                missing = "".join(dict.fromkeys(c for c in prefix if c not in vocab))
                if missing:
                    raise ValueError(f"--prefix {prefix!r}: character(s) {missing!r} are not "
                                     "in the corpus")
            return list(requested)
        if all(c in vocab for p in BOOK_PREFIXES for c in p):
            return list(BOOK_PREFIXES)
        # The first two characters of the first line with any (not blank spaces).
        first = next((line.strip() for line in text.splitlines() if line.strip()), text)
        return [first[:2]]

    def epoch_logger(self, lm, settings, vocab, prefixes, train_tokens, should_stop=None):
        """The book's lines every ``pred_period`` epochs (``book_logger``)."""
        return book_logger(lm, settings.pred_period, settings.pred_len, prefixes,
                           vocab.idx_to_token, vocab.token_to_idx, should_stop)


class _Words(Task):
    name, unit, eval_batch_size = "word", "words", EVAL_BATCH_SIZE
    unknown_policy = "unk"        # scoring: an unknown word is <unk>, as Penn Treebank's

    def text(self, config):
        if config.corpus == PTB_CORPUS:
            return read_ptb_text("train")
        text = load_corpus_chars(None, None) if config.corpus is None else read_text(
            config.corpus)
        return text if config.num_chars is None else text[:config.num_chars]

    def corpus(self, config, text, held_out=True):
        if config.corpus == PTB_CORPUS:
            if not held_out:
                words = word_corpus(text, tokenizer="whitespace")
            else:
                words = word_corpus(text, read_ptb_text("valid"), read_ptb_text("test"),
                                    "whitespace")
        else:
            lines = text.splitlines(keepends=True)
            train, valid = (config.split(lines, "lines") if config.valid_fraction
                            else (lines, None))
            valid = "".join(valid) if valid and held_out else None
            words = word_corpus("".join(train), valid, None, config.tokenizer)
        # An adaptive softmax's clusters are ranges of word ranks.
        return frequency_sorted(words) if config.cutoffs else words

    def build_model(self, config, ctx=None):
        config.validate()
        return build_word_lm(config.model, config.vocab_size, config.embedding_size,
                             config.num_hiddens, config.num_layers, config.dropout,
                             config.tied, ctx, cutoffs=config.cutoffs,
                             div_value=config.div_value,
                             **{name: getattr(config, name) for name in REGULARISERS})

    def batches(self, config, train, ctx):
        return lambda: streams(train, config.batch_size, config.num_steps, ctx, last=True)

    def schedule(self, config):   # always annealed_lr: it records each epoch's rate
        def lr(epoch, history):
            return annealed_lr(epoch, history, config.lr, config.lr_decay, config.decay_from)
        return lr

    def tokens(self, config, text, eos=False):
        return tokenize_lines(text, config.tokenizer, eos=eos)

    def separator(self, config):
        return " " if config.tokenizer == "whitespace" else ""

    def line_separator(self, config, vocab):
        return EOS if EOS in vocab else None

    counts_tokens = True

    def log_prefixes(self, requested, vocab, text):
        if requested:
            raise ValueError("--prefix continues text in a character-level run's log; for a "
                             "word-level run use lyricnn generate")
        return []

    def epoch_logger(self, lm, settings, vocab, prefixes, train_tokens, should_stop=None):
        """One line per ``pred_period`` epochs (and the last): the book's fields, then the
        learning rate and the training speed."""
        def log(epoch, history):
            if epoch % settings.pred_period and epoch != settings.num_epochs:
                return
            valid = history.valid_perplexity[-1]
            held = "" if valid is None else f", valid perplexity {valid:.2f}"
            seconds = history.seconds[-1]
            book_print(f"epoch {epoch}, perplexity {history.perplexity[-1]:.2f}{held}, lr "
                       f"{history.lr[-1]:.4g}, time {seconds:.1f} sec, "
                       f"{train_tokens / seconds:,.0f} tokens/s")
        return log

    def check_trainable(self, config, corpus):
        self._check_schedule(config, corpus)
        n = len(corpus.train)
        if n // config.batch_size < 2:
            raise ValueError(f"the training split has {n:,} words: cut into --batch-size "
                             f"{config.batch_size} streams that leaves fewer than 2 per "
                             "stream; use a smaller --batch-size or a longer corpus")
        if corpus.valid is not None and len(corpus.valid) // self.eval_batch_size < 2:
            raise ValueError(f"the valid split has {len(corpus.valid)} words, fewer than "
                             f"{2 * self.eval_batch_size} (it is read as "
                             f"{self.eval_batch_size} streams); use a larger --valid-fraction "
                             "or a longer corpus")



CHARS, WORDS = _Chars(), _Words()
TASKS = {task.name: task for task in (CHARS, WORDS)}


def task_of(config):
    """The ``Task`` of ``config.tokens``."""
    return TASKS[config.tokens]


def build_model(config, ctx=None):
    """A freshly initialised language model for ``config`` (its task's ``build_model``)."""
    return task_of(config).build_model(config, ctx)


def vocab_of(config, text):
    """The vocabulary a run of ``config`` builds from ``text`` (its task's ``vocab``)."""
    return task_of(config).vocab(config, text)


def train(config, lm, corpus, epochs, **loop):
    """Train ``lm`` on ``corpus.train`` for each epoch number in ``epochs``, as ``config``
    says: the task's minibatches, held-out evaluation of ``corpus.valid`` and learning rate,
    through the one loop ``lyricnn.training.loop.train_epochs``. ``loop``: its keyword
    arguments (``history``, ``on_epoch_end``, ``seed``, ``should_stop``, ``on_batch``,
    ``ctx``, ``kvstore``). Returns the ``History``.
    """
    task = task_of(config)
    task.check_trainable(config, corpus)
    train_ = check_indices("train", corpus.train, lm.vocab_size)
    valid = None if corpus.valid is None else check_indices("valid", corpus.valid, lm.vocab_size)
    return _train_indices(config, lm, train_, valid, epochs, **loop)


def _train_indices(config, lm, train_, valid, epochs, **loop):
    task = task_of(config)
    return train_epochs(lm, None, not task.carries_state(config), config.num_steps,
                        config.batch_size, config.lr, config.clipping_theta, epochs,
                        batches=task.batches(config, train_, lm.ctx),
                        evaluate=task.evaluator(config, valid), schedule=task.schedule(config),
                        **loop)


def train_word_lm(lm, train, valid, epochs, *, batch_size=WORD_DEFAULTS["batch_size"],
                  num_steps=WORD_DEFAULTS["num_steps"], lr=WORD_DEFAULTS["lr"],
                  clipping_theta=WORD_DEFAULTS["clipping_theta"],
                  lr_decay=WORD_DEFAULTS["lr_decay"], decay_from=0, **loop):
    """Train a word-level ``lm`` on the ``train`` indices for each epoch number in ``epochs``.

    ``train`` (above) for a model built outside a run: the word task's consecutive
    streams, the perplexity of the whole ``valid`` split after every epoch, and the
    learning rate of ``annealed_lr`` (``decay_from=0``: divided by ``lr_decay`` whenever
    the validation perplexity does not improve; ``N``: every epoch after epoch N).
    Defaults: ``lyricnn.run.config.LEVEL_DEFAULTS``. ``loop``: as ``train``'s. Returns
    the ``History`` (with each epoch's ``lr``).

    On the per-token mean loss, Zaremba et al.'s lr 1 and clipping 5 on the
    loss *summed* over ``num_steps`` are ``lr = num_steps`` and
    ``clipping_theta = 5 / num_steps``.
    """
    # The run's training with these settings (checked here, each bad value named) in
    # place of a whole RunConfig: the word task reads only these fields of it.
    settings = SimpleNamespace(
        tokens=WORDS.name, sampler="consecutive",
        batch_size=check_int("batch_size", batch_size),
        num_steps=check_int("num_steps", num_steps),
        lr=check_number("lr", lr, 0, low_open=True),
        clipping_theta=None if clipping_theta is None else check_number(
            "clipping_theta", clipping_theta, 0, low_open=True),
        lr_decay=check_number("lr_decay", lr_decay, 1, hint="1 keeps the learning rate"),
        decay_from=check_int("decay_from", decay_from, 0))
    train = check_indices("train", train, lm.vocab_size)
    valid = None if valid is None else check_indices("valid", valid, lm.vocab_size)
    WORDS.check_trainable(settings, SimpleNamespace(train=train, valid=valid))
    return _train_indices(settings, lm, train, valid, epochs, **loop)
