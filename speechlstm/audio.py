"""Reading, resampling, down-mixing and validating audio.

Two entry points:

* :func:`load_audio` returns a whole recording as a float32 mono array at ``sr``;
* :func:`stream_audio` yields the same samples block by block, so arbitrarily long files are
  processed in bounded memory.

Every failure is an :class:`~speechlstm.errors.AudioError` whose message starts with the file.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator, Union

import numpy as np

from . import config
from .errors import AudioError, ParameterError, check_real, is_int

AudioSource = Union[str, os.PathLike, np.ndarray]

__all__ = ["load_audio", "stream_audio", "audio_info", "AudioInfo", "to_float32_mono"]


@dataclass(frozen=True)
class AudioInfo:
    """What the header of an audio file says."""

    path: str
    sample_rate: int  # Hz
    channels: int
    frames: int  # samples per channel
    format: str
    subtype: str

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def _check_sr(sr) -> int:
    if not is_int(sr, 1):
        raise ParameterError(f"sample rate must be a positive integer in Hz, got sr={sr!r}")
    return int(sr)


def _check_path(path) -> str:
    p = os.fspath(path)
    if not os.path.exists(p):
        raise AudioError(f"{p}: no such file")
    if os.path.isdir(p):
        raise AudioError(f"{p}: is a directory, not an audio file")
    if not os.access(p, os.R_OK):
        raise AudioError(f"{p}: permission denied")
    if os.path.getsize(p) == 0:
        raise AudioError(f"{p}: empty file (0 bytes)")
    return p


def _open(p: str):
    import soundfile as sf

    try:
        return sf.SoundFile(p)
    except PermissionError:
        raise AudioError(f"{p}: permission denied") from None
    except Exception as exc:  # soundfile raises LibsndfileError/RuntimeError/TypeError
        reason = str(exc).split("\n")[0]
        if reason.startswith("Error opening"):
            reason = reason.split(":", 1)[-1].strip() or reason
        raise AudioError(f"{p}: not a readable audio file ({reason})") from None


def audio_info(path) -> AudioInfo:
    """Read the header of an audio file.

    Raises
    ------
    AudioError
        missing path, directory, unreadable or non-audio bytes, zero samples.
    """
    p = _check_path(path)
    with _open(p) as f:
        info = AudioInfo(p, int(f.samplerate), int(f.channels), int(f.frames), f.format, f.subtype)
    if info.frames <= 0:
        raise AudioError(f"{p}: no audio samples (0 frames)")
    return info


def to_float32_mono(data: np.ndarray, *, name: str = "<array>") -> np.ndarray:
    """Convert samples to float32 mono in [-1, 1].

    Parameters
    ----------
    data : np.ndarray [shape=(n,) or (n, channels)]
        integer (full-scale of its dtype) or float samples; channels are averaged.
    name : str
        used in error messages.
    """
    a = np.asarray(data)
    if a.dtype == np.bool_ or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise AudioError(f"{name}: samples must be integer or float, got dtype {a.dtype}")
    if a.ndim == 2:
        if a.shape[1] == 0:
            raise AudioError(f"{name}: no channels")
    elif a.ndim != 1:
        raise AudioError(f"{name}: audio must be 1-D (n,) or 2-D (n, channels), got shape {a.shape}")
    if a.shape[0] == 0:
        raise AudioError(f"{name}: no audio samples (0 frames)")
    if np.issubdtype(a.dtype, np.integer):
        info = np.iinfo(a.dtype)
        scale = float(-int(info.min)) if info.min < 0 else float(info.max + 1) / 2.0
        offset = 0.0 if info.min < 0 else scale
        a = (a.astype(np.float64) - offset) / scale
    elif not np.all(np.isfinite(a)):
        raise AudioError(f"{name}: audio contains NaN or infinite samples")
    if a.ndim == 2:
        a = a.mean(axis=1)
    return np.clip(a, -1.0, 1.0).astype(np.float32, copy=False)


def _resample(y: np.ndarray, orig_sr: int, sr: int) -> np.ndarray:
    if orig_sr == sr:
        return y
    import soxr  # what librosa.resample(res_type="soxr_hq") calls, without librosa's import cost

    return soxr.resample(y, orig_sr, sr, quality="HQ").astype(np.float32)


def load_audio(source: AudioSource, *, sr: int = config.SAMPLE_RATE, orig_sr: int | None = None) -> np.ndarray:
    """Load audio as float32 mono samples in [-1, 1] at ``sr`` Hz.

    Parameters
    ----------
    source : str, os.PathLike or np.ndarray [shape=(n,) or (n, channels)]
        A path to a WAV/FLAC/OGG/AIFF (anything libsndfile reads), or samples.  Arrays are taken
        to be at ``orig_sr`` (default: already at ``sr``).
    sr : int > 0
        target sample rate in Hz.
    orig_sr : int > 0 or None
        sample rate of an array ``source``; ignored for paths (the header says).

    Returns
    -------
    y : np.ndarray [shape=(n_samples,), dtype=float32]

    Raises
    ------
    AudioError
        missing path, directory, unreadable or non-audio bytes, truncated header, zero samples,
        non-finite samples.
    """
    sr = _check_sr(sr)
    if isinstance(source, np.ndarray):
        y = to_float32_mono(source)
        return _resample(y, _check_sr(orig_sr) if orig_sr is not None else sr, sr)
    if not isinstance(source, (str, os.PathLike)):
        raise ParameterError(f"audio source must be a path or a numpy array, got {type(source).__name__}")
    p = _check_path(source)
    with _open(p) as f:
        file_sr = int(f.samplerate)
        try:
            data = f.read(dtype="float32", always_2d=True)
        except Exception as exc:
            raise AudioError(f"{p}: could not decode audio ({exc})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{p}: no audio samples (0 frames)")
    y = to_float32_mono(data, name=p)
    return _resample(y, file_sr, sr)


def stream_audio(
    path, *, sr: int = config.SAMPLE_RATE, block_seconds: float = config.AUDIO_BLOCK_SECONDS
) -> Iterator[np.ndarray]:
    """Yield a file's samples block by block, float32 mono at ``sr`` Hz, in bounded memory.

    Concatenated, the blocks equal :func:`load_audio` exactly when the file is already at ``sr``,
    and within resampler tolerance otherwise (a streaming soxr resampler is used).

    Parameters
    ----------
    path : str or os.PathLike
    sr : int > 0
        target sample rate in Hz.
    block_seconds : float > 0
        seconds of source audio read per block.

    Yields
    ------
    block : np.ndarray [shape=(n,), dtype=float32]
    """
    sr = _check_sr(sr)
    block_seconds = check_real("block_seconds", block_seconds, 0, low_open=True)
    info = audio_info(path)
    p = info.path
    block = max(1, int(round(block_seconds * info.sample_rate)))
    resampler = None
    if info.sample_rate != sr:
        import soxr

        resampler = soxr.ResampleStream(info.sample_rate, sr, 1, dtype="float32", quality="HQ")
    n_read = 0
    with _open(p) as f:
        while True:
            try:
                data = f.read(block, dtype="float32", always_2d=True)
            except Exception as exc:
                raise AudioError(f"{p}: could not decode audio ({exc})") from None
            last = data.shape[0] < block
            if data.shape[0]:
                y = to_float32_mono(data, name=p)
                n_read += data.shape[0]
            else:
                y = np.zeros(0, np.float32)
            if resampler is not None:
                y = resampler.resample_chunk(y, last=last).astype(np.float32, copy=False)
            if y.size:
                yield y
            if last:
                break
    if n_read == 0:
        raise AudioError(f"{p}: no audio samples (0 frames)")
