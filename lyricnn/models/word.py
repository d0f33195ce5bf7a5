"""TODO docstring (models.word, from wordlm.py)."""

from mxnet import init, nd
from mxnet.gluon import nn
from mxnet.gluon import rnn as gluon_rnn

from lyricnn.checks import check_choice, check_int, check_number
from lyricnn.context import resolve_ctx
from lyricnn.models.gluon import layer_parameters, layer_spec
from lyricnn.models.interface import GluonLM
#: ``'rnn'`` is Gluon's default (ReLU) RNN, as ``lyricnn.models``; ``'rnn_tanh'`` the classic one.
WORD_CELLS = ("rnn", "rnn_tanh", "gru", "lstm")
#: Zaremba et al. and word_language_model draw the weights from U(-0.1, 0.1).
INIT_SCALE = 0.1


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
