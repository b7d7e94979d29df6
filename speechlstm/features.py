"""MFCC front end: log-mel cepstra (librosa) + deltas, mean/variance normalisation, frame stacking.

The pipeline, per recording of ``n`` samples at ``sample_rate``::

    samples ─► MFCC frames (win, hop, no centring)      n_base = 1 + (max(n, win) - win) // hop
            ─► + Δ + ΔΔ  (regression over ±delta_window frames, edges replicated)
            ─► CMVN      (per feature: (x - mean) / std)
            ─► stack `stack` consecutive frames, keep one in `subsample`
                                                         n_frames = ceil(n_base / subsample)

With the defaults (25 ms window, 10 ms hop, 40 mel bands, 13 cepstra, Δ+ΔΔ, stack 3,
subsample 3) a model sees 117-dimensional frames at 100/3 ≈ 33.3 frames per second.

Normalisation (``FeatureConfig.cmvn``)
--------------------------------------
``"global"``
    fixed statistics (:class:`FeatureStats`, computed over training data and stored in the model
    file).  Every frame is normalised on its own, so streaming output equals whole-file output.
``"utterance"``
    statistics of the recording itself.  Non-causal: the live stream (``FeatureStream``) refuses
    it, and :func:`file_features` handles long files with two bounded-memory passes (the first
    gathers the statistics, the second normalises), so it still equals the whole-file result.
``"none"``
    no normalisation.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterable, Iterator

import numpy as np

from . import config
from .errors import ParameterError, check_real, is_int, is_real

__all__ = [
    "FeatureConfig",
    "FeatureStats",
    "FeatureStream",
    "extract_features",
    "base_features",
    "normalize_and_stack",
    "compute_stats",
    "file_features",
    "iter_file_features",
]

_CMVN_MODES = ("global", "utterance", "none")


@dataclass(frozen=True)
class FeatureConfig:
    """Everything that defines the features a model was trained on.  Round-trips through a dict."""

    sample_rate: int = config.SAMPLE_RATE  # Hz
    win_ms: float = config.WIN_MS  # ms
    hop_ms: float = config.HOP_MS  # ms
    n_mels: int = config.N_MELS
    n_mfcc: int = config.N_MFCC
    fmin: float = 20.0  # Hz
    fmax: float = 0.0  # Hz; 0 means sample_rate / 2
    delta_order: int = config.DELTA_ORDER
    delta_window: int = config.DELTA_WINDOW  # frames each side
    stack: int = config.STACK
    subsample: int = config.SUBSAMPLE
    cmvn: str = "utterance"

    def __post_init__(self):
        def bad(name, why):
            raise ParameterError(f"FeatureConfig.{name}={getattr(self, name)!r}: {why}")

        for name in ("sample_rate", "n_mels", "n_mfcc", "delta_window", "stack", "subsample"):
            v = getattr(self, name)
            if not is_int(v, 1):
                bad(name, "must be a positive integer")
        if not is_int(self.delta_order, 0, 2):
            bad("delta_order", "must be 0, 1 or 2")
        for name in ("win_ms", "hop_ms", "fmin", "fmax"):
            v = getattr(self, name)
            if not is_real(v) and not (name == "fmax" and v is None):  # fmax None, like 0: the Nyquist frequency
                bad(name, "must be a finite number")
        if not self.win_ms > 0:
            bad("win_ms", "must be > 0")
        if not 0 < self.hop_ms <= self.win_ms:
            bad("hop_ms", "must be > 0 and at most win_ms")
        if self.n_mfcc > self.n_mels:
            bad("n_mfcc", f"cannot exceed n_mels={self.n_mels}")
        if self.cmvn not in _CMVN_MODES:
            bad("cmvn", f"must be one of {_CMVN_MODES}")
        nyquist = self.sample_rate / 2
        if not 0 <= self.fmin < (self.fmax or nyquist) <= nyquist:
            bad("fmin", f"need 0 <= fmin < fmax <= {nyquist} Hz (fmax={self.fmax})")
        if self.win_length < 2 or self.hop_length < 1:
            bad("win_ms", "window or hop shorter than one sample")

    # -- sizes ------------------------------------------------------------------------------
    @property
    def win_length(self) -> int:
        """Window length in samples."""
        return int(round(self.win_ms * self.sample_rate / 1000.0))

    @property
    def hop_length(self) -> int:
        """Hop in samples."""
        return int(round(self.hop_ms * self.sample_rate / 1000.0))

    @property
    def base_dim(self) -> int:
        """Features per 10 ms frame (cepstra with their deltas)."""
        return self.n_mfcc * (1 + self.delta_order)

    @property
    def dim(self) -> int:
        """Features per model frame (after stacking)."""
        return self.base_dim * self.stack

    @property
    def frame_period(self) -> Fraction:
        """Seconds between model frames, exact."""
        return Fraction(self.hop_length * self.subsample, self.sample_rate)

    @property
    def frame_rate(self) -> float:
        """Model frames per second (33.33 with the defaults)."""
        return float(1 / self.frame_period)

    def n_base_frames(self, n_samples: int) -> int:
        """10 ms frames made from ``n_samples`` samples (short audio is padded to one window)."""
        if n_samples <= 0:
            return 0
        return 1 + (max(n_samples, self.win_length) - self.win_length) // self.hop_length

    def n_frames(self, n_samples: int) -> int:
        """Model frames made from ``n_samples`` samples."""
        return -(-self.n_base_frames(n_samples) // self.subsample)

    def frames_to_seconds(self, frames):
        """Start time in seconds of model frame index ``frames`` (scalar or array)."""
        return np.asarray(frames) * float(self.frame_period)

    def seconds_to_frames(self, seconds):
        """Index of the model frame that starts at or before ``seconds``."""
        return np.floor(np.asarray(seconds) / float(self.frame_period) + 1e-9).astype(np.int64)

    # -- dict round trip -----------------------------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureConfig":
        if not isinstance(d, dict):
            raise ParameterError(f"FeatureConfig.from_dict needs a dict, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ParameterError(f"unknown FeatureConfig keys: {unknown}")
        kw = {}
        for f in dataclasses.fields(cls):
            if f.name in d:
                v = d[f.name]
                kw[f.name] = v.item() if isinstance(v, np.generic) else v
        return cls(**kw)

    def replace(self, **changes) -> "FeatureConfig":
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class FeatureStats:
    """Per-feature mean and standard deviation of base frames, for ``cmvn="global"``."""

    mean: np.ndarray  # [base_dim] float32
    std: np.ndarray  # [base_dim] float32, floored at CMVN_EPS

    @classmethod
    def from_moments(cls, count: int, total: np.ndarray, total_sq: np.ndarray) -> "FeatureStats":
        if count <= 0:
            raise ParameterError("cannot compute feature statistics from 0 frames")
        mean = total / count
        var = np.maximum(total_sq / count - mean * mean, 0.0)
        return cls(mean.astype(np.float32), np.maximum(np.sqrt(var), config.CMVN_EPS).astype(np.float32))


class _Moments:
    """Running sum and sum of squares (float64) of feature frames."""

    def __init__(self, dim: int):
        self.count, self.total, self.total_sq = 0, np.zeros(dim), np.zeros(dim)

    def add(self, x: np.ndarray) -> None:
        x64 = x.astype(np.float64)
        self.count += x.shape[0]
        self.total += x64.sum(axis=0)
        self.total_sq += (x64 * x64).sum(axis=0)

    def stats(self) -> FeatureStats:
        return FeatureStats.from_moments(self.count, self.total, self.total_sq)


# ------------------------------------------------------------------------------------------------
# stages (each works on whole arrays; the stream calls them on buffers)
# ------------------------------------------------------------------------------------------------
def _mel_basis(cfg: FeatureConfig) -> np.ndarray:
    """librosa's mel filterbank [n_mels, win//2+1] for ``cfg``, memoised in memory and on disk
    (``$XDG_CACHE_HOME/speechlstm``): importing librosa costs about a second, so it happens once."""
    key = (cfg.sample_rate, cfg.win_length, cfg.n_mels, float(cfg.fmin), float(cfg.fmax or cfg.sample_rate / 2))
    fb = _MEL_CACHE.get(key)
    if fb is not None:
        return fb
    import hashlib
    import os

    root = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "speechlstm")
    path = os.path.join(root, "mel-" + hashlib.sha1(repr(key).encode()).hexdigest()[:16] + ".npy")
    try:
        fb = np.load(path)
    except (OSError, ValueError):
        import librosa

        fb = librosa.filters.mel(sr=key[0], n_fft=key[1], n_mels=key[2], fmin=key[3], fmax=key[4]).astype(np.float32)
        try:
            os.makedirs(root, exist_ok=True)
            tmp = f"{path}.{os.getpid()}.tmp.npy"
            np.save(tmp, fb)
            os.replace(tmp, path)
        except OSError:
            pass  # a read-only home only costs the librosa import next time
    _MEL_CACHE[key] = fb
    return fb


_MEL_CACHE: dict = {}

WARP_BOUNDARY = 0.8  # share of the Nyquist frequency below which a VTLP warp is a pure scaling
WARP_RANGE = (0.5, 2.0)  # the warp factors base_features accepts


def _warp_source(alpha: float, n_bins: int):
    """For each target bin k of a spectrum warped by ``alpha``, the source bins ``lo[k]``,
    ``lo[k] + 1`` and the weight ``w[k]`` of the second: ``warped[k] = (1 - w) S[lo] + w S[lo + 1]``.

    The warp moves the energy at frequency f to ``alpha * f`` (vocal-tract-length perturbation,
    Jaitly & Hinton 2013). It is piecewise linear, as in Kaldi: a scaling by ``alpha`` up to a
    boundary, then the straight line that keeps the Nyquist frequency in place, so no energy leaves
    the spectrum.
    """
    top = n_bins - 1  # the Nyquist bin
    knot = WARP_BOUNDARY * top * min(alpha, 1.0) / alpha  # source bin where the scaling ends
    src = np.interp(np.arange(n_bins, dtype=np.float64), [0.0, alpha * knot, top], [0.0, knot, top])
    lo = np.minimum(np.floor(src).astype(np.int64), top - 1)
    return lo, src - lo


def _warped_mel_basis(cfg: FeatureConfig, warp: float) -> np.ndarray:
    """The mel filterbank applied to a spectrum warped by ``warp`` (``fb @ M.T`` for the warp as a
    matrix M, each target bin's weight spread over its two source bins, without building M). Not
    memoised: training draws a factor per clip."""
    fb = _mel_basis(cfg)
    if warp == 1.0:
        return fb
    lo, w = _warp_source(float(warp), fb.shape[1])
    out = np.zeros_like(fb)
    np.add.at(out.T, lo, (fb * (1.0 - w).astype(np.float32)).T)
    np.add.at(out.T, lo + 1, (fb * w.astype(np.float32)).T)
    return out


def _mfcc(y: np.ndarray, cfg: FeatureConfig, warp: float = 1.0) -> np.ndarray:
    """MFCC of every complete window in ``y`` (len(y) >= win): [n, n_mfcc] float32.

    Exactly librosa's ``feature.mfcc(S=power_to_db(feature.melspectrogram(center=False, power=2,
    window="hann", n_fft=win_length)), top_db=None)`` — same filterbank (librosa's), periodic Hann
    window, power spectrum, 10·log10 with a 1e-10 floor and orthonormal DCT-II — computed with
    numpy/scipy.fft so that recognising a file does not import librosa.
    """
    from scipy.fft import dct

    win, hop = cfg.win_length, cfg.hop_length
    frames = np.lib.stride_tricks.sliding_window_view(y, win)[::hop]
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)).astype(np.float32)
    spec = np.fft.rfft(frames * window, n=win, axis=1)
    power = (spec.real ** 2 + spec.imag ** 2).astype(np.float32)
    mel = power @ _warped_mel_basis(cfg, warp).T
    log_s = 10.0 * np.log10(np.maximum(mel, 1e-10))
    return np.ascontiguousarray(dct(log_s, type=2, norm="ortho", axis=1)[:, : cfg.n_mfcc], dtype=np.float32)


def _delta(c: np.ndarray, n: int) -> np.ndarray:
    """Regression deltas over ±n frames with edge replication: [T, D] -> [T, D]."""
    T = c.shape[0]
    p = np.pad(c, ((n, n), (0, 0)), mode="edge")
    d = np.zeros_like(c)
    for k in range(1, n + 1):
        d += k * (p[n + k : n + k + T] - p[n - k : n - k + T])
    return d / (2 * sum(k * k for k in range(1, n + 1)))


def _add_deltas(c: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    parts = [c]
    for _ in range(cfg.delta_order):
        parts.append(_delta(parts[-1], cfg.delta_window))
    return np.concatenate(parts, axis=1).astype(np.float32, copy=False)


def _normalise(x: np.ndarray, stats: FeatureStats | None) -> np.ndarray:
    if stats is None:
        return x
    return ((x - stats.mean) / stats.std).astype(np.float32, copy=False)


def _stack(x: np.ndarray, first: int, count: int, cfg: FeatureConfig, last_valid: int) -> np.ndarray:
    """Stacked frames ``first .. first+count-1``; ``x`` row 0 is base frame ``first*subsample``.

    Rows past ``last_valid`` (buffer index) replicate the last valid row (end of recording).
    """
    idx = np.arange(count)[:, None] * cfg.subsample + np.arange(cfg.stack)[None, :]
    idx = np.minimum(idx, last_valid)
    return np.ascontiguousarray(x[idx].reshape(count, cfg.stack * x.shape[1]))


# ------------------------------------------------------------------------------------------------
# whole-array API
# ------------------------------------------------------------------------------------------------
def _check_samples(y) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or y.size == 0:
        raise ParameterError(f"samples must be a non-empty 1-D array, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.floating):
        raise ParameterError(f"samples must be float (see load_audio), got dtype {y.dtype}")
    if not np.all(np.isfinite(y)):
        raise ParameterError("samples contain NaN or infinite values")
    return y.astype(np.float32, copy=False)


def base_features(y: np.ndarray, cfg: FeatureConfig = FeatureConfig(), *, warp: float = 1.0) -> np.ndarray:
    """Un-normalised, un-stacked features (MFCC + deltas) of a whole recording.

    Parameters
    ----------
    y : np.ndarray [shape=(n_samples,)] float, at ``cfg.sample_rate``
    cfg : FeatureConfig
    warp : float in [0.5, 2]
        frequency warp factor (vocal-tract-length perturbation, a training augmentation): the
        spectrum's energy at f moves to ``warp * f`` (piecewise linear, the Nyquist frequency
        fixed) before the mel filterbank. 1 (the default) is no warp.

    Returns
    -------
    np.ndarray [shape=(cfg.n_base_frames(n_samples), cfg.base_dim), dtype=float32]
    """
    y = _check_samples(y)
    warp = check_real("warp", warp, *WARP_RANGE)
    if y.size < cfg.win_length:
        y = np.pad(y, (0, cfg.win_length - y.size))
    return _add_deltas(_mfcc(y, cfg, warp), cfg)


def extract_features(
    y: np.ndarray, cfg: FeatureConfig = FeatureConfig(), *, stats: FeatureStats | None = None
) -> np.ndarray:
    """Model input features of a whole recording.

    Parameters
    ----------
    y : np.ndarray [shape=(n_samples,)] float, at ``cfg.sample_rate``
    cfg : FeatureConfig
    stats : FeatureStats or None
        required when ``cfg.cmvn == "global"``, ignored otherwise.

    Returns
    -------
    np.ndarray [shape=(cfg.n_frames(n_samples), cfg.dim), dtype=float32]
    """
    return normalize_and_stack(base_features(y, cfg), cfg, stats=stats)


def normalize_and_stack(base: np.ndarray, cfg: FeatureConfig = FeatureConfig(), *,
                        stats: FeatureStats | None = None) -> np.ndarray:
    """Model frames from base features (the last two stages of :func:`extract_features`).

    Parameters
    ----------
    base : np.ndarray [shape=(n_base, cfg.base_dim)]
        output of :func:`base_features` (e.g. cached by a trainer).
    stats : FeatureStats or None
        required when ``cfg.cmvn == "global"``.

    Returns
    -------
    np.ndarray [shape=(ceil(n_base / cfg.subsample), cfg.dim), dtype=float32]
    """
    x = _normalise(base, _resolve_stats(cfg, stats, base))
    return _stack(x, 0, -(-x.shape[0] // cfg.subsample), cfg, x.shape[0] - 1)


def _resolve_stats(cfg: FeatureConfig, stats, x=None):
    if cfg.cmvn == "none":
        return None
    if cfg.cmvn == "global":
        if stats is None:
            raise ParameterError('cmvn="global" needs stats (a FeatureStats from training data)')
        if stats.mean.shape != (cfg.base_dim,):
            raise ParameterError(f"stats have {stats.mean.shape} features, config has {cfg.base_dim}")
        return stats
    if x is None:  # utterance: caller must supply the utterance's stats
        if stats is None:
            raise ParameterError('cmvn="utterance" in a stream needs the utterance statistics')
        return stats
    m = _Moments(x.shape[1])
    m.add(x)
    return m.stats()


def compute_stats(base_frames: Iterable[np.ndarray]) -> FeatureStats:
    """Global CMVN statistics from base feature arrays (e.g. ``base_features`` of a training set)."""
    m = None
    for x in base_frames:
        if m is None:
            m = _Moments(x.shape[1])
        m.add(x)
    if m is None:
        raise ParameterError("compute_stats got no feature arrays")
    return m.stats()


# ------------------------------------------------------------------------------------------------
# streaming
# ------------------------------------------------------------------------------------------------
class FeatureStream:
    """Incremental feature extractor: feed samples, get model frames; bounded memory.

    ``accept(samples)`` returns the model frames that became final; ``finish()`` returns the rest.
    Concatenated, they equal :func:`extract_features` of the whole recording (within float
    rounding).  Frames are delayed by about ``delta_order * delta_window + stack`` base frames.

    Parameters
    ----------
    cfg : FeatureConfig
    stats : FeatureStats or None
        required for ``cmvn="global"``; for ``cmvn="utterance"`` pass the utterance's own statistics
        (see :func:`file_features`), otherwise it is refused since it is not causal.
    """

    def __init__(self, cfg: FeatureConfig = FeatureConfig(), *, stats: FeatureStats | None = None):
        self.cfg = cfg
        self.stats = _resolve_stats(cfg, stats)
        self._ctx = cfg.delta_order * cfg.delta_window
        self._y = np.zeros(0, np.float32)  # samples not yet framed
        self._n_samples = 0
        self._c = np.zeros((0, cfg.n_mfcc), np.float32)  # cepstra buffer
        self._c0 = 0  # base index of _c[0]
        self._done_base = 0  # base frames emitted through deltas
        self._x = np.zeros((0, cfg.base_dim), np.float32)  # normalised base frames buffer
        self._x0 = 0  # base index of _x[0]
        self._done = 0  # model frames emitted
        self._finished = False

    def accept(self, samples: np.ndarray) -> np.ndarray:
        """Add samples; return new model frames ``[m, cfg.dim]`` (m may be 0)."""
        if self._finished:
            raise ParameterError("FeatureStream.accept() after finish()")
        s = np.asarray(samples, dtype=np.float32).reshape(-1)
        if s.size and not np.all(np.isfinite(s)):
            raise ParameterError("samples contain NaN or infinite values")
        self._n_samples += s.size
        y = np.concatenate([self._y, s]) if self._y.size else s
        cfg = self.cfg
        n_win = 0 if y.size < cfg.win_length else 1 + (y.size - cfg.win_length) // cfg.hop_length
        if n_win:
            c = _mfcc(y[: (n_win - 1) * cfg.hop_length + cfg.win_length], cfg)
            y = y[n_win * cfg.hop_length :]
        else:
            c = np.zeros((0, cfg.n_mfcc), np.float32)
        self._y = y.copy()
        return self._advance(c, final=False)

    def finish(self) -> np.ndarray:
        """Flush: return the remaining model frames ``[m, cfg.dim]``."""
        if self._finished:
            raise ParameterError("FeatureStream.finish() called twice")
        cfg = self.cfg
        c = np.zeros((0, cfg.n_mfcc), np.float32)
        if self._n_samples == 0:
            raise ParameterError("FeatureStream got no samples")
        if self._n_samples < cfg.win_length:  # short recording: pad to one window
            c = _mfcc(np.pad(self._y, (0, cfg.win_length - self._y.size)), cfg)
        out = self._advance(c, final=True)
        self._finished = True
        return out

    def _advance(self, c: np.ndarray, final: bool) -> np.ndarray:
        cfg, K = self.cfg, self._ctx
        self._c = np.concatenate([self._c, c])
        avail = self._c0 + self._c.shape[0]
        upto = avail if final else avail - K
        if upto > self._done_base:
            full = _add_deltas(self._c, cfg)
            x = _normalise(full[self._done_base - self._c0 : upto - self._c0], self.stats)
            self._done_base = upto
            keep_from = max(self._c0, upto - K)
            self._c = self._c[keep_from - self._c0 :]
            self._c0 = keep_from
            self._x = np.concatenate([self._x, x])
        # stacking
        n_x = self._x0 + self._x.shape[0]  # base frames normalised so far
        if final:
            n_new = -(-n_x // cfg.subsample) - self._done
        else:
            n_new = max(0, (n_x - cfg.stack) // cfg.subsample + 1 - self._done)
        if n_new <= 0:
            return np.zeros((0, cfg.dim), np.float32)
        start = self._done * cfg.subsample - self._x0
        out = _stack(self._x[start:], self._done, n_new, cfg, self._x.shape[0] - 1 - start)
        self._done += n_new
        drop = min(self._done * cfg.subsample - self._x0, self._x.shape[0])
        self._x = self._x[drop:]
        self._x0 += drop
        return out


def iter_file_features(
    path, cfg: FeatureConfig = FeatureConfig(), *, stats: FeatureStats | None = None, block_seconds=None
) -> Iterator[np.ndarray]:
    """Yield a file's model frames chunk by chunk, in bounded memory.

    For ``cmvn="utterance"`` the file is read twice: once for its statistics, once to normalise.
    """
    from .audio import stream_audio

    kw = {"sr": cfg.sample_rate}
    if block_seconds is not None:
        kw["block_seconds"] = block_seconds
    if cfg.cmvn == "utterance":
        m = _Moments(cfg.base_dim)
        # statistics of the un-stacked base frames, gathered through a stack=1 stream
        raw = FeatureStream(cfg.replace(cmvn="none", stack=1, subsample=1))
        for block in stream_audio(path, **kw):
            m.add(raw.accept(block))
        m.add(raw.finish())
        stats = m.stats()
    stream = FeatureStream(cfg, stats=stats)
    for block in stream_audio(path, **kw):
        out = stream.accept(block)
        if out.shape[0]:
            yield out
    out = stream.finish()
    if out.shape[0]:
        yield out


def file_features(path, cfg: FeatureConfig = FeatureConfig(), *, stats: FeatureStats | None = None, out=None):
    """Model frames of a whole file, computed in bounded memory.

    Parameters
    ----------
    path : str or os.PathLike
    cfg : FeatureConfig
    stats : FeatureStats or None
        for ``cmvn="global"``.
    out : str or None
        if given, frames are written straight into this ``.npy`` file (memory-mapped) and its
        path is returned; otherwise the array is returned.

    Returns
    -------
    np.ndarray [shape=(n_frames, cfg.dim)] or str
    """
    if out is None:
        parts = list(iter_file_features(path, cfg, stats=stats))
        return np.concatenate(parts) if parts else np.zeros((0, cfg.dim), np.float32)
    # frames are appended to the file as they come (no memory map: its dirty pages would count
    # against memory), then the header is rewritten with the final count.
    fmt = np.lib.format
    n = 0
    with open(out, "wb") as f:
        fmt.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (0, cfg.dim)})
        data_offset = f.tell()
        for part in iter_file_features(path, cfg, stats=stats):
            f.write(np.ascontiguousarray(part, dtype="<f4").tobytes())
            n += part.shape[0]
        f.seek(0)
        fmt.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (n, cfg.dim)})
        if f.tell() != data_offset:  # numpy reserves header room for the first axis to grow
            raise RuntimeError("npy header size changed while finishing the file")
    return out
