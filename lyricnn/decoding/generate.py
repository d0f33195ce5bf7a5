"""Text generation from a trained model (book 6.4.3 and 6.5).

``generate`` works on any ``lyricnn.models.interface.LanguageModel``: after the prefix
has been fed in, each next character is chosen from the model's logits:
``'greedy'`` (the book: argmax) or ``'sample'`` (from the softmax at
``temperature``, optionally restricted to the ``top_k`` most likely).
``predict_rnn`` and ``predict_rnn_gluon`` are the book's entry points.
"""
import numpy as np

from lyricnn.checks import check_choice, check_int, check_number
from lyricnn.decoding import processors as P
from lyricnn.decoding.engine import MAX_LENGTH, Decoder, Options, Vocabulary

STRATEGIES = ("greedy", "sample")


def _prefix_indices(prefix, char_to_idx):
    if isinstance(prefix, (list, tuple)) and prefix and all(isinstance(t, str) for t in prefix):
        missing = [t for t in prefix if t not in char_to_idx]
        if missing:
            raise ValueError(f"prefix tokens {missing!r} are not in the vocabulary")
        return [char_to_idx[t] for t in prefix]
    if not isinstance(prefix, str) or not prefix:
        raise ValueError(f"prefix must be a non-empty string (or a list of word tokens), "
                         f"got {prefix!r}")
    missing = [c for c in prefix if c not in char_to_idx]
    if missing:
        raise ValueError(
            f"prefix {prefix!r} contains character(s) {''.join(dict.fromkeys(missing))!r} "
            "that are not in the vocabulary; use characters from the training corpus")
    return [char_to_idx[c] for c in prefix]


def check_decoding(strategy, temperature, top_k, seed=None):
    """Validate the decoding options; return ``(temperature, top_k)`` as Python numbers."""
    check_choice("strategy", strategy, STRATEGIES)
    temperature = check_number("temperature", temperature, 0,
                               hint="0 is greedy, 1 the model's own distribution")
    if top_k is not None:
        top_k = check_int("top_k", top_k, 1)
    if seed is not None:
        check_int("seed", seed, 0)
    return temperature, top_k


def choose_next(logits, strategy="greedy", temperature=1.0, top_k=None, rng=None):
    """Pick the next index from ``logits: (V,)`` (NumPy) with the engine's processors.

    ``'sample'`` draws from ``softmax(logits / temperature)`` over the ``top_k``
    largest logits; temperature 0 or ``top_k=1`` is greedy.
    """
    z = np.array(logits, dtype=np.float64)
    if strategy == "greedy" or temperature == 0:
        return P.select(z)
    rng = rng if rng is not None else np.random.default_rng(np.random.randint(2**31))
    uniform = rng.random()
    P.scale(z, temperature)
    P.truncate(z, top_k)
    return P.select(z, uniform)


def generate(lm, prefix, num_chars, idx_to_char, char_to_idx, strategy="greedy",
             temperature=1.0, top_k=None, seed=None, sep="", should_stop=None):
    """Feed ``prefix`` one character at a time to ``lm``, then extend it by ``num_chars``.

    The book's interface to the one decoding engine (``lyricnn.decoding.engine``):
    greedy, or sampling at ``temperature`` among the ``top_k`` most likely.
    A word-level model takes ``prefix`` as a list of tokens and generates
    ``num_chars`` tokens; the result joins the prefix and the tokens with ``sep``
    (``" "`` for words).

    ``seed`` makes ``'sample'`` repeatable (each call uses it afresh); without
    it the seed comes from NumPy's global generator (so ``set_seed`` repeats it).
    ``should_stop()``, polled at every step, ends the text early (a signal during a
    long sample in a training log).
    """
    temperature, top_k = check_decoding(strategy, temperature, top_k, seed)
    num_chars = check_int("num_chars", num_chars, 0, MAX_LENGTH)
    output = _prefix_indices(prefix, char_to_idx)
    vocab_size = getattr(lm, "vocab_size", None)
    if vocab_size is not None and max(output) >= vocab_size:
        raise ValueError(f"char_to_idx maps the prefix to index {max(output)}, past the model's "
                         f"vocab_size={vocab_size}; pass the vocabulary the model was built for")
    greedy = strategy == "greedy" or temperature == 0
    options = Options(max_tokens=num_chars, temperature=0.0 if greedy else temperature,
                      top_k=top_k)
    if seed is None and not greedy:
        seed = int(np.random.randint(2**31))
    decoder = Decoder(lm, Vocabulary(idx_to_char, separator=None))
    candidate, = decoder.generate(output, options, seed=seed, should_stop=should_stop)
    return sep.join(idx_to_char[i] for i in output + candidate.tokens)
