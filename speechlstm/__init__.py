"""speechlstm: offline English speech recognition and keyword spotting on Numba.

MFCC front end, LSTM acoustic model, CTC training and decoding — no deep-learning framework::

    import speechlstm
    model = speechlstm.load_model()            # the shipped commands model
    result = model.transcribe("clip.wav")      # {"text", "duration", "segments": [...]}
"""
from ._kernel_cache import drop_stale as _drop_stale

_drop_stale()  # before any kernel loads: Numba would reuse kernels built from since-edited callees

from .errors import AudioError, DataError, DeviceError, ModelError, ParameterError, SpeechLSTMError
from .audio import load_audio
from .features import FeatureConfig, extract_features

__version__ = "0.1.0"

__all__ = [
    "SpeechLSTMError", "AudioError", "ParameterError", "ModelError", "DataError", "DeviceError",
    "load_audio", "FeatureConfig", "extract_features", "load_model", "Model", "available_models", "__version__",
]

_LAZY = {"load_model": "model", "Model": "model", "available_models": "model"}


def __getattr__(name):  # heavy modules (Numba kernels) load on first use
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'speechlstm' has no attribute {name!r}")
