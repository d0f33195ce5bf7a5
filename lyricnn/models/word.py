"""The word-level model: Embedding -> RNN/GRU/LSTM stack -> an output layer over the vocabulary.

The model of Zaremba et al. and PyTorch's ``word_language_model``, optionally
with the decoder tied to the embedding, and with AWD-LSTM's regularisers
(Merity et al. 2018, "Regularizing and Optimizing LSTM Language Models"), each
off by default so that the earlier recipes compute what they did:

=======================  =====================================================================
``dropout``              Zaremba et al. (2014): a fresh mask per position on the embeddings,
                         between layers (between the kernel's per-layer calls) and before
                         the decoder.
``dropout_input``        locked (variational, Gal & Ghahramani 2016) dropout: one mask per
``dropout_hidden``       sequence, the same at every time step, on the embeddings, between
``dropout_output``       layers and before the decoder. Exclusive with ``dropout``.
``dropout_embed``        embedding dropout (Gal & Ghahramani): whole words dropped, the same
                         word dropped at every position of the minibatch.
``weight_drop``          DropConnect on the hidden-to-hidden weights (Wan et al. 2013; AWD's
                         WeightDrop): one mask per minibatch, off at evaluation.
``ar``, ``tar``          activation regularisation ``ar * mean(m ⊙ h_t)^2`` on the dropped last
                         layer's output, temporal AR ``tar * mean((h_t - h_{t-1})^2)`` on the
                         undropped one, added to the training loss only.
``cutoffs``              an adaptive softmax (Grave et al. 2017, ``lyricnn.models.adaptive``)
                         instead of the full one; the vocabulary must be frequency-sorted.
=======================  =====================================================================

``build_word_lm`` wraps it as a ``WordLM`` (a ``GluonLM``), so the one loop
trains it like any other model. Its recurrent layers are a ``fused.Stack``: one
Parameter per layer already in the layout of MXNet's fused kernel, one kernel call
per layer (lyricnn's one wrapper of it, ``lyricnn.models.fused.run``), what
``gluon.rnn.LSTM`` computes without joining four Parameters into the kernel's
vector at every call. Checkpoints name each layer's vector ``rnn.lL_flat``;
older ones, with the four Gluon-named arrays, still load (``merge_layer_arrays``).
"""

import re
import warnings

from mxnet import autograd, init, nd
from mxnet.gluon import nn

from lyricnn.checks import check_choice, check_int, check_number
from lyricnn.context import resolve_ctx
from lyricnn.models import fused
from lyricnn.models.adaptive import AdaptiveSoftmax
from lyricnn.models.interface import GluonLM
from lyricnn.training.optim import _loss_and_unscaled_gradient

#: ``'rnn'`` is Gluon's default (ReLU) RNN, as ``lyricnn.models.interface``; ``'rnn_tanh'`` the classic one.
WORD_CELLS = ("rnn", "rnn_tanh", "gru", "lstm")
#: Zaremba et al. and word_language_model draw the weights from U(-0.1, 0.1).
INIT_SCALE = 0.1
#: The regularisers, with their defaults (off).
REGULARISERS = {"dropout_input": 0.0, "dropout_hidden": 0.0, "dropout_output": 0.0,
                "dropout_embed": 0.0, "weight_drop": 0.0, "ar": 0.0, "tar": 0.0}
#: AR and TAR are multipliers of mean squares; AWD-LSTM uses 2 and 1. Far above that the
#: loss is all penalty: a typo (``--ar 200``) is refused rather than silently crippling a run.
MAX_AR = 100.0


# ----------------------------------------------------------------------- checks

def _probability(name, value):
    value = check_number(name, value, 0, 1, hint="the probability of dropping a unit")
    if value == 1:
        raise ValueError(f"{name} must be < 1, got 1 (every unit dropped); use 0 to 0.7")
    return value


