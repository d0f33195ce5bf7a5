"""The book's notebook code for section 6.4, as readers type it (the reference oracle).

d2lzh ships the training and prediction functions but not these: the book
defines them in the notebook.  Benchmarks and tests run them through d2lzh
to compare lyricnn against the book on the same inputs.
"""
from mxnet import nd


def make_get_params(vocab_size, num_hiddens, ctx):
    """The notebook's ``get_params`` closure over ``vocab_size, num_hiddens, ctx``."""
    def get_params():
        def _one(shape):
            return nd.random.normal(scale=0.01, shape=shape, ctx=ctx)
        W_xh = _one((vocab_size, num_hiddens))
        W_hh = _one((num_hiddens, num_hiddens))
        b_h = nd.zeros(num_hiddens, ctx=ctx)
        W_hq = _one((num_hiddens, vocab_size))
        b_q = nd.zeros(vocab_size, ctx=ctx)
        params = [W_xh, W_hh, b_h, W_hq, b_q]
        for param in params:
            param.attach_grad()
        return params
    return get_params


def init_rnn_state(batch_size, num_hiddens, ctx):
    return (nd.zeros(shape=(batch_size, num_hiddens), ctx=ctx),)


def rnn(inputs, state, params):
    W_xh, W_hh, b_h, W_hq, b_q = params
    H, = state
    outputs = []
    for X in inputs:
        H = nd.tanh(nd.dot(X, W_xh) + nd.dot(H, W_hh) + b_h)
        Y = nd.dot(H, W_hq) + b_q
        outputs.append(Y)
    return outputs, (H,)
