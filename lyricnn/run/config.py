"""The one source of a run's configuration: fields, defaults, checks, CLI flags.

``RunConfig`` is what a checkpoint saves (``config.json``): enough to rebuild
the model and repeat or resume its training.  Its field names are the book's
argument names (``num_hiddens``, ``num_steps``, ``batch_size``, ``lr``,
``clipping_theta``, ...) and its defaults the book's (6.4.5, 6.5): 256 hidden
units, 35 steps, batch 32, lr 1e2, clipping 1e-2, the first 10000 characters.

``TrainSettings`` holds the book's other training arguments (``num_epochs``,
``pred_period``, ``pred_len``).  They are *not* saved: they say how long to
train and how often to log, not what the model is, so a resumed run may
change them (``--epochs`` is how far a resumed run goes).

Every field carries, in its ``metadata["option"]``, its help text, its checks
(through ``lyricnn.checks``) and the old short flag spellings, from which
``add_config_arguments`` generates the command-line flags (``lyricnn.run.flags``)::

    --num-hiddens (alias --hidden)   --num-steps (--steps)   --batch-size (--batch)
    --clipping-theta (--clip)        --num-layers (--layers) --num-epochs (--epochs)
    --pred-period (--period)

So the CLI, the examples and the checkpoint cannot disagree on a name, a
default or a range.  Two fields are derived, never flags: ``vocab_size`` and
``corpus_sha1`` come from the corpus (``with_corpus``).

No MXNet import here: the model names (``lyricnn.models.build.MODELS``) and the
default sampler are looked up only when needed.
"""
import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from lyricnn.checks import check_choice, check_int, check_number
from lyricnn.run.flags import ALL, Option, flag_of, float_text, int_text, num_chars_text

__all__ = ["RunConfig", "TrainSettings", "text_sha1", "SAMPLERS", "FLOAT32_MAX", "MAX_SEED",
           "LEVEL_DEFAULTS", "LEVEL_TRAIN_DEFAULTS", "model_names"]

SAMPLERS = ("random", "consecutive")
TOKENS = ("char", "word")
TOKENIZERS = ("whitespace", "jieba")
#: ``--corpus ptb``: word-level Penn Treebank of the data hub (its train/valid/test files).
PTB_CORPUS = "ptb"
#: Fields that only word-level runs use (a character-level run keeps their defaults).
WORD_FIELDS = ("tokenizer", "embed_size", "dropout", "tied", "lr_decay", "decay_from")
#: Word-level fields of issue 23 (AWD-LSTM's regularisers, NT-ASGD, the adaptive softmax):
#: word-level runs only; a checkpoint that predates them had their defaults (off).
AWD_FIELDS = ("dropout_input", "dropout_hidden", "dropout_output", "dropout_embed",
              "weight_drop", "ar", "tar", "asgd", "cutoffs", "div_value")
#: The one table of each token level's defaults where they differ from the fields' (the
#: book's, character level). Words: word_language_model's (Gluon LSTM, 200 units, 35
#: steps, batch 20, lr 20, clipping 0.25, lr / 4 when the validation perplexity stops
#: improving, 40 epochs, a log line each epoch) and the whole corpus.
LEVEL_DEFAULTS = {
    "char": {},
    "word": {"model": "lstm", "num_hiddens": 200, "num_steps": 35, "batch_size": 20,
             "lr": 20.0, "clipping_theta": 0.25, "lr_decay": 4.0, "num_chars": None,
             "sampler": "consecutive"},
}
#: ``TrainSettings`` defaults per level, likewise.
LEVEL_TRAIN_DEFAULTS = {
    "char": {},
    "word": {"num_epochs": 40, "pred_period": 1, "pred_len": 20},
}
WORD_DEFAULTS = LEVEL_DEFAULTS["word"]
FLOAT32_MAX = float(np.finfo(np.float32).max)
#: MXNet, NumPy and Python seeds agree only below 2**32 (above, MXNet wraps around).
MAX_SEED = 2**32 - 1


