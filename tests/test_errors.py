import math

import numpy as np
import pytest

from speechlstm.errors import ParameterError, check_int, check_range, check_real, is_int


@pytest.mark.parametrize("value", [0, 0.5, 1, np.float32(0.25), np.int64(1), np.float64(0.0)])
def test_check_real_accepts_real_numbers_in_bounds(value):
    out = check_real("p", value, 0.0, 1.0)
    assert type(out) is float and out == float(value)


@pytest.mark.parametrize("value, high_open, message", [
    (1.0, True, r"p must be a number in \[0, 1\), got 1.0"),
    (1.5, False, r"p must be a number in \[0, 1\], got 1.5"),
    (-0.1, False, r"p must be a number in \[0, 1\], got -0.1"),
    (True, False, r"got True"),
    (np.bool_(True), False, r"got np.True_|got True"),
    (float("nan"), False, r"got nan"),
    ("0.5", False, r"got '0.5'"),
    (None, False, r"got None"),
    ([0.5], False, r"got \[0.5\]"),
])
def test_check_real_refuses_and_quotes(value, high_open, message):
    with pytest.raises(ParameterError, match=message):
        check_real("p", value, 0.0, 1.0, high_open=high_open)


def test_check_real_with_an_open_low_end():
    assert check_real("t", 1e-9, 0.0, low_open=True) == 1e-9 and check_real("t", 2, 0.0, 2.0, low_open=True) == 2.0
    with pytest.raises(ParameterError, match=r"^t must be a number in \(0, 2\], got 0.0$"):
        check_real("t", 0.0, 0.0, 2.0, low_open=True)
    with pytest.raises(ParameterError, match=r"^t must be a number in \(0, 2\), got 2$"):
        check_real("t", 2, 0.0, 2.0, low_open=True, high_open=True)


def test_check_real_without_bounds_still_wants_finite():
    assert check_real("x", -1e30) == -1e30
    for bad in (math.inf, -math.inf):
        with pytest.raises(ParameterError, match=r"^x must be a finite number, got -?inf$"):
            check_real("x", bad)


def test_check_range():
    assert check_range("r", [0.9, 1.1], 0.5, 2.0) == (0.9, 1.1)
    assert check_range("r", (np.float32(1), 1)) == (1.0, 1.0)
    for bad in [(1.1, 0.9), [0.9], (0.9, 1.1, 1.2), "ab", (0.1, 1.0), (True, 1.0), None, {1: 2, 3: 4},
                (0.9, float("nan")), 3]:
        with pytest.raises(ParameterError, match=r"^r must be a \(low, high\) range within \[0.5, 2\], got "):
            check_range("r", bad, 0.5, 2.0)
    with pytest.raises(ParameterError, match=r"^r must be a \(low, high\) range of finite numbers, got \(1, inf\)$"):
        check_range("r", (1, math.inf))


def test_check_int_accepts_python_and_numpy_integers_only():
    assert check_int("n", 3, 1) == 3 and type(check_int("n", np.int64(3), 1)) is int
    assert check_int("k", 2, 0, 2) == 2 and is_int(0, 0, 2) and not is_int(3, 0, 2)
    for bad in (True, False, np.bool_(True), 2.0, "2", None, np.float32(2.0)):
        assert not is_int(bad)
        with pytest.raises(ParameterError, match=r"n must be an integer, got "):
            check_int("n", bad)
    with pytest.raises(ParameterError, match=r"n must be an integer >= 1, got 0"):
        check_int("n", 0, 1)
    with pytest.raises(ParameterError, match=r"k must be an integer in \[0, 2\], got 3"):
        check_int("k", 3, 0, 2)


def test_integer_settings_refuse_bools():
    """Two checks took True for 1 before they shared check_int / is_int."""
    from speechlstm.alphabet import Alphabet
    from speechlstm.decoding import BeamSearchDecoder
    from speechlstm.features import FeatureConfig

    with pytest.raises(ParameterError, match="beam_width must be an integer >= 1, got True"):
        BeamSearchDecoder(Alphabet(), beam_width=True)
    with pytest.raises(ParameterError, match="FeatureConfig.delta_order=True: must be 0, 1 or 2"):
        FeatureConfig(delta_order=True)
