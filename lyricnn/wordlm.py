"""Word-level language models (issue 13): corpus, embedding RNN model, whole-split evaluation.

The groundwork for word-level Penn Treebank, in the standard setup of
Mikolov's PTB, Zaremba et al. and PyTorch's ``word_language_model``:

* ``word_corpus``/``load_ptb_corpus``: tokens per line plus ``<eos>`` at each
  line end, the vocabulary from the training split only (first-appearance
  order, so indices depend only on the text), words of valid/test outside it
  mapped to ``<unk>``;
* ``WordRNNModel``: Embedding -> Dropout -> Gluon RNN/GRU/LSTM stack (dropout
  between layers) -> Dropout -> Dense decoder, optionally tied to the
  embedding; ``build_word_lm`` wraps it as a ``lyricnn.models.GluonLM``, so
  ``lyricnn.training.train_epochs`` trains it like any other model;
* ``evaluate_perplexity``: the whole split as ``batch_size`` consecutive
  streams with the state carried, every token scored exactly once.

No MXNet call happens before the arguments are checked.
"""
from collections import Counter
from dataclasses import dataclass
from typing import List, Optional

import numpy as np
from mxnet import autograd, init, nd
from mxnet.gluon import loss as gloss
from mxnet.gluon import nn
from mxnet.gluon import rnn as gluon_rnn

from .checks import check_choice, check_int, check_number
from .context import resolve_ctx
from .data import Vocab
from .gluon_model import layer_parameters, layer_spec
from .metrics import perplexity
from .models import GluonLM
from .sampling import batch_to_device
from .tokenize import EOS, PTB_SPLITS, UNK, read_ptb_text, segment, words

WORD_TOKENIZERS = ("whitespace", "jieba")
SPLITS = ("train", "valid", "test")
#: ``'rnn'`` is Gluon's default (ReLU) RNN, as ``lyricnn.models``; ``'rnn_tanh'`` the classic one.
WORD_CELLS = ("rnn", "rnn_tanh", "gru", "lstm")
#: Zaremba et al. and word_language_model draw the weights from U(-0.1, 0.1).
INIT_SCALE = 0.1


# ---------------------------------------------------------------------- corpus

@dataclass(repr=False)  # the default repr would print every index of PTB
class WordCorpus:
    """A word-indexed corpus: ``vocab`` (a ``lyricnn.data.Vocab``) built from ``train``;
    ``train``/``valid``/``test`` lists of indices (``None`` for a split not given);
    ``tokenizer`` the name of the tokenizer that cut the text."""

    vocab: Vocab
    train: List[int]
    valid: Optional[List[int]]
    test: Optional[List[int]]
    tokenizer: str

    def split(self, name):
        """The indices of split ``name``; ``ValueError`` when the corpus has no such split."""
        check_choice("split", name, SPLITS)
        indices = getattr(self, name)
        if indices is None:
            raise ValueError(f"the corpus has no {name} split; build it with "
                             f"word_corpus(..., {name}_text=...)")
        return indices

    @property
    def vocab_size(self):
        return len(self.vocab)

    def __repr__(self):
        sizes = ", ".join(f"{name} {len(getattr(self, name)):,}" for name in SPLITS
                          if getattr(self, name) is not None)
        return (f"WordCorpus({self.vocab_size:,} types, {self.tokenizer} tokens: "
                f"{sizes})")


def tokenize_lines(text, tokenizer="whitespace", eos=True):
    """Words of ``text``, line by line, with ``EOS`` after every non-blank line when ``eos``.

    ``'whitespace'`` splits on whitespace (PTB); ``'jieba'`` segments Chinese
    with jieba (``lyricnn.tokenize.segment``) and drops its whitespace tokens.
    """
    check_choice("tokenizer", tokenizer, WORD_TOKENIZERS)
    if tokenizer == "whitespace":
        return words(text, eos=eos)
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    tokens = []
    for line in text.splitlines():
        line_words = [w for w in segment(line) if w.strip()]
        if line_words:
            tokens.extend(line_words)
            if eos:
                tokens.append(EOS)
    return tokens


