"""lyricnn.metrics.perplexity: exp that never raises."""
import math

import numpy as np
import pytest

from lyricnn.metrics import perplexity


def test_perplexity_is_exp_where_finite():
    assert perplexity(0.0) == 1.0
    # perplexity is math.exp of the same float (float32 2.0 converts exactly): equal floats
    assert perplexity(1.5) == math.exp(1.5)
    assert perplexity(np.float32(2.0)) == math.exp(2.0)
    assert perplexity(709.0) == math.exp(709.0)
    assert type(perplexity(np.float64(1.0))) is float


@pytest.mark.parametrize("nll", [710.0, 1e31, np.float64(800.0), math.inf])
def test_perplexity_overflow_is_inf(nll):
    with pytest.raises(OverflowError):  # what the helper exists to avoid
        math.exp(710.0)
    assert perplexity(nll) == math.inf


def test_perplexity_nan_stays_nan_and_minus_inf_is_zero():
    assert math.isnan(perplexity(math.nan))
    assert math.isnan(perplexity(np.float32("nan")))
    assert perplexity(-math.inf) == 0.0


def test_perplexity_accepts_one_element_arrays():
    assert perplexity(np.array([1.0])) == math.exp(1.0)


def test_perplexity_rejects_non_numbers():
    with pytest.raises(TypeError, match=r"mean_nll must be a real number, got 'x' \(str\)"):
        perplexity("x")
