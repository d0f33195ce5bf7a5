"""The concise Gluon language model (book 6.5).

Note: ``gluon.rnn.RNN`` uses ReLU by default (``activation='relu'``), while the
scratch model uses tanh; the book keeps Gluon's default and so does lyricnn.
"""
from mxnet.gluon import nn


class RNNModel(nn.HybridBlock):
    """Any Gluon recurrent layer followed by a dense output layer.

    ``inputs: (batch, num_steps)`` indices are one-hot encoded time-major as
    ``(num_steps, batch, vocab_size)``; the output is ``(num_steps * batch,
    vocab_size)``, row ``t * batch + b`` for step ``t`` of sequence ``b``.
    ``state`` is what ``begin_state`` returns: a list of one array
    ``(layers, batch, hidden)``, or two for an LSTM.

    The Dense layer must see ``(num_steps * batch, hidden)``: given the 3-D
    output it would flatten it to ``(num_steps, batch * hidden)`` and fail with
    a shape error as soon as ``batch > 1``.
    """

    def __init__(self, rnn_layer, vocab_size, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.rnn = rnn_layer
            self.dense = nn.Dense(vocab_size)
        self.vocab_size = vocab_size

    def hybrid_forward(self, F, inputs, state):
        X = F.one_hot(F.transpose(inputs), self.vocab_size)
        Y, state = self.rnn(X, state)
        # (num_steps, batch, hidden) -> (num_steps * batch, hidden)
        return self.dense(Y.reshape((-3, 0))), state

    def begin_state(self, *args, **kwargs):
        """The recurrent layer's zero state, e.g. ``begin_state(batch_size=32, ctx=ctx)``."""
        return self.rnn.begin_state(*args, **kwargs)
