"""The book's text generation: ``predict_rnn`` (6.4.3) and ``predict_rnn_gluon`` (6.5).

Both wrap the one decoder, ``lyricnn.decoding.generate.generate``.
"""
from lyricnn.book.trainers import check_vocabulary, scratch_lm
from mxnet.gluon.parameter import DeferredInitializationError

from lyricnn.context import resolve_ctx
from lyricnn.decoding.generate import generate
from lyricnn.models.interface import GluonLM


def predict_rnn(prefix, num_chars, rnn, params, init_rnn_state, num_hiddens, vocab_size,
                ctx, idx_to_char, char_to_idx, strategy="greedy", temperature=1.0,
                top_k=None, seed=None):
    """Continue ``prefix`` by ``num_chars`` characters with a scratch RNN (book 6.4.3).

    Same signature and greedy behaviour as d2lzh; the keyword options select
    another decoding strategy. A prefix character outside the vocabulary
    raises ``ValueError`` naming it (d2lzh raises a bare ``KeyError``).
    """
    check_vocabulary(vocab_size, idx_to_char, char_to_idx, rnn=rnn, params=params,
                     num_hiddens=num_hiddens)
    lm = scratch_lm(rnn, params, init_rnn_state, num_hiddens, vocab_size, resolve_ctx(ctx))
    return generate(lm, prefix, num_chars, idx_to_char, char_to_idx, strategy, temperature,
                    top_k, seed)


def predict_rnn_gluon(prefix, num_chars, model, vocab_size, ctx, idx_to_char, char_to_idx,
                      strategy="greedy", temperature=1.0, top_k=None, seed=None):
    """Continue ``prefix`` with a Gluon ``RNNModel`` (book 6.5); options as ``predict_rnn``."""
    check_vocabulary(vocab_size, idx_to_char, char_to_idx, model=model)
    ctx = resolve_ctx(ctx)
    try:
        for p in model.collect_params().values():
            try:
                p.data(ctx)
            except DeferredInitializationError:   # initialised; shapes come at 1st call
                pass
    except RuntimeError:   # Gluon: "has not been initialized" / "not initialized on context"
        raise ValueError(f"the model's parameters are not initialised on {ctx}: call "
                         f"model.initialize(ctx={ctx}) (or train it) first") from None
    lm = GluonLM(model, vocab_size, ctx, hybridize=False)
    return generate(lm, prefix, num_chars, idx_to_char, char_to_idx, strategy, temperature,
                    top_k, seed)
