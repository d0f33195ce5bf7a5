"""One-hot encoding of a minibatch (book 6.4.1)."""
import numpy as np
from mxnet import nd

from lyricnn.checks import FLOAT32_EXACT, check_int


def to_onehot(X, size, sparse=False):
    """Encode ``X: (batch, num_steps)`` as a list of ``num_steps`` arrays ``(batch, size)``.

    Step ``t`` of the list is ``one_hot(X[:, t])``: the per-time-step inputs an
    RNN consumes in order.  (lyricnn's own models avoid materialising these:
    ``one_hot(x) · W`` is just a row gather ``W[x]``.)  ``size`` (the
    vocabulary size) is checked here: MXNet's ``one_hot`` answers a bad depth
    with a C++ stack trace.

    ``sparse=True`` returns the same values as CSR arrays, one ``one_hot`` for
    all steps: ``nd.dot(X_t, W)`` then runs MXNet's sparse kernel, a row
    gather, instead of a dense ``(batch, V) x (V, h)`` product: the same
    outputs, and gradients equal to float rounding. The training loop feeds
    a reader's own cell these (``lyricnn.models.interface.ScratchLM``).
    """
    size = check_int("size", size, 1, FLOAT32_EXACT,
                     hint="size is the vocabulary size (vocab_size); float32 indices are exact "
                          "below 2**24")
    if not isinstance(X, nd.NDArray) or X.ndim != 2:
        shape = getattr(X, "shape", None)
        raise ValueError(f"X must be a 2-D NDArray (batch_size, num_steps), got "
                         f"{type(X).__name__}" + (f" of shape {shape}" if shape else ""))
    _check_indices(X, size)
    if not sparse:
        return [nd.one_hot(x, size) for x in X.T]  # num_steps x (batch, size)
    steps = nd.one_hot(X.T, size)                 # (num_steps, batch, size)
    if X.shape[1] == 1:
        return [steps[0].tostype("csr")]
    # one split, not num_steps slices
    return [s.tostype("csr") for s in nd.split(steps, X.shape[1], axis=0, squeeze_axis=True)]


def _check_indices(X, size):
    """``ValueError`` unless ``X`` holds integers in ``[0, size)``: MXNet's ``one_hot`` gives a
    row of zeros for an index out of range and truncates a fraction, silently.

    ``X`` is a minibatch of indices, (batch, num_steps): reading it costs a few KB and no
    wait for queued operators when it is an input (the samplers' batches are), so the
    check runs on every call, as the book's own training loop calls this every minibatch.
    """
    values = X.asnumpy()
    if values.size and not (np.isfinite(values).all() and (values == np.floor(values)).all()
                            and values.min() >= 0 and values.max() < size):
        raise ValueError(f"X must hold integer token indices in [0, size={size}), found values "
                         f"in [{values.min()}, {values.max()}]; encode the text with the "
                         "vocabulary whose size you pass")
