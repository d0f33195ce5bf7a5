"""Text generation from a trained model (book 6.4.3 and 6.5).

After the prefix has been fed in, each next character is chosen from the
model's logits: ``'greedy'`` (the book: argmax) or ``'sample'`` (from the
softmax at ``temperature``, optionally restricted to the ``top_k`` most likely).
"""
import numpy as np
from mxnet import nd

from .scratch import sequence_forward

STRATEGIES = ("greedy", "sample")


def _prefix_indices(prefix, char_to_idx):
    if not isinstance(prefix, str) or not prefix:
        raise ValueError(f"prefix must be a non-empty string, got {prefix!r}")
    missing = [c for c in prefix if c not in char_to_idx]
    if missing:
        raise ValueError(
            f"prefix {prefix!r} contains character(s) {''.join(dict.fromkeys(missing))!r} "
            "that are not in the vocabulary; use characters from the training corpus")
    return [char_to_idx[c] for c in prefix]


def check_strategy(strategy, temperature, top_k):
    """Validate the decoding options; raise ``ValueError`` naming the bad one."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
            or temperature < 0:
        raise ValueError(f"temperature must be a number >= 0, got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int)
                              or top_k < 1):
        raise ValueError(f"top_k must be None or an integer >= 1, got {top_k!r}")


def choose_next(logits, strategy="greedy", temperature=1.0, top_k=None, rng=None):
    """Pick the next index from ``logits: (V,)`` (NumPy).

    ``'sample'`` draws from ``softmax(logits / temperature)`` over the ``top_k``
    largest logits; temperature 0 or ``top_k=1`` is greedy.
    """
    logits = np.asarray(logits, dtype=np.float64)
    if strategy == "greedy" or temperature == 0 or top_k == 1:
        return int(np.argmax(logits))
    candidates = np.arange(len(logits))
    if top_k is not None and top_k < len(logits):
        candidates = np.argpartition(-logits, top_k - 1)[:top_k]
    z = logits[candidates] / temperature
    p = np.exp(z - z.max())
    p /= p.sum()
    rng = rng if rng is not None else np.random.default_rng(np.random.randint(2**31))
    return int(candidates[rng.choice(len(candidates), p=p)])


def _generate(step, begin_state, prefix, num_chars, idx_to_char, char_to_idx, ctx,
              strategy, temperature, top_k, seed):
    """Feed ``prefix`` one character at a time, then extend it by ``num_chars``.

    ``step(X (1, 1), state) -> (logits (1, V), state)``.
    """
    check_strategy(strategy, temperature, top_k)
    if isinstance(num_chars, bool) or not isinstance(num_chars, int) or num_chars < 0:
        raise ValueError(f"num_chars must be an integer >= 0, got {num_chars!r}")
    output = _prefix_indices(prefix, char_to_idx)
    rng = np.random.default_rng(seed) if seed is not None else None
    state = begin_state()
    for t in range(num_chars + len(prefix) - 1):
        Y, state = step(nd.array([[output[t]]], ctx=ctx), state)
        if t >= len(prefix) - 1:
            if strategy == "greedy":
                output.append(int(Y[0].argmax(axis=0).asscalar()))
            else:
                output.append(choose_next(Y[0].asnumpy(), strategy, temperature, top_k, rng))
    return "".join(idx_to_char[i] for i in output)


def predict_rnn(prefix, num_chars, rnn, params, init_rnn_state, num_hiddens, vocab_size,
                ctx, idx_to_char, char_to_idx, strategy="greedy", temperature=1.0,
                top_k=None, seed=None):
    """Continue ``prefix`` by ``num_chars`` characters with a scratch RNN (book 6.4.3).

    Same signature and greedy behaviour as d2lzh; the keyword options select
    another decoding strategy.  A prefix character outside the vocabulary
    raises ``ValueError`` naming it (d2lzh raises a bare ``KeyError``).
    """
    forward = sequence_forward(rnn, vocab_size)
    return _generate(lambda X, state: forward(X, state, params),
                     lambda: init_rnn_state(1, num_hiddens, ctx),
                     prefix, num_chars, idx_to_char, char_to_idx, ctx,
                     strategy, temperature, top_k, seed)


def predict_rnn_gluon(prefix, num_chars, model, vocab_size, ctx, idx_to_char, char_to_idx,
                      strategy="greedy", temperature=1.0, top_k=None, seed=None):
    """Continue ``prefix`` with a Gluon ``RNNModel`` (book 6.5); options as ``predict_rnn``."""
    return _generate(model, lambda: model.begin_state(batch_size=1, ctx=ctx),
                     prefix, num_chars, idx_to_char, char_to_idx, ctx,
                     strategy, temperature, top_k, seed)