def check_regularisers(dropout=0.0, **given):
    """The regularisers' values, each checked (``ValueError`` naming it), defaults filled in."""
    unknown = sorted(set(given) - set(REGULARISERS))
    if unknown:
        raise ValueError(f"unknown regulariser(s) {unknown}; the model has "
                         f"{sorted(REGULARISERS)}")
    values = {**REGULARISERS, **given}
    for name in ("dropout_input", "dropout_hidden", "dropout_output", "dropout_embed",
                 "weight_drop"):
        values[name] = _probability(name, values[name])
    for name in ("ar", "tar"):
        values[name] = check_number(name, values[name], 0, MAX_AR,
                                    hint="AWD-LSTM uses ar=2, tar=1; 0 turns it off")
    locked = [n for n in ("dropout_input", "dropout_hidden", "dropout_output") if values[n]]
    if dropout and locked:
        raise ValueError(f"dropout={dropout} (a fresh mask per position, Zaremba et al.) and "
                         f"locked dropout ({', '.join(locked)}) would drop the same units "
                         "twice; use one or the other")
    return values


def _check_model_args(cell, vocab_size, embed_size, num_hiddens, num_layers, dropout, tied):
    check_choice("cell", cell, WORD_CELLS)
    vocab_size = check_int("vocab_size", vocab_size, minimum=2)
    embed_size = check_int("embed_size", embed_size)
    num_hiddens = check_int("num_hiddens", num_hiddens)
    num_layers = check_int("num_layers", num_layers)
    dropout = _probability("dropout", dropout)
    check_choice("tied", tied, (True, False))
    if tied and embed_size != num_hiddens:
        raise ValueError(f"tied=True shares the decoder's weight (vocab_size, num_hiddens) with "
                         f"the embedding (vocab_size, embed_size), so they must be equal: got "
                         f"embed_size={embed_size}, num_hiddens={num_hiddens}; make them equal "
                         "or pass tied=False")
    return vocab_size, embed_size, num_hiddens, num_layers, dropout


#: Each cell's mode of the fused kernel (``'rnn'``: Gluon's ReLU RNN).
KERNEL_MODES = {"rnn": "rnn_relu", "rnn_tanh": "rnn_tanh", "gru": "gru", "lstm": "lstm"}
#: A layer's parameter under its four names, as checkpoints before the flat layout hold it.
_LEGACY = re.compile(r"rnn\.l(\d+)_(i2h_weight|h2h_weight|i2h_bias|h2h_bias)")


def merge_layer_arrays(arrays, shapes):
    """``arrays`` (``{name: NDArray}``) with each layer's four arrays ``rnn.lL_i2h_weight``,
    ``rnn.lL_h2h_weight``, ``rnn.lL_i2h_bias``, ``rnn.lL_h2h_bias`` joined into that
    layer's flat vector ``rnn.lL_flat`` (the kernel's order), ``shapes`` the model's
    ``fused.Stack.shapes`` (per layer, ``fused.layer_shapes``).

    Word-level checkpoints written before the model kept one vector per layer
    (``fused.Stack``) hold the four Gluon-named arrays; they load into today's model
    through this. A piece of the wrong shape is a ``ValueError`` naming it. Anything
    else is left as it is for the name check of ``load_named_parameters`` to report:
    an incomplete layer, a layer the model does not have, one whose vector is there
    too, pieces of different dtypes."""
    layers = {}
    for name in arrays:
        match = _LEGACY.fullmatch(name)
        if match:
            layers.setdefault(int(match.group(1)), {})[match.group(2)] = name
    merged = dict(arrays)
    for l, names in sorted(layers.items()):
        if (l >= len(shapes) or len(names) != len(shapes[l]) or f"rnn.l{l}_flat" in arrays
                or len({arrays[name].dtype for name in names.values()}) != 1):
            continue
        for part, shape in shapes[l]:
            if arrays[names[part]].shape != shape:
                raise ValueError(f"parameter {names[part]!r} has shape "
                                 f"{arrays[names[part]].shape}, the model needs {shape}; the "
                                 "vocabulary size or the architecture differs")
        pieces = [merged.pop(names[part]).reshape((-1,)) for part, _ in shapes[l]]
        merged[f"rnn.l{l}_flat"] = nd.concat(*pieces, dim=0)
    return merged