def text_sha1(text):
    """SHA-1 of ``text`` in UTF-8: identifies the exact corpus a checkpoint was trained on."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def model_names():
    """``lyricnn.models.build.MODELS``, imported on first use (it loads MXNet)."""
    from lyricnn.models.build import MODELS
    return tuple(MODELS)


def _default_sampler(model):
    from lyricnn.models.build import default_sampler
    return default_sampler(model)


# -- per-field checks (through lyricnn.checks) ----------------------------------

def _positive_int(name, value):
    return check_int(name, value, 1)


#: Deepest stack a run may ask for. Each layer is its own arrays and a step of
#: sequential work per time step: 100,000 layers of 16 units are 300,000 arrays and
#: gigabytes of per-array overhead before a single step (the memory estimate counts
#: only the weights). Published character and word models stop below 10.
MAX_LAYERS = 64


def _num_layers(name, value):
    return check_int(name, value, 1, MAX_LAYERS, hint="deep RNNs use 2 to 4 layers")


def _float32_positive(name, value):
    """A positive number that MXNet's float32 optimizer sees as neither 0 nor inf."""
    value = check_number(name, value, 0, FLOAT32_MAX, low_open=True)
    if np.float32(value) == 0:
        raise ValueError(f"{name} must be at least {float(np.float32(1e-45)):.3g} (it becomes "
                         f"0 in float32, MXNet's precision, and nothing would train), "
                         f"got {value!r}")
    return value


def _seed(name, value):
    return check_int(name, value, 0, MAX_SEED)


def _model(name, value):
    return check_choice(name, value, model_names())


def _sampler(name, value):
    return check_choice(name, value, SAMPLERS)


def _corpus(name, value):
    if value is not None and (not isinstance(value, str) or not value):
        raise ValueError(f"{name} must be a file path, 'ptb', or None (the Jay Chou lyrics), "
                         f"got {value!r}")
    if value is not None:
        try:   # saved in config.json, which is UTF-8: a path that is not cannot be saved
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{name}: the path {value!r} has bytes that are not UTF-8; "
                             "rename the file (or a folder on its path)") from None
    return value


def _num_chars(name, value):
    return None if value is None else check_int(name, value, 1, hint="None keeps the whole text")


def _fraction(name, value):
    value = check_number(name, value, 0)
    if value >= 1:
        raise ValueError(f"{name} must be a number >= 0 and < 1, got {value!r}")
    return value


def _tokens(name, value):
    return check_choice(name, value, TOKENS)


def _tokenizer(name, value):
    return check_choice(name, value, TOKENIZERS)


def _embed_size(name, value):
    return check_int(name, value, 0, hint="0 means the same as --num-hiddens")


def _dropout(name, value):
    value = check_number(name, value, 0, hint="the probability of dropping a unit")
    if value >= 1:
        raise ValueError(f"{name} must be a number >= 0 and < 1 (the probability of dropping a "
                         f"unit), got {value!r}")
    return value


def _penalty(name, value):
    from lyricnn.models.word import MAX_AR
    return check_number(name, value, 0, MAX_AR, hint="AWD-LSTM uses --ar 2 --tar 1; 0 is off")


def _cutoffs_text(text):
    """``'2000,6000'`` -> ``(2000, 6000)``; ``''``, ``'0'`` or ``'none'``: the full softmax."""
    if text.strip().lower() in ("", "0", "none"):
        return ()
    return tuple(int_text(part.strip()) for part in text.split(","))


def _cutoffs(name, value):
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise ValueError(f"{name} must be a list of word ranks such as 2000,6000 (or none for "
                         f"the full softmax), got {value!r}")
    value = tuple(check_int(name, c, 1, hint="cluster boundaries are word ranks, e.g. "
                                             "2000,6000") for c in value)
    if any(b <= a for a, b in zip(value, value[1:])):
        raise ValueError(f"{name} must be strictly increasing word ranks, e.g. 2000,6000; got "
                         f"{','.join(map(str, value))}")
    return value


def _div_value(name, value):
    return check_number(name, value, 1, 1024, hint="each tail cluster's projection is this "
                                                  "many times narrower; Grave et al. use 4")


def _boolean(name, value):
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


def _lr_decay(name, value):
    return check_number(name, value, 1, FLOAT32_MAX, hint="1 keeps the learning rate")


def _pred_len(name, value):
    from lyricnn.decoding.generate import MAX_LENGTH
    return check_int(name, value, 0, MAX_LENGTH)


def _vocab_size(name, value):
    return check_int(name, value, 1, hint="it is the number of distinct characters of the "
                                         "corpus; an empty corpus has none")


def _sha1(name, value):
    if not isinstance(value, str) or len(value) != 40 or \
            any(c not in "0123456789abcdef" for c in value):
        raise ValueError(f"{name} must be 40 lowercase hex digits, got {value!r}")
    return value


