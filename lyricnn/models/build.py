"""The models a run names (``--model``): ``build_lm`` makes a fresh one, initialised the
book's way. Scratch models are ``ScratchLM`` over ``lyricnn.models.cells``; Gluon
ones ``GluonLM`` over ``RNNModel``."""

from mxnet import init, nd
from mxnet.gluon import rnn as gluon_rnn

from lyricnn.models import cells
from lyricnn.checks import check_choice, check_int
from lyricnn.context import resolve_ctx
from lyricnn.models.gluon import RNNModel
from lyricnn.models.interface import GluonLM, ScratchLM

SCRATCH_MODELS = ("rnn-scratch", "gru-scratch", "lstm-scratch")
GLUON_MODELS = ("rnn", "gru", "lstm")
MODELS = SCRATCH_MODELS + GLUON_MODELS
_GLUON_LAYERS = {"rnn": gluon_rnn.RNN, "gru": gluon_rnn.GRU, "lstm": gluon_rnn.LSTM}


def scratch_param_names(cell, num_layers):
    """Checkpoint names: the book's (``W_xh``, …, ``W_hq``, ``b_q``) for one layer,
    ``l1.W_xh``, ``l2.W_xh``, … per layer for deeper stacks."""
    names = cell.param_names()
    if num_layers == 1:
        return names + ["W_hq", "b_q"]
    return [f"l{l}.{n}" for l in range(1, num_layers + 1) for n in names] + ["W_hq", "b_q"]


def default_sampler(model):
    """The book's sampler for ``model``: random for the scratch models, consecutive for Gluon."""
    return "random" if check_choice("model", model, MODELS) in SCRATCH_MODELS else "consecutive"


def build_lm(model, vocab_size, num_hiddens, num_layers=1, ctx=None):
    """A fresh ``LanguageModel`` named ``model`` (one of ``MODELS``), initialised the book's way.

    Weights ~ N(0, 0.01²) drawn from MXNet's generator, biases zero. Gluon
    models are materialised with one dummy step, so that their parameters can
    be saved or loaded before any training.
    """
    check_choice("model", model, MODELS)
    vocab_size = check_int("vocab_size", vocab_size)
    num_hiddens = check_int("num_hiddens", num_hiddens)
    num_layers = check_int("num_layers", num_layers)
    ctx = resolve_ctx(ctx)
    if model in SCRATCH_MODELS:
        cell = cells.get_cell(model[:-len("-scratch")])
        return ScratchLM(cell, cells.init_params(cell, vocab_size, num_hiddens, num_layers, ctx),
                         cells.state_initializer(cell, num_layers), num_hiddens, vocab_size,
                         ctx, names=scratch_param_names(cell, num_layers))
    net = RNNModel(_GLUON_LAYERS[model](num_hiddens, num_layers=num_layers), vocab_size)
    net.initialize(ctx=ctx, init=init.Normal(0.01))
    net(nd.zeros((1, 1), ctx=ctx), net.begin_state(batch_size=1, ctx=ctx))
    return GluonLM(net, vocab_size, ctx)