# ----------------------------------------------------------------------- model

def _one(F, x):
    """``x[0, 0, 0]`` as a ``(1, 1, 1)`` array: a scalar in ``x``'s dtype and device that
    a compiled graph can build on (``F.ones`` knows neither)."""
    for axis in range(3):
        x = F.slice_axis(x, axis=axis, begin=0, end=1)
    return F.ones_like(x)


class WordRNNModel(nn.HybridBlock):
    """Embedding -> RNN/GRU/LSTM stack -> the decoder's input, plus the AR/TAR penalty.

    ``inputs (batch, num_steps)`` indices, ``state`` from ``begin_state``; returns
    ``(out, state)``: ``out`` is the logits ``(num_steps * batch, vocab_size)`` of
    the full softmax, or with ``cutoffs`` the decoder's input ``(num_steps * batch,
    num_hiddens)`` for ``self.decoder`` (an ``AdaptiveSoftmax``, which selects rows
    per target and so runs outside the compiled graph); row ``t * batch + b`` is
    step ``t`` of sequence ``b``. With AR or TAR it also returns the last layer's
    output after and before its dropout, each ``(num_steps, batch, num_hiddens)``,
    which the penalty reads (``WordLM.penalty``: outside the graph, which has no
    ``h_(t-1)`` at a one-step call). ``WordLM`` turns this into the ``LanguageModel``
    contract.

    ``tied``: the decoder's weight *is* the embedding matrix (one Parameter, as
    MXNet's ``example/rnn/word_lm``; Press & Wolf 2017), which needs
    ``embed_size == num_hiddens``. Tied to an adaptive softmax, the embedding's
    ``grad_req`` is ``'add'`` (``__init__``): ``WordLM``'s steps write its gradient
    first; a caller running its own backward through the model zeroes it before.
    The regularisers: the module docstring.
    """

    def __init__(self, cell, vocab_size, embed_size, num_hiddens, num_layers=1, dropout=0.0,
                 tied=False, cutoffs=(), div_value=4.0, **regularisers):
        vocab_size, embed_size, num_hiddens, num_layers, dropout = _check_model_args(
            cell, vocab_size, embed_size, num_hiddens, num_layers, dropout, tied)
        reg = check_regularisers(dropout, **regularisers)
        super().__init__()
        self.cell, self.vocab_size, self.tied = cell, vocab_size, tied
        self.num_layers, self.reg = num_layers, reg
        self.adaptive = bool(cutoffs)
        with self.name_scope():
            self.embedding = nn.Embedding(vocab_size, embed_size)
            self.drop = nn.Dropout(dropout)
            # Dropout between layers: Zaremba's per position, or AWD's locked one.
            self.rnn = fused.Stack(KERNEL_MODES[cell], num_hiddens, num_layers, embed_size,
                                   dropout=reg["dropout_hidden"] or dropout,
                                   locked=bool(reg["dropout_hidden"]),
                                   weight_drop=reg["weight_drop"])
            if self.adaptive:
                decoder = AdaptiveSoftmax(vocab_size, num_hiddens, cutoffs, div_value,
                                          tied=self.embedding.weight if tied else None)
                # A HybridBlock may not have a plain Block as a child, and the adaptive
                # softmax cannot be compiled (its loss selects rows per target). So it is
                # a plain attribute, called by WordLM outside the graph, and its Parameters
                # are this block's own: initialize, cast and collect_params reach them.
                if tied:
                    # The decoder writes the embedding's whole gradient and the lookup's
                    # backward adds its rows to it (AdaptiveSoftmax.loss_and_gradients'
                    # write_tied), instead of autograd summing a dense lookup gradient
                    # with the decoder's: 1.04x the tokens/s at 2 x 650, batch 20 x 35
                    # (median of 5 alternating rounds of benchmarks/bench_recipe_step.py
                    # --recipe adaptive-650, AMD EPYC; docs/RESULTS.md). So every backward
                    # through this model must start with that write: WordLM's steps do.
                    self.embedding.weight.grad_req = "add"
                self.__dict__["decoder"] = decoder
                self.params.update(decoder.collect_params())
            else:
                # params=embedding.params: the Dense looks its weight up under the
                # embedding's prefix and finds the embedding's own Parameter.
                self.decoder = nn.Dense(vocab_size, in_units=num_hiddens,
                                        params=self.embedding.params if tied else None)

    def hybrid_forward(self, F, inputs, state):
        if not isinstance(state, (list, tuple)):
            state = [state]
        reg = self.reg
        X = F.transpose(inputs)                              # (num_steps, batch)
        emb = self.embedding(X)                              # (num_steps, batch, embed_size)
        if reg["dropout_embed"]:
            # One keep/drop per word of the vocabulary, scaled by 1 / (1 - p): every
            # occurrence of a dropped word in this minibatch reads zeros.
            ones = F.broadcast_axis(_one(F, emb).reshape((1, 1)), axis=0,
                                    size=self.vocab_size)                    # (V, 1)
            keep = F.Dropout(ones, p=reg["dropout_embed"])
            emb = F.broadcast_mul(emb, F.Embedding(X, keep, self.vocab_size, 1))
        emb = self._dropout(F, self.drop(emb), reg["dropout_input"])
        Y, state = self.rnn(emb, list(state))                # Y: (num_steps, batch, num_hiddens)
        dropped = self._dropout(F, self.drop(Y), reg["dropout_output"])
        H = dropped.reshape((-3, 0))                         # (num_steps * batch, hidden)
        out = H if self.adaptive else self.decoder(H)
        if reg["ar"] or reg["tar"]:   # what the penalty reads (WordLM.penalty)
            return out, state, dropped, Y
        return out, state

    @staticmethod
    def _dropout(F, x, p):
        """Locked dropout of ``x (num_steps, batch, C)``: one mask per (sequence, unit), the
        same at every step (``axes=(0,)``: the mask is drawn once along time)."""
        return F.Dropout(x, p=p, axes=(0,)) if p else x

    def begin_state(self, *args, **kwargs):
        """The recurrent layer's zero state, e.g. ``begin_state(batch_size=20, ctx=ctx)``."""
        return self.rnn.begin_state(*args, **kwargs)

    def named_parameters(self):
        """``{'embedding.weight': Parameter, 'rnn.l0_flat': …, 'decoder.bias': …}``:
        structural names, independent of Gluon's per-process prefixes. A tied model
        lists the shared matrix once, as ``embedding.weight``."""
        named = {}
        seen = set()
        for child in ("embedding", "rnn", "decoder"):
            block = getattr(self, child)
            # The adaptive softmax's parameters are its sub-blocks'; the others' are their own
            # (a tied Dense's under the embedding's prefix, hence params.prefix).
            adaptive = child == "decoder" and self.adaptive
            params = block.collect_params() if adaptive else block.params
            prefix = block.prefix if adaptive else params.prefix
            for full, p in params.items():
                if id(p) in seen:
                    continue
                seen.add(id(p))
                named[f"{child}.{full[len(prefix):]}"] = p
        return named

    def __call__(self, inputs, state):
        if not self.adaptive:
            return super().__call__(inputs, state)
        # The compiled graph lists the adaptive softmax's Parameters (they are this block's,
        # see __init__) but never reads them: MXNet's warning says so on the first call.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", r"Parameter .* is not used by any computation")
            return super().__call__(inputs, state)