def _field(default, help, check, **option):
    return field(default=default, metadata={"option": Option(help, check, **option)})



class _Config:
    """What ``RunConfig`` and ``TrainSettings`` share: checks, dict and argparse round trips."""

    def validate(self, derived=True):
        """Check every field through its ``Option.check``; return ``self``.

        Each field keeps the value its check returns, a plain Python value (a
        NumPy integer or float becomes an ``int`` or ``float``), so that the
        config always saves as JSON. ``derived=False`` skips the fields computed
        from the corpus (``vocab_size``, ``corpus_sha1``), for a config checked
        before the corpus is read.  Raises ``ValueError`` naming the first bad field.
        """
        for f in dataclasses.fields(self):
            option = f.metadata["option"]
            if derived or option.flag:
                # frozen: the checked value replaces the given one in place
                object.__setattr__(self, f.name, option.check(f.name, getattr(self, f.name)))
        return self

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def options(cls):
        """``{field name: Option}`` in declaration order."""
        return {f.name: f.metadata["option"] for f in dataclasses.fields(cls)}

    @classmethod
    def defaults(cls):
        return {f.name: f.default for f in dataclasses.fields(cls)}

    @classmethod
    def given(cls, args):
        """``{field: value}`` of the flags given on the command line (``None`` = not given).

        ``num_chars`` given as ``all`` is ``None`` like "not given": it is reported
        through ``args.num_chars_all``, set by the flag's type.
        """
        given = {}
        for name, option in cls.options().items():
            if not option.flag or not hasattr(args, name):
                continue
            value = getattr(args, name)
            if value is ALL:
                given[name] = None
            elif value is not None:
                given[name] = value
        return given

    @classmethod
    def from_args(cls, args, defaults=None, **values):
        """The config of parsed flags (see ``add_config_arguments``), defaults for the rest.

        ``defaults``: ``{name: value}`` replacing the class's defaults (as given
        to ``add_config_arguments``); ``values`` set fields outright, e.g. the
        derived ``vocab_size``.  Validated, except derived fields not given.
        """
        merged = {**(defaults or {}), **cls.given(args), **values}
        return cls(**merged).validate(derived=False)