def _build_vocab(tokens, max_vocab, unk):
    """First-appearance vocabulary of ``tokens``; with ``max_vocab`` only the most frequent
    types are kept (ties by first appearance), ``<unk>`` counted among them."""
    vocab = Vocab.from_tokens(tokens)
    if unk and UNK not in vocab:
        vocab = Vocab(vocab.idx_to_token + [UNK])
    if max_vocab is not None and len(vocab) > max_vocab:
        if UNK not in vocab:
            raise ValueError(f"max_vocab={max_vocab} would drop words from a vocabulary of "
                             f"{len(vocab)} without {UNK!r} to stand for them; pass unk=True")
        counts = Counter(tokens)
        first = vocab.token_to_idx
        # UNK always stays; the rest by descending count, ties by first appearance.
        others = sorted((t for t in vocab.idx_to_token if t != UNK),
                        key=lambda t: (-counts[t], first[t]))[:max_vocab - 1]
        keep = set(others) | {UNK}
        vocab = Vocab([t for t in vocab.idx_to_token if t in keep])
    return vocab


def _index(name, tokens, vocab):
    """Indices of ``tokens``; unknown words become ``<unk>`` if the vocabulary has it."""
    table = vocab.token_to_idx
    unk = table.get(UNK)
    if unk is None:
        for position, t in enumerate(tokens):
            if t not in table:
                raise ValueError(f"{name} has the word {t!r} (token {position}) that is not in "
                                 f"the training vocabulary, which has no {UNK!r}; pass unk=True "
                                 "or add the word to the training text")
        return [table[t] for t in tokens]
    return [table.get(t, unk) for t in tokens]


def word_corpus(train_text, valid_text=None, test_text=None, tokenizer="whitespace", eos=True,
                max_vocab=None, unk=True):
    """A ``WordCorpus`` from raw texts (str), the vocabulary from ``train_text`` only.

    ``eos``: an ``<eos>`` token after every non-blank line (Mikolov's PTB).
    ``unk``: add ``<unk>`` to the vocabulary (at the end) when the training text
    lacks it; words of valid/test outside the vocabulary then become ``<unk>``.
    With ``unk=False`` and no ``<unk>`` in the training text such a word is a
    ``ValueError`` naming it. ``max_vocab``: keep the ``max_vocab`` most frequent
    types (``<unk>`` included; the others become ``<unk>``, in train too).
    """
    check_choice("tokenizer", tokenizer, WORD_TOKENIZERS)
    check_choice("eos", eos, (True, False))
    check_choice("unk", unk, (True, False))
    if max_vocab is not None:
        max_vocab = check_int("max_vocab", max_vocab, minimum=2,
                              hint="a language model needs at least 2 types; None keeps all")
    splits = {"train_text": train_text, "valid_text": valid_text, "test_text": test_text}
    tokens = {}
    for name, text in splits.items():
        if text is None:
            continue
        if not isinstance(text, str):
            raise TypeError(f"{name} must be a str, got {type(text).__name__}")
        tokens[name] = tokenize_lines(text, tokenizer, eos)
        if not tokens[name]:
            raise ValueError(f"{name} has no words ({len(text)} characters of whitespace or "
                             "nothing); pass a text with words in it")
    vocab = _build_vocab(tokens["train_text"], max_vocab, unk)
    if len(vocab) < 2:
        raise ValueError(f"the training vocabulary has {len(vocab)} type "
                         f"({vocab.idx_to_token!r}); a language model needs at least 2: "
                         "use a longer text, eos=True or unk=True")
    indexed = {name: _index(name, toks, vocab) for name, toks in tokens.items()}
    return WordCorpus(vocab, indexed["train_text"], indexed.get("valid_text"),
                      indexed.get("test_text"), tokenizer)


def load_ptb_corpus(path=None):
    """Word-level Penn Treebank from the data hub's ``ptb.zip`` (``path``: that file or
    its folder): 10,000 types including ``<unk>`` and ``<eos>``, train/valid/test."""
    texts = {split: read_ptb_text(split, path) for split in PTB_SPLITS}
    return word_corpus(texts["train"], texts["valid"], texts["test"], "whitespace", eos=True)