class WordLM(GluonLM):
    """A ``WordRNNModel`` as a ``LanguageModel``.

    ``lm(X, state)`` gives logits (with an adaptive softmax: its exact
    log-probabilities, which are logits of the same distribution), so scoring,
    evaluation and generation read it like any model. ``train_step`` adds the
    AR/TAR penalty and, with an adaptive softmax, trains through its loss without
    the ``(tokens, V)`` matrix.
    """

    def own_arrays(self, arrays):
        """``arrays`` under today's names: a checkpoint from before the flat layer vectors
        holds each layer's four arrays (``merge_layer_arrays``)."""
        return merge_layer_arrays(arrays, self.model.rnn.shapes)

    def forward(self, X, state):
        with self.ctx:
            out, state = self.model(X, state)[:2]
            return (self.model.decoder.log_prob(out) if self.model.adaptive else out), state

    def penalty(self, dropped, Y):
        """AR + TAR ``(1,)`` of the last layer's output ``dropped`` (after its dropout) and
        ``Y`` (before), each ``(num_steps, batch, num_hiddens)``: Merity et al.'s
        ``ar * mean(dropped^2) + tar * mean((Y_t - Y_(t-1))^2)``, means over every element."""
        reg = self.model.reg
        total = reg["ar"] * nd.mean(nd.square(dropped))
        if reg["tar"] and Y.shape[0] > 1:
            total = total + reg["tar"] * nd.mean(nd.square(Y[1:] - Y[:-1]))
        return total

    def _backward(self, X, Y, state, training):
        # train_step (training: dropout on, plus AR/TAR) and adapt_step (neither).
        net = self.model
        penalised = training and (net.reg["ar"] or net.reg["tar"])
        if not net.adaptive and not penalised:
            return super()._backward(X, Y, state, training)
        labels = Y.T.reshape((-1,))                          # time-major, as the rows
        tokens = Y.size
        with self.ctx, autograd.record(train_mode=training):
            out, state, *hidden = net(X, state)
            # The gradient arrays hold the gradient of the *summed* loss (the update
            # divides by the tokens): the penalty, a mean, counts tokens times.
            penalty = self.penalty(*hidden) * tokens if hidden and penalised else None
            if net.adaptive:
                # (1,), summed over tokens; the decoder's own gradients are done, what flows
                # back into the recurrent layers and the (tied) embedding is heads/grads.
                # adapt_step too: no (tokens, V) matrix, as log_prob's would be.
                nll, heads, grads = net.decoder.loss_and_gradients(
                    out, labels, write_tied=net.tied)
        if net.adaptive:
            if penalty is not None:
                heads, grads = heads + [penalty], grads + [nd.ones_like(penalty)]
            autograd.backward(heads, grads)
            return nll / tokens, state
        l, dlogits = _loss_and_unscaled_gradient(out, labels)
        autograd.backward([out, penalty], [dlogits, nd.ones_like(penalty)])
        return l, state