@dataclass(frozen=True)
class RunConfig(_Config):
    """The model and how it is trained: saved in every checkpoint (``config.json``).

    ``corpus`` is an absolute path, or ``None`` for the Jay Chou lyrics of the
    data hub; ``num_chars`` ``None`` keeps the whole text.  ``sampler``
    ``None`` becomes the model's default (the book's: random for the scratch
    models, consecutive for the Gluon ones).
    """

    model: str = _field("rnn-scratch", "the language model: *-scratch are the book's "
                        "from-scratch cells (6.4, 6.7, 6.8; deep with --num-layers, 6.9), "
                        "rnn/gru/lstm the Gluon layers (6.5)", _model,
                        choices=model_names)
    num_layers: int = _field(1, f"recurrent layers (at most {MAX_LAYERS})", _num_layers,
                             parse=int_text, aliases=("--layers",), metavar="N")
    num_hiddens: int = _field(256, "hidden units per layer", _positive_int, parse=int_text,
                              aliases=("--hidden",), metavar="N")
    vocab_size: int = _field(0, "distinct characters of the corpus (derived)", _vocab_size,
                             flag=False)
    num_steps: int = _field(35, "time steps per minibatch sequence", _positive_int,
                            parse=int_text, aliases=("--steps",), metavar="N")
    batch_size: int = _field(32, "sequences per minibatch", _positive_int, parse=int_text,
                             aliases=("--batch",), metavar="N")
    lr: float = _field(1e2, "learning rate of the clipped SGD", _float32_positive,
                       parse=float_text, metavar="X")
    clipping_theta: float = _field(1e-2, "gradient clipping threshold theta (global L2 "
                                   "norm)", _float32_positive, parse=float_text,
                                   aliases=("--clip",), metavar="X")
    sampler: Optional[str] = _field(None, "minibatch sampler (6.3); default: random for the "
                                    "scratch models, consecutive for the Gluon ones, as in "
                                    "the book", _sampler, choices=lambda: SAMPLERS)
    seed: int = _field(0, f"seed of Python's, NumPy's and MXNet's generators (0..{MAX_SEED})",
                       _seed, parse=int_text, metavar="N")
    corpus: Optional[str] = _field(None, "UTF-8 .txt or .zip to train on (default: the Jay "
                                   "Chou lyrics from the data hub)", _corpus, metavar="PATH")
    num_chars: Optional[int] = _field(10000, "characters of the corpus to use; 'all' (or 0) "
                                      "for the whole file", _num_chars,
                                      parse=num_chars_text, metavar="N|all")
    valid_fraction: float = _field(0.0, "hold out the last F of the characters for a "
                                   "held-out perplexity (never trained on)", _fraction,
                                   parse=float_text, metavar="F")
    corpus_sha1: str = _field("", "SHA-1 of the characters trained on (derived)", _sha1,
                              flag=False)
    keep_newlines: bool = _field(False, "keep the corpus's line breaks as a character (the "
                                 "book turns them into spaces, so its models cannot tell a "
                                 "line end from a pause); generated lines then end with one",
                                 _boolean, switch=True)
    # -- word-level runs (issue 13); a character-level run keeps these defaults
    tokens: str = _field("char", "what the model reads: characters (the book) or words "
                         "(embedding input; word-level defaults: --model lstm --num-hiddens "
                         "200 --num-steps 35 --batch-size 20 --lr 20 --clip 0.25 "
                         "--lr-decay 4, the whole corpus)", _tokens, choices=lambda: TOKENS)
    tokenizer: str = _field("whitespace", "how a word-level corpus is cut into words "
                            "(jieba for Chinese)", _tokenizer, choices=lambda: TOKENIZERS)
    embed_size: int = _field(0, "word embedding size (0: --num-hiddens)", _embed_size,
                             parse=int_text, aliases=("--embed",), metavar="N")
    dropout: float = _field(0.0, "dropout on the embeddings, between layers and before the "
                            "decoder (word level)", _dropout, parse=float_text, metavar="P")
    tied: bool = _field(False, "the decoder shares the embedding matrix (needs --embed = "
                        "--num-hiddens)", _boolean, switch=True)
    lr_decay: float = _field(1.0, "divide the learning rate by X when the validation "
                             "perplexity stops improving (or every epoch after "
                             "--decay-from); 1 keeps it", _lr_decay, parse=float_text,
                             metavar="X")
    decay_from: int = _field(0, "0: anneal when validation stops improving; N: every epoch "
                             "after epoch N (Zaremba et al.)", _seed, parse=int_text,
                             metavar="N")
    # -- AWD-LSTM's regularisers, NT-ASGD and the adaptive softmax (issue 23; word level).
    # Off by default: the earlier recipes compute what they did.
    dropout_input: float = _field(0.0, "locked dropout on the embeddings: one mask per "
                                  "sequence, the same at every step (Gal & Ghahramani 2016; "
                                  "AWD-LSTM's dropouti); not with --dropout", _dropout,
                                  parse=float_text, metavar="P")
    dropout_hidden: float = _field(0.0, "locked dropout between recurrent layers (AWD-LSTM's "
                                   "dropouth)", _dropout, parse=float_text, metavar="P")
    dropout_output: float = _field(0.0, "locked dropout before the decoder (AWD-LSTM's "
                                   "dropout)", _dropout, parse=float_text, metavar="P")
    dropout_embed: float = _field(0.0, "embedding dropout: drop whole words, every occurrence "
                                  "in a minibatch (Gal & Ghahramani 2016; AWD-LSTM's "
                                  "dropoute)", _dropout, parse=float_text, metavar="P")
    weight_drop: float = _field(0.0, "DropConnect on the hidden-to-hidden weights, one mask "
                                "per minibatch, off at evaluation (Wan et al. 2013; "
                                "AWD-LSTM's wdrop)", _dropout, parse=float_text, metavar="P")
    ar: float = _field(0.0, "activation regularisation: X times the mean square of the "
                       "dropped last layer's output (Merity et al. 2017; AWD-LSTM: 2)",
                       _penalty, parse=float_text, metavar="X")
    tar: float = _field(0.0, "temporal activation regularisation: X times the mean square of "
                        "h_t - h_(t-1) of the last layer (AWD-LSTM: 1)", _penalty,
                        parse=float_text, metavar="X")
    asgd: int = _field(0, "NT-ASGD (Merity et al. 2018): average the weights from the first "
                       "epoch whose validation perplexity is worse than the best of the "
                       "epochs before the last N; validate and save the average. 0: off "
                       "(AWD-LSTM: 5)", _seed, parse=int_text, metavar="N")
    cutoffs: tuple = _field((), "adaptive softmax (Grave et al. 2017): the word ranks where "
                            "clusters start, e.g. 2000,6000 (the vocabulary is then sorted by "
                            "frequency); none: the full softmax", _cutoffs,
                            parse=_cutoffs_text, aliases=("--adaptive-softmax",),
                            metavar="C1,C2")
    div_value: float = _field(4.0, "adaptive softmax: cluster i's projection is "
                              "num_hiddens / X**i wide (untied)", _div_value,
                              parse=float_text, aliases=("--adaptive-div",), metavar="X")
    # -- data-parallel runs (issue 14)
    workers: int = _field(1, "worker processes of a distributed run (derived from the "
                          "KVStore; a resume needs as many)", _positive_int, flag=False)

    def __post_init__(self):
        # The sampler's default depends on the model (the book's choice per chapter).
        if self.sampler is None and isinstance(self.model, str):
            try:
                sampler = _default_sampler(self.model)
            except ValueError:
                return  # an unknown model: validate() names it
            object.__setattr__(self, "sampler", sampler)

    def validate(self, derived=True):
        """Check every field, then how they combine; ``ValueError`` naming the flags."""
        super().validate(derived)
        if self.tokens == "char":
            awd = [n for n in AWD_FIELDS
                   if getattr(self, n) != RunConfig.__dataclass_fields__[n].default]
            if awd:
                raise ValueError(f"{', '.join(flag_of(n) for n in awd)}: word-level training "
                                 "(AWD-LSTM's regularisers, NT-ASGD, the adaptive softmax); add "
                                 "--tokens word, or drop them")
            changed = [n for n in WORD_FIELDS
                       if getattr(self, n) != RunConfig.__dataclass_fields__[n].default]
            if "tokenizer" in changed:
                raise ValueError("--tokenizer cuts a word-level corpus: add --tokens word, or "
                                 "drop it")
            if changed and self.model.endswith("-scratch"):
                raise ValueError(f"{', '.join(flag_of(n) for n in changed)} apply to the Gluon "
                                 f"models (the embedding model with dropout and the annealed "
                                 f"rate), not --model {self.model}: use --model rnn, gru or "
                                 "lstm")
            self._check_tied()
            if self.corpus == PTB_CORPUS:
                raise ValueError("--corpus ptb is the word-level Penn Treebank: add --tokens "
                                 "word (a file named ptb: give its path, e.g. ./ptb)")
            return self
        if self.keep_newlines:
            raise ValueError("--keep-newlines is for character-level models: a word-level "
                             "corpus already ends each line with <eos>; drop it")
        if self.model.endswith("-scratch"):
            raise ValueError(f"--model {self.model}: word-level models are recurrent "
                             "layers with an embedding input; use --model rnn, gru or lstm")
        if self.sampler != "consecutive":
            raise ValueError("word-level models train on consecutive streams (the state is "
                             "carried); drop --sampler or use --sampler consecutive")
        self._check_tied()
        self._check_awd()
        if self.corpus == PTB_CORPUS and (self.valid_fraction or self.num_chars is not None):
            raise ValueError("--corpus ptb has its own train/valid/test files: drop "
                             "--valid-fraction and --num-chars")
        return self

    def _check_awd(self):
        locked = [flag_of(n) for n in ("dropout_input", "dropout_hidden", "dropout_output")
                  if getattr(self, n)]
        if self.dropout and locked:
            raise ValueError(f"--dropout {self.dropout:g} (a fresh mask per position, Zaremba "
                             f"et al.) and locked dropout ({', '.join(locked)}) would drop the "
                             "same units twice; use one or the other")
        if self.tar and self.num_steps < 2:
            raise ValueError(f"--tar compares consecutive steps: it needs --num-steps >= 2, "
                             f"got {self.num_steps}")
        if self.cutoffs and self.vocab_size and self.cutoffs[-1] >= self.vocab_size:
            raise ValueError(f"--cutoffs {','.join(map(str, self.cutoffs))}: every cutoff must "
                             f"be below the vocabulary's {self.vocab_size} words, so that each "
                             "cluster has words; choose smaller ranks or drop --cutoffs")
        if self.cutoffs and self.tied and self.div_value != 4.0:
            raise ValueError("--adaptive-div narrows untied tail projections; with --tied the "
                             "tail clusters read the embedding's full-width rows (no "
                             "reduction): drop --adaptive-div or --tied")

    @property
    def embedding_size(self):
        """The word embedding size: ``embed_size``, or ``num_hiddens`` when it is 0."""
        return self.embed_size or self.num_hiddens

    def with_corpus(self, text, vocab_size=None):
        """This config with ``vocab_size`` and ``corpus_sha1`` derived from ``text``, checked.

        ``vocab_size``: a word-level run's, from its vocabulary
        (``lyricnn.run.task``); default: the distinct characters.
        """
        if vocab_size is None:
            vocab_size = len(dict.fromkeys(text))
        return dataclasses.replace(self, vocab_size=vocab_size,
                                   corpus_sha1=text_sha1(text)).validate()

    def _check_tied(self):
        if self.tied and self.embedding_size != self.num_hiddens:
            raise ValueError(f"--tied shares the decoder's weight (vocab, --num-hiddens "
                             f"{self.num_hiddens}) with the embedding (vocab, --embed "
                             f"{self.embedding_size}), so they must be equal; set --embed "
                             f"{self.num_hiddens} or drop --tied")

    @property
    def embeds(self):
        """Whether the model reads an embedding (words always; characters when asked for an
        embedding, dropout or tying) instead of the book's one-hot vectors."""
        return self.tokens == "word" or bool(self.embed_size or self.dropout or self.tied)

    def split(self, sequence, unit="characters"):
        """``(training, held_out)``: the held-out part is the last ``valid_fraction``.

        The tail, not a random subset: held-out characters never appear in a
        training minibatch.  ``held_out`` is ``None`` when ``valid_fraction`` is 0.
        ``unit`` names the items of ``sequence`` in the message (a word corpus splits lines).
        """
        if self.valid_fraction == 0:
            return sequence, None
        n = len(sequence)
        n_valid = int(round(n * self.valid_fraction))
        if n < 4:
            raise ValueError(f"the corpus has {n} {unit[:-1] if n == 1 else unit}, and a held-out split needs at least "
                             f"4 (2 held out, 2 to train): use a longer corpus, or "
                             "--valid-fraction 0")
        if n_valid < 2 or n - n_valid < 2:
            raise ValueError(
                f"--valid-fraction {self.valid_fraction} of {n} {unit} leaves {n_valid} held-out "
                f"and {n - n_valid} training {unit}; both need at least 2: choose a fraction "
                f"between {2 / n:.3g} and {1 - 2 / n:.3g}")
        return sequence[:-n_valid], sequence[-n_valid:]

    def describe(self):
        return (f"model={self.model}, num_layers={self.num_layers}, "
                f"num_hiddens={self.num_hiddens}, vocab_size={self.vocab_size}")

    @classmethod
    def from_dict(cls, data):
        """A validated config from ``to_dict()`` output; ``ValueError`` naming the problem."""
        if not isinstance(data, dict):
            raise ValueError(f"a config must be a JSON object, got {type(data).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        # Saved before word-level fields existed: those runs had their defaults.
        # Saved before distributed runs: one worker. Before --keep-newlines: the book's spaces.
        data = {**{n: cls.__dataclass_fields__[n].default
                   for n in ("tokens", "workers", "keep_newlines") + WORD_FIELDS + AWD_FIELDS},
                **data}
        unknown = sorted(set(data) - set(names))
        missing = [n for n in names if n not in data]
        if unknown or missing:
            raise ValueError(f"config fields do not match this lyricnn's: unknown {unknown}, "
                             f"missing {missing}")
        return cls(**data).validate()

    @classmethod
    def from_args(cls, args, defaults=None, **values):
        # The level's defaults under the given flags.
        level = LEVEL_DEFAULTS.get(getattr(args, "tokens", None) or "char", {})
        defaults = {**level, **(defaults or {})}
        config = super().from_args(args, defaults, **values)
        if config.corpus not in (None, PTB_CORPUS):  # relative to the start, saved absolute
            config = dataclasses.replace(config, corpus=str(Path(config.corpus).resolve()))
        return config


@dataclass(frozen=True)
class TrainSettings(_Config):
    """The book's training arguments that are not part of the model: never saved.

    A resumed run may change them (``--epochs 400`` continues up to epoch 400).
    """

    num_epochs: int = _field(250, "total epochs; with --resume, train up to this many",
                             _positive_int, parse=int_text, aliases=("--epochs",),
                             metavar="N")
    pred_period: int = _field(50, "print the book's log lines every N epochs",
                              _positive_int, parse=int_text, aliases=("--period",),
                              metavar="N")
    pred_len: int = _field(50, "characters generated per prefix in the log", _pred_len,
                           parse=int_text, metavar="N")