def encode_words(words_, vocab, name="text"):
    """Indices of ``words_`` in ``vocab``: unknown words become ``<unk>`` when the
    vocabulary has it, otherwise ``ValueError`` naming the first one."""
    return _index(name, list(words_), vocab)


def corpus_text_of(config):
    """The text a word-level run trains on (what its checkpoint keeps): PTB's training
    file for ``corpus='ptb'``, else the corpus file (``num_chars`` characters if set)."""
    from .config import PTB_CORPUS
    from .data import read_text
    if config.corpus == PTB_CORPUS:
        return read_ptb_text("train")
    if config.corpus is None:
        from .data import load_corpus_chars
        return load_corpus_chars(None, config.num_chars)
    text = read_text(config.corpus)
    return text if config.num_chars is None else text[:config.num_chars]


def word_corpus_of(config, text, held_out=True):
    """The ``WordCorpus`` of a word-level run ``config`` trained on ``text``.

    PTB (``config.corpus == 'ptb'``): ``text`` is the training file; valid and
    test are the data hub's files. Any other text: its lines, the last
    ``valid_fraction`` of them held out as the valid split (no test split).
    The vocabulary comes from the training part only. ``held_out=False``
    skips reading/tokenising the held-out splits (a checkpoint's vocabulary).
    """
    from .config import PTB_CORPUS
    if config.corpus == PTB_CORPUS:
        if not held_out:
            return word_corpus(text, tokenizer="whitespace")
        return word_corpus(text, read_ptb_text("valid"), read_ptb_text("test"), "whitespace")
    lines = text.splitlines(keepends=True)
    if config.valid_fraction:
        train_lines, valid_lines = config.split(lines)
    else:
        train_lines, valid_lines = lines, None
    valid_text = "".join(valid_lines) if valid_lines and held_out else None
    return word_corpus("".join(train_lines), valid_text, None, config.tokenizer)


# ----------------------------------------------------------------------- model

def _check_model_args(cell, vocab_size, embed_size, num_hiddens, num_layers, dropout, tied):
    check_choice("cell", cell, WORD_CELLS)
    vocab_size = check_int("vocab_size", vocab_size, minimum=2)
    embed_size = check_int("embed_size", embed_size)
    num_hiddens = check_int("num_hiddens", num_hiddens)
    num_layers = check_int("num_layers", num_layers)
    dropout = check_number("dropout", dropout, 0, 1, hint="the probability of dropping a unit")
    if dropout == 1:
        raise ValueError("dropout must be < 1, got 1 (every unit dropped); use 0 to 0.7")
    check_choice("tied", tied, (True, False))
    if tied and embed_size != num_hiddens:
        raise ValueError(f"tied=True shares the decoder's weight (vocab_size, num_hiddens) with "
                         f"the embedding (vocab_size, embed_size), so they must be equal: got "
                         f"embed_size={embed_size}, num_hiddens={num_hiddens}; make them equal "
                         "or pass tied=False")
    return vocab_size, embed_size, num_hiddens, num_layers, dropout


def _recurrent_layer(cell, num_hiddens, num_layers, dropout, input_size):
    if cell == "rnn":
        return gluon_rnn.RNN(num_hiddens, num_layers, dropout=dropout, input_size=input_size)
    if cell == "rnn_tanh":
        return gluon_rnn.RNN(num_hiddens, num_layers, activation="tanh", dropout=dropout,
                             input_size=input_size)
    layer = gluon_rnn.GRU if cell == "gru" else gluon_rnn.LSTM
    return layer(num_hiddens, num_layers, dropout=dropout, input_size=input_size)


