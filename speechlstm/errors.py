"""The one exception tree of speechlstm.

Every error the library raises on purpose derives from :class:`SpeechLSTMError`, so a caller
(and the CLI) can catch exactly the failures that come from bad input rather than from bugs.
Messages always quote the file or the value at fault.
"""
from __future__ import annotations



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
