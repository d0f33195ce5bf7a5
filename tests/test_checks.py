"""lyricnn.checks: one helper per argument check, NumPy scalars accepted."""
import math
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from lyricnn.checks import check_choice, check_int, check_number


@pytest.mark.parametrize("value", [10, np.int64(10), np.int32(10), np.uint8(10), np.int16(10)])
def test_check_int_accepts_python_and_numpy_integers(value):
    got = check_int("num_hiddens", value)
    assert got == 10 and type(got) is int


@pytest.mark.parametrize("value, shown", [
    (True, "True (bool)"), (np.bool_(True), "True (bool_)"), (10.0, "10.0 (float)"),
    (np.float32(3), "3.0 (float32)"), ("3", "'3' (str)"), (None, "None (NoneType)"),
    (Fraction(3, 1), "Fraction(3, 1) (Fraction)"),
])
def test_check_int_rejects_non_integers_naming_the_type(value, shown):
    with pytest.raises(ValueError) as err:
        check_int("batch_size", value)
    assert str(err.value) == f"batch_size must be an integer >= 1, got {shown}"


@pytest.mark.parametrize("kwargs, value, message", [
    ({}, 0, "n must be an integer >= 1, got 0"),
    ({}, np.int64(-3), "n must be an integer >= 1, got -3"),
    ({"minimum": 0}, -1, "n must be an integer >= 0, got -1"),
    ({"minimum": 2, "maximum": 5}, 6, "n must be an integer between 2 and 5, got 6"),
    ({"minimum": None, "maximum": 5}, 6, "n must be an integer <= 5, got 6"),
])
def test_check_int_range_messages(kwargs, value, message):
    with pytest.raises(ValueError) as err:
        check_int("n", value, **kwargs)
    assert str(err.value) == message


def test_check_int_bounds_are_inclusive_and_optional():
    assert check_int("n", 2, minimum=2, maximum=5) == 2
    assert check_int("n", np.int64(5), minimum=2, maximum=5) == 5
    assert check_int("n", -10**30, minimum=None) == -10**30


def test_check_int_appends_hint():
    with pytest.raises(ValueError, match=r"got 0; use a longer corpus$"):
        check_int("num_chars", 0, hint="use a longer corpus")


@pytest.mark.parametrize("value", [0.5, np.float32(0.5), np.float64(0.5), Fraction(1, 2)])
def test_check_number_accepts_real_numbers(value):
    got = check_number("lr", value, minimum=0, low_open=True)
    assert got == 0.5 and type(got) is float


def test_check_number_accepts_integers_including_numpy():
    assert check_number("lr", np.int64(3)) == 3.0
    assert type(check_number("lr", 3)) is float


@pytest.mark.parametrize("value, message", [
    (math.nan, "lr must be a finite number > 0, got nan"),
    (np.float32("nan"), "lr must be a finite number > 0, got nan"),
    (math.inf, "lr must be a finite number > 0, got inf"),
    (0, "lr must be a finite number > 0, got 0"),
    (-1e-3, "lr must be a finite number > 0, got -0.001"),
    (True, "lr must be a finite number > 0, got True (bool)"),
    ("0.1", "lr must be a finite number > 0, got '0.1' (str)"),
    (1 + 2j, "lr must be a finite number > 0, got (1+2j) (complex)"),
])
def test_check_number_rejections(value, message):
    with pytest.raises(ValueError) as err:
        check_number("lr", value, minimum=0, low_open=True)
    assert str(err.value) == message


def test_check_number_closed_bounds_and_infinity_when_allowed():
    assert check_number("p", 0, minimum=0, maximum=1) == 0.0
    assert check_number("p", 1, minimum=0, maximum=1) == 1.0
    with pytest.raises(ValueError, match=r"^p must be a finite number between 0 and 1, got 1.5$"):
        check_number("p", 1.5, minimum=0, maximum=1)
    with pytest.raises(ValueError, match=r"^t must be a finite number > 0 and <= 1, got 0$"):
        check_number("t", 0, minimum=0, maximum=1, low_open=True)
    assert check_number("theta", math.inf, minimum=0, finite=False) == math.inf
    with pytest.raises(ValueError, match=r"^theta must be a number >= 0, got nan$"):
        check_number("theta", math.nan, minimum=0, finite=False)


def test_check_choice():
    assert check_choice("mode", "word", ("char", "word")) == "word"
    with pytest.raises(ValueError) as err:
        check_choice("mode", "chr", ["char", "word"])
    assert str(err.value) == "mode must be one of 'char', 'word', got 'chr'"
    with pytest.raises(ValueError, match=r"got \['char'\]"):  # unhashable: no TypeError
        check_choice("mode", ["char"], {"char": 1})
    with pytest.raises(ValueError, match=r"got True"):  # True == 1, but it is no choice
        check_choice("layers", True, (1, 2))
    assert check_choice("layers", np.int64(2), (1, 2)) == 2
    assert check_choice("flag", True, (True, False)) is True


def test_helpers_import_neither_mxnet_nor_lyricnn_modules():
    """The three helper modules load standalone (by file path), pulling in no MXNet."""
    code = textwrap.dedent("""
        import importlib.util, pathlib, sys
        folder = pathlib.Path(sys.argv[1])
        for name in ("checks", "fileio", "metrics"):
            spec = importlib.util.spec_from_file_location(name, folder / (name + ".py"))
            spec.loader.exec_module(importlib.util.module_from_spec(spec))
        print(sorted(m for m in ("mxnet", "matplotlib", "lyricnn") if m in sys.modules))
        """)
    folder = Path(__file__).resolve().parents[1] / "lyricnn"
    out = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "[]"