class WordRNNModel(nn.HybridBlock):
    """Embedding -> Dropout -> RNN/GRU/LSTM stack -> Dropout -> Dense over the vocabulary.

    Same contract as ``lyricnn.gluon_model.RNNModel``: ``inputs (batch,
    num_steps)`` indices, ``state`` from ``begin_state``; returns logits
    ``(num_steps * batch, vocab_size)``, row ``t * batch + b`` for step ``t``
    of sequence ``b``, and the new state. ``dropout`` applies to the
    embeddings, between recurrent layers and before the decoder (Zaremba et
    al.). ``tied``: the decoder's weight *is* the embedding matrix (one
    Parameter, as MXNet's ``example/rnn/word_lm``; Press & Wolf 2017), which
    needs ``embed_size == num_hiddens``.
    """

    def __init__(self, cell, vocab_size, embed_size, num_hiddens, num_layers=1, dropout=0.0,
                 tied=False, **kwargs):
        vocab_size, embed_size, num_hiddens, num_layers, dropout = _check_model_args(
            cell, vocab_size, embed_size, num_hiddens, num_layers, dropout, tied)
        super().__init__(**kwargs)
        self.cell, self.vocab_size, self.tied = cell, vocab_size, tied
        with self.name_scope():
            self.embedding = nn.Embedding(vocab_size, embed_size)
            self.drop = nn.Dropout(dropout)
            self.rnn = _recurrent_layer(cell, num_hiddens, num_layers, dropout, embed_size)
            self._spec = layer_spec(self.rnn)
            # params=embedding.params: the Dense looks its weight up under the
            # embedding's prefix and finds the embedding's own Parameter.
            self.decoder = nn.Dense(vocab_size, in_units=num_hiddens,
                                    params=self.embedding.params if tied else None)

    def hybrid_forward(self, F, inputs, state):
        if not isinstance(state, (list, tuple)):
            state = [state]
        # (batch, num_steps) -> (num_steps, batch, embed_size)
        emb = self.drop(self.embedding(F.transpose(inputs)))
        Y, state = self._recurrent(F, emb, list(state))  # Y: (num_steps, batch, num_hiddens)
        Y = self.drop(Y)
        # (num_steps * batch, num_hiddens) -> (num_steps * batch, vocab_size)
        return self.decoder(Y.reshape((-3, 0))), state

    def _recurrent(self, F, emb, state):
        """``self.rnn(emb, state)``: the same ``RNN`` operator on the same parameters,
        flattened in 2-D blocks.

        The Gluon layer concatenates its per-layer weights into the operator's one
        flat vector on every call as 1-D arrays, which MXNet copies element by
        element: 7.7 ms forward + 5.4 ms backward at 2x200 and 106 ms at 2x650
        per minibatch (AMD EPYC 2 vCPU, MXNet 1.9.1). Every weight and bias has
        a multiple of ``gates * hidden`` elements, so the same bytes concatenated
        as ``(-1, gates * hidden)`` blocks take 2.8 ms and 13.6 ms.
        """
        spec, params = self._spec, layer_parameters(self.rnn)
        if F is nd:
            for s, info in zip(state, self.rnn.state_info(emb.shape[1])):
                if s.shape != info["shape"]:  # the check (and message) of the layer itself
                    raise ValueError(f"Invalid recurrent state shape. Expecting "
                                     f"{info['shape']}, got {s.shape}.")
            w = {name: p.data(emb.context) for name, p in params.items()}
        else:
            w = {name: p.var() for name, p in params.items()}
        width = spec.gates * spec.num_hiddens
        # The operator's order: every weight (layer by layer, i2h then h2h), then every bias.
        order = [f"l{l}_{g}_{kind}" for kind in ("weight", "bias")
                 for l in range(spec.num_layers) for g in ("i2h", "h2h")]
        flat = F.concat(*[w[name].reshape((-1, width)) for name in order], dim=0)
        out = F.RNN(emb, flat.reshape((-1,)), *state, state_size=spec.num_hiddens,
                    num_layers=spec.num_layers, mode=spec.mode, p=spec.dropout,
                    state_outputs=True, **spec.lstm_clip)
        return out[0], [out[i] for i in range(1, len(state) + 1)]

    def begin_state(self, *args, **kwargs):
        """The recurrent layer's zero state, e.g. ``begin_state(batch_size=20, ctx=ctx)``."""
        return self.rnn.begin_state(*args, **kwargs)

    def named_parameters(self):
        """``{'embedding.weight': Parameter, 'rnn.l0_i2h_weight': …, 'decoder.bias': …}``:
        structural names, independent of Gluon's per-process prefixes. A tied model
        lists the shared matrix once, as ``embedding.weight``."""
        named = {}
        seen = set()
        for child in ("embedding", "rnn", "decoder"):
            block = getattr(self, child)
            for full, p in block.params.items():
                if id(p) in seen:
                    continue
                seen.add(id(p))
                named[f"{child}.{full[len(block.params.prefix):]}"] = p
        return named


