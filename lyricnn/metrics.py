"""Perplexity from a mean negative log-likelihood, the one overflow-safe ``exp``.

``math.exp`` raises ``OverflowError`` above ~709.78 (d2lzh died there when a
run diverged); a diverged model's perplexity is simply ``inf``.  No MXNet
import here: the n-gram models use it too.
"""
import math

__all__ = ["perplexity"]


def perplexity(mean_nll):
    """``exp(mean_nll)`` as a float: ``inf`` where it overflows, ``nan`` stays ``nan``.

    ``mean_nll``: the mean negative log-likelihood per token in nats (any real
    number, NumPy scalars and 1-element arrays included). ``-inf`` gives 0.
    """
    try:
        x = float(mean_nll)
    except (TypeError, ValueError):
        raise TypeError(
            f"mean_nll must be a real number, got {mean_nll!r} ({type(mean_nll).__name__})"
        ) from None
    if math.isnan(x):
        return math.nan
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf
