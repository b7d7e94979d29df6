"""The one exception tree of speechlstm.

Every error the library raises on purpose derives from :class:`SpeechLSTMError`, so a caller
(and the CLI) can catch exactly the failures that come from bad input rather than from bugs.
Messages always quote the file or the value at fault.
"""
from __future__ import annotations

import math
from numbers import Integral, Real


class SpeechLSTMError(Exception):
    """Root of every error raised on purpose by speechlstm."""


class ParameterError(SpeechLSTMError, ValueError):
    """A parameter has a bad value, shape or type; the message quotes it."""


class AudioError(SpeechLSTMError):
    """Audio could not be read or is not usable (missing, not audio, empty, non-finite...)."""


class ModelError(SpeechLSTMError):
    """A model file is missing, malformed, tampered with, or does not fit the request."""


class DataError(SpeechLSTMError):
    """A corpus, manifest or training configuration is malformed."""


class DeviceError(SpeechLSTMError):
    """The requested compute device is not available."""


def error_line(exc: BaseException, path: str | None = None) -> str:
    """One line describing ``exc`` for users: the message's first line (an OSError as
    ``FILE: reason``), prefixed with ``path`` when the message does not already start with it."""
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        msg = f"{exc.filename}: {exc.strerror.lower()}"
    else:
        text = str(exc).strip()
        msg = text.splitlines()[0] if text else type(exc).__name__
    if path is not None and not msg.startswith(str(path)):
        msg = f"{path}: {msg}"
    return msg


def _interval(low, high, high_open: bool, low_open: bool = False):
    """``[low, high]`` as text (``(`` / ``)`` at an open or infinite end), or None when both ends are
    infinite."""
    if math.isinf(low) and math.isinf(high):
        return None
    return f"{'(' if low_open or math.isinf(low) else '['}{low:g}, {high:g}{')' if high_open or math.isinf(high) else ']'}"


def check_real(name: str, value, low: float = -math.inf, high: float = math.inf, *,
               high_open: bool = False, low_open: bool = False) -> float:
    """``value`` as a float if it is a finite real number (not a bool) in ``[low, high]``
    (without ``high`` with ``high_open``, without ``low`` with ``low_open``); else
    :class:`ParameterError` quoting it."""
    ok = is_real(value)
    if ok:
        ok = (low < value if low_open else low <= value) and (value < high if high_open else value <= high)
    if not ok:
        bounds = _interval(low, high, high_open, low_open)
        what = f"a number in {bounds}" if bounds else "a finite number"
        raise ParameterError(f"{name} must be {what}, got {value!r}")
    return float(value)


def check_range(name: str, value, low: float = -math.inf, high: float = math.inf) -> tuple:
    """``value`` as a ``(lo, hi)`` tuple of floats if it is a pair of finite real numbers with
    ``low <= lo <= hi <= high``; else :class:`ParameterError` quoting it."""
    try:
        ok = not isinstance(value, (str, bytes, dict)) and len(value) == 2
        if ok:
            lo, hi = (check_real(name, a, low, high) for a in value)
            ok = lo <= hi
    except (TypeError, ParameterError):
        ok = False
    if not ok:
        bounds = _interval(low, high, False)
        what = f"range within {bounds}" if bounds else "range of finite numbers"
        raise ParameterError(f"{name} must be a (low, high) {what}, got {value!r}")
    return (lo, hi)


def is_real(value) -> bool:
    """True if ``value`` is a finite real number (Python or NumPy, not a bool)."""
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


def is_int(value, low: float = -math.inf, high: float = math.inf) -> bool:
    """True if ``value`` is an integer (Python or NumPy, not a bool) with ``low <= value <= high``."""
    return isinstance(value, Integral) and not isinstance(value, bool) and low <= value <= high


def check_int(name: str, value, low: float = -math.inf, high: float = math.inf) -> int:
    """``value`` as an int if :func:`is_int` accepts it; else :class:`ParameterError` quoting it."""
    if not is_int(value, low, high):
        if math.isinf(high):
            what = f"an integer >= {low:g}" if not math.isinf(low) else "an integer"
        else:
            what = f"an integer in [{low:g}, {high:g}]"
        raise ParameterError(f"{name} must be {what}, got {value!r}")
    return int(value)