def build_word_lm(cell, vocab_size, embed_size, num_hiddens, num_layers=1, dropout=0.0,
                  tied=False, ctx=None):
    """A fresh ``WordRNNModel`` as a ``lyricnn.models.GluonLM``.

    Weights ~ U(-0.1, 0.1) (Zaremba et al.) from MXNet's generator, biases
    zero (MXNet's initialisers zero every ``*bias``, as word_language_model
    does for its decoder), materialised with one dummy step so it can be saved or loaded at once.
    """
    net = WordRNNModel(cell, vocab_size, embed_size, num_hiddens, num_layers, dropout, tied)
    ctx = resolve_ctx(ctx)
    net.initialize(ctx=ctx, init=init.Uniform(INIT_SCALE))
    net(nd.zeros((1, 1), ctx=ctx), net.begin_state(batch_size=1, ctx=ctx))
    return GluonLM(net, net.vocab_size, ctx)


# ------------------------------------------------------------------ evaluation

def _as_indices(indices, vocab_size=None):
    """``indices`` as a 1-D float32 array after checking they are token indices."""
    if isinstance(indices, (str, bytes)) or indices is None:
        raise ValueError(f"indices must be a sequence of token indices, got {indices!r:.60}")
    arr = np.asarray(indices.asnumpy() if hasattr(indices, "asnumpy") else indices)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iuf"):
        raise ValueError(f"indices must be a flat sequence of token indices, got shape "
                         f"{arr.shape} dtype {arr.dtype}")
    if arr.size and (not np.isfinite(arr).all() or (arr != np.round(arr)).any()
                     or arr.min() < 0 or (vocab_size is not None and arr.max() >= vocab_size)):
        raise ValueError(f"indices must be integers in [0, vocab_size={vocab_size}), found "
                         f"values in [{arr.min()}, {arr.max()}]; index the split with the "
                         "model's vocabulary")
    return arr.astype(np.float32)


def stream_batches(indices, batch_size, num_steps):
    """The evaluation batches of a split, as NumPy ``(X, Y)`` pairs ``(batch_size, steps)``.

    The stream is cut into ``batch_size`` equal columns (the tail that does not
    fill a column is dropped, as ``data_iter_consecutive`` does); each column
    is read ``num_steps`` at a time *including* a final shorter chunk, so every
    token of the trimmed stream but the first of each column is a target
    exactly once.
    """
    batch_size, num_steps = check_int("batch_size", batch_size), check_int("num_steps", num_steps)
    corpus = _as_indices(indices)
    batch_len = len(corpus) // batch_size
    if batch_len < 2:
        raise ValueError(f"a split of {len(corpus)} tokens cut into batch_size={batch_size} "
                         f"columns leaves {batch_len} token per column, need at least 2; use a "
                         "smaller batch_size")
    rows = corpus[:batch_size * batch_len].reshape((batch_size, batch_len))
    return _chunks(rows, num_steps)


def _chunks(rows, num_steps):
    batch_len = rows.shape[1]
    for i in range(0, batch_len - 1, num_steps):
        steps = min(num_steps, batch_len - 1 - i)
        yield rows[:, i:i + steps], rows[:, i + 1:i + 1 + steps]


def evaluate_perplexity(lm, indices, batch_size, num_steps):
    """Perplexity of ``lm`` (a ``LanguageModel``) on a whole split, full softmax.

    The batches are ``stream_batches``: the state is carried across chunks, so
    the result does not depend on ``num_steps`` (up to float rounding); the
    ``batch_size * (len // batch_size - 1)`` targets are each scored once and
    ``<unk>`` counts as a token (as the published PTB figures). Dropout is off
    (``autograd.predict_mode``).
    """
    batches = stream_batches(_as_indices(indices, lm.vocab_size), batch_size, num_steps)
    loss = gloss.SoftmaxCrossEntropyLoss()
    sums, count = [], 0
    state = lm.begin_state(batch_size)
    with autograd.predict_mode():
        for X, Y in batches:                             # (batch, steps) each
            logits, state = lm(batch_to_device(X, lm.ctx), state)  # (steps * batch, V)
            # Time-major targets to match the logits' rows.
            sums.append(loss(logits, batch_to_device(Y.T.reshape((-1,)), lm.ctx)).sum())
            count += Y.size
    total = float(nd.concat(*sums, dim=0).asnumpy().astype(np.float64).sum())
    return perplexity(total / count)


