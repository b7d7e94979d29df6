"""speechlstm: offline English speech recognition and keyword spotting on Numba.

MFCC front end, LSTM acoustic model, CTC training and decoding — no deep-learning framework.
"""
from .errors import AudioError, DataError, DeviceError, ModelError, ParameterError, SpeechLSTMError
from .audio import load_audio
from .features import FeatureConfig, extract_features

__version__ = "0.1.0"

__all__ = [
    "SpeechLSTMError",
    "AudioError",
    "ParameterError",
    "ModelError",
    "DataError",
    "DeviceError",
    "load_audio",
    "FeatureConfig",
    "extract_features",
    "__version__",
]
