"""One-hot encoding of a minibatch (book 6.4.1)."""
from mxnet import nd


def to_onehot(X, size):
    """Encode ``X: (batch, num_steps)`` as a list of ``num_steps`` arrays ``(batch, size)``.

    Step ``t`` of the list is ``one_hot(X[:, t])``: the per-time-step inputs an
    RNN consumes in order.  (lyricnn's own models avoid materialising these:
    ``one_hot(x) · W`` is just a row gather ``W[x]``.)
    """
    return [nd.one_hot(x, size) for x in X.T]