def build_word_lm(cell, vocab_size, embed_size, num_hiddens, num_layers=1, dropout=0.0,
                  tied=False, ctx=None, *, cutoffs=(), div_value=4.0, **regularisers):
    """A fresh ``WordRNNModel`` as a ``WordLM``.

    Weights ~ U(-0.1, 0.1) (Zaremba et al.) from MXNet's generator, biases
    zero (MXNet's initialisers zero every ``*bias``, as word_language_model
    does for its decoder; the recurrent layers' by ``fused.Stack``'s initializer, as
    Gluon's layers do), materialised with one dummy step so it can be saved or loaded at once.
    ``cutoffs``: an adaptive softmax over a frequency-sorted vocabulary
    (``lyricnn.models.adaptive``); ``regularisers``: ``REGULARISERS``' names.
    """
    net = WordRNNModel(cell, vocab_size, embed_size, num_hiddens, num_layers, dropout, tied,
                       cutoffs, div_value, **regularisers)
    ctx = resolve_ctx(ctx)
    net.initialize(ctx=ctx, init=init.Uniform(INIT_SCALE))
    lm = WordLM(net, net.vocab_size, ctx)
    lm(nd.zeros((1, 1), ctx=ctx), net.begin_state(batch_size=1, ctx=ctx))
    return lm
