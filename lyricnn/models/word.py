"""The word-level model: Embedding -> Dropout -> Gluon RNN/GRU/LSTM stack -> Dropout -> Dense.

The model of Zaremba et al. and PyTorch's ``word_language_model``, optionally
with the decoder tied to the embedding; ``build_word_lm`` wraps it as a
``GluonLM``, so the one loop trains it like any other model. Its recurrent
layer runs through lyricnn's one wrapper of MXNet's fused kernel
(``lyricnn.models.fused.run``), as the character-level ``RNNModel`` does.
"""

from mxnet import init, nd
from mxnet.gluon import nn
from mxnet.gluon import rnn as gluon_rnn

from lyricnn.checks import check_choice, check_int, check_number
from lyricnn.context import resolve_ctx
from lyricnn.models.gluon import layer_arrays, layer_spec, run_layer
from lyricnn.models.interface import GluonLM
#: ``'rnn'`` is Gluon's default (ReLU) RNN, as ``lyricnn.models.interface``; ``'rnn_tanh'`` the classic one.
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

    Same contract as ``lyricnn.models.gluon.RNNModel``: ``inputs (batch,
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
        through lyricnn's one wrapper of the kernel (``fused.run``, whose parameter
        layout is faster than the Gluon layer's own)."""
        w = layer_arrays(F, self.rnn, state, emb.shape[1] if F is nd else None)
        return run_layer(F, self._spec, emb, state, w)

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
    """A fresh ``WordRNNModel`` as a ``lyricnn.models.interface.GluonLM``.

    Weights ~ U(-0.1, 0.1) (Zaremba et al.) from MXNet's generator, biases
    zero (MXNet's initialisers zero every ``*bias``, as word_language_model
    does for its decoder), materialised with one dummy step so it can be saved or loaded at once.
    """
    net = WordRNNModel(cell, vocab_size, embed_size, num_hiddens, num_layers, dropout, tied)
    ctx = resolve_ctx(ctx)
    net.initialize(ctx=ctx, init=init.Uniform(INIT_SCALE))
    net(nd.zeros((1, 1), ctx=ctx), net.begin_state(batch_size=1, ctx=ctx))
    return GluonLM(net, net.vocab_size, ctx)