# -------------------------------------------------------------------- training

#: Held-out streams are read 10 columns wide, as word_language_model's eval_batch_size.
EVAL_BATCH_SIZE = 10


def word_batches(indices, batch_size, num_steps, ctx):
    """One epoch's training minibatches: ``stream_batches`` as NDArrays on ``ctx``.

    The same consecutive streams as evaluation (truncated BPTT over
    ``batch_size`` columns, offset 0, last chunk shorter), as
    word_language_model and Zaremba et al. train.
    """
    for X, Y in stream_batches(indices, batch_size, num_steps):   # (batch, steps) each
        yield batch_to_device(X, ctx), batch_to_device(Y, ctx)


def train_word_lm(lm, train, valid, epochs, *, batch_size=20, num_steps=35, lr=20.0,
                  clipping_theta=0.25, lr_decay=4.0, decay_from=0, history=None,
                  on_epoch_end=None, seed=None, should_stop=None, on_batch=None,
                  eval_batch_size=EVAL_BATCH_SIZE, ctx=None, kvstore=None):
    """Train a word-level ``lm`` on the ``train`` indices for each epoch number in ``epochs``.

    The book's loop (``lyricnn.training.train_epochs``: clipped SGD on the
    per-token mean cross-entropy, global-norm clipping, MXNet reseeded per
    epoch with ``seed``) with the word-level parts: consecutive streams
    (``word_batches``), the held-out perplexity of the whole ``valid`` split
    after every epoch (``evaluate_perplexity``), and the learning rate of
    ``lyricnn.training.annealed_lr`` (``decay_from=0``: divided by ``lr_decay``
    whenever the validation perplexity does not improve; ``N``: every epoch
    after epoch N). Returns the ``History`` (with each epoch's ``lr``).

    On the per-token mean loss, Zaremba et al.'s lr 1 and clipping 5 on the
    loss *summed* over ``num_steps`` are ``lr = num_steps`` and
    ``clipping_theta = 5 / num_steps``.

    ``ctx`` (several devices, the first ``lm.ctx``) and ``kvstore``
    (``'dist_sync'``: worker processes) train data-parallel, as ``train_epochs``.
    """
    from .training import annealed_lr, train_epochs   # training imports models, not us

    batch_size = check_int("batch_size", batch_size)
    num_steps = check_int("num_steps", num_steps)
    lr = check_number("lr", lr, 0, low_open=True)
    lr_decay = check_number("lr_decay", lr_decay, 1, hint="1 keeps the learning rate")
    decay_from = check_int("decay_from", decay_from, 0)
    train = _as_indices(train, lm.vocab_size)
    next(iter(stream_batches(train, batch_size, num_steps)))   # too short: fail now
    evaluate = None
    if valid is not None:
        valid = _as_indices(valid, lm.vocab_size)
        next(iter(stream_batches(valid, eval_batch_size, num_steps)))

        def evaluate(model):
            return evaluate_perplexity(model, valid, eval_batch_size, num_steps)
    elif lr_decay != 1 and decay_from == 0:
        raise ValueError("lr_decay with decay_from=0 divides the learning rate when the "
                         "validation perplexity stops improving, so it needs a valid split; "
                         "give one, set decay_from > 0, or lr_decay=1")

    def schedule(epoch, hist):
        return annealed_lr(epoch, hist, lr, lr_decay, decay_from)

    return train_epochs(lm, None, False, num_steps, batch_size, lr, clipping_theta, epochs,
                        history, None, on_epoch_end, seed=seed, should_stop=should_stop,
                        batches=lambda: word_batches(train, batch_size, num_steps, lm.ctx),
                        evaluate=evaluate, schedule=schedule, on_batch=on_batch, ctx=ctx,
                        kvstore=kvstore)
