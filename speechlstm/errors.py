"""The one exception tree of speechlstm.

Every error the library raises on purpose derives from :class:`SpeechLSTMError`, so a caller
(and the CLI) can catch exactly the failures that come from bad input rather than from bugs.
Messages always quote the file or the value at fault.
"""


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
