"""Data augmentation, deterministic for a seed (every function takes a ``np.random.Generator``).

Waveform (float32 mono at ``sr``): additive noise at a random SNR (white, pink, recorded
background clips, tonal hum), gain, speed perturbation, telephone band-limiting, room
reverberation, clipped speech onsets (tightly trimmed clips).
Features: SpecAugment time and feature masks; vocal-tract-length perturbation (a frequency warp
factor drawn by :meth:`Augmenter.draw_warp`, applied by ``features.base_features(warp=...)``).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, fields
from typing import List, Optional

import numpy as np

from .config import SAMPLE_RATE
from .errors import ParameterError, check_range, check_real
from .features import WARP_RANGE

__all__ = ["white_noise", "pink_noise", "add_noise", "gain", "speed_perturb", "telephone", "reverb",
           "trim_onset", "trim_to_vowel", "hum", "spec_augment", "join_clips", "Augmenter"]


def white_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal(n).astype(np.float32)


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """1/f noise by shaping white noise in the frequency domain (unit RMS)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.size, dtype=np.float64)
    f[0] = 1.0
    y = np.fft.irfft(spec / np.sqrt(f), n)
    return (y / (np.sqrt(np.mean(y * y)) + 1e-12)).astype(np.float32)

SPEED_RANGE = (0.5, 2.0)  # the speed factors speed_perturb accepts


def _rms(y):
    return float(np.sqrt(np.mean(np.square(y, dtype=np.float64)))) + 1e-12


def hum(n: int, rng: np.random.Generator, sr: int = SAMPLE_RATE, *, tones=(1, 4), band=(50.0, 3800.0)) -> np.ndarray:
    """Stationary tonal noise (unit RMS): a few sinusoids at random frequencies in ``band`` Hz, as
    left by mains hum, fans or a noisy recording chain."""
    t = np.arange(n) / sr
    y = np.zeros(n)
    for _ in range(int(rng.integers(tones[0], tones[1] + 1))):
        y += rng.uniform(0.3, 1.0) * np.sin(2 * np.pi * rng.uniform(*band) * t + rng.uniform(0, 2 * np.pi))
    return (y / (np.sqrt(np.mean(y * y)) + 1e-12)).astype(np.float32)


def add_noise(y: np.ndarray, noise: np.ndarray, snr_db: float, rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """Mix ``noise`` (looped/cropped at a random offset) into ``y`` at ``snr_db`` dB."""
    n = y.size
    if noise.size < n:
        noise = np.tile(noise, int(np.ceil(n / noise.size)))
    off = int(rng.integers(0, noise.size - n + 1)) if rng is not None and noise.size > n else 0
    seg = noise[off: off + n]
    scale = _rms(y) / (_rms(seg) * 10 ** (snr_db / 20.0))
    return np.clip(y + scale * seg, -1.0, 1.0).astype(np.float32)


def gain(y: np.ndarray, db: float) -> np.ndarray:
    return np.clip(y * 10 ** (db / 20.0), -1.0, 1.0).astype(np.float32)


def speed_perturb(y: np.ndarray, factor: float, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Play ``factor`` times faster (pitch moves too, as in Kaldi's speed perturbation)."""
    factor = check_real("speed factor", factor, *SPEED_RANGE)
    import soxr

    return soxr.resample(y, sr * factor, sr).astype(np.float32)


def telephone(y: np.ndarray, sr: int = SAMPLE_RATE, *, rate: int = 8000) -> np.ndarray:
    """Telephone channel: 300–3400 Hz band-pass and a round trip through ``rate`` Hz."""
    import soxr
    from scipy.signal import butter, sosfilt

    sos = butter(4, [300, min(3400, rate / 2 - 100)], btype="bandpass", fs=sr, output="sos")
    z = sosfilt(sos, y).astype(np.float32)
    z = soxr.resample(soxr.resample(z, sr, rate), rate, sr).astype(np.float32)
    return z[: y.size] if z.size >= y.size else np.pad(z, (0, y.size - z.size))


def reverb(y: np.ndarray, rng: np.random.Generator, sr: int = SAMPLE_RATE, *, rt60=(0.15, 0.6), wet=(0.2, 0.6)) -> np.ndarray:
    """Simple room: exponentially decaying noise impulse response with a random RT60."""
    from scipy.signal import fftconvolve

    t60 = float(rng.uniform(*rt60))
    n = int(t60 * sr)
    t = np.arange(n) / sr
    ir = rng.standard_normal(n) * np.exp(-6.9 * t / t60)  # -60 dB at t60
    ir[0] = 1.0
    ir /= np.sqrt(np.sum(ir ** 2))
    w = float(rng.uniform(*wet))
    z = fftconvolve(y, ir)[: y.size]
    out = (1 - w) * y + w * z * (_rms(y) / _rms(z))
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def _loud_frames(y: np.ndarray, sr: int, *thresholds_db: float):
    """(hop, mask, ...) with one mask per threshold: the 10 ms frames of ``y`` within that many dB
    of its loudest one (the frames' power computed once); None when ``y`` has fewer than two frames."""
    hop = max(1, int(0.01 * sr))
    n = y.size // hop
    if n < 2:
        return None
    frames = np.square(y[: n * hop].astype(np.float64)).reshape(n, hop).mean(axis=1)
    return (hop, *(frames >= frames.max() * 10 ** (t / 10.0) for t in thresholds_db))


def _speech_bounds(y: np.ndarray, sr: int, threshold_db: float):
    """(first sample of the first, end sample of the last) 10 ms frame of ``y`` within ``threshold_db`` of
    its loudest one; None when ``y`` has fewer than two frames."""
    loud = _loud_frames(y, sr, threshold_db)
    if loud is None:
        return None
    hop, mask = loud
    return int(np.argmax(mask)) * hop, (mask.size - int(np.argmax(mask[::-1]))) * hop


def _cut_from(y: np.ndarray, start: int, sr: int) -> np.ndarray:
    """``y`` from sample ``start`` on, or ``y`` itself when under 100 ms would be left."""
    if y.size - start < int(0.1 * sr):
        return y
    return y[start:].copy()


def trim_onset(y: np.ndarray, cut_s: float, sr: int = SAMPLE_RATE, *, threshold_db: float = -35.0) -> np.ndarray:
    """Clip the start of the speech: drop everything before the first 10 ms frame within
    ``threshold_db`` of the loudest one, plus ``cut_s`` seconds more.

    Mimics corpora trimmed tightly around each word (FSDD), where the first consonant is often
    partly cut. Returns ``y`` unchanged when it is too short to keep 100 ms after the cut.
    """
    bounds = _speech_bounds(y, sr, threshold_db)
    if bounds is None:
        return y
    return _cut_from(y, bounds[0] + int(round(cut_s * sr)), sr)


def trim_to_vowel(y: np.ndarray, cut_s: float, sr: int = SAMPLE_RATE, *, vowel_db: float = -10.0,
                  speech_db: float = -35.0, max_consonant_s: float = 0.25) -> np.ndarray:
    """Cut a clip where its first vowel begins: drop everything before the first 10 ms frame within
    ``vowel_db`` of the loudest one, plus ``cut_s`` seconds, so the word's first consonant is gone whole
    (as in corpora end-pointed into the vowel, like many FSDD clips).

    Only an onset consonant goes: if the speech (the first frame within ``speech_db`` of the loudest)
    starts more than ``max_consonant_s`` before that vowel frame (a quieter first word of a sequence,
    say, or noise as loud as speech), or under 100 ms would be left, ``y`` is returned unchanged.
    """
    loud = _loud_frames(y, sr, vowel_db, speech_db)
    if loud is None:
        return y
    hop, vowel, speech = loud
    v = int(np.argmax(vowel))
    if (v - int(np.argmax(speech))) * hop > max_consonant_s * sr:
        return y
    return _cut_from(y, v * hop + int(round(cut_s * sr)), sr)


def trim_end(y: np.ndarray, keep_s: float, sr: int = SAMPLE_RATE, *, threshold_db: float = -35.0) -> np.ndarray:
    """Cut the silence after the speech: keep up to the end of the last 10 ms frame within
    ``threshold_db`` of the loudest one, plus ``keep_s`` seconds.

    With :func:`trim_onset`, mimics clips cut tightly at both ends (FSDD, end-pointed recordings),
    whose per-clip feature mean is the word's own spectrum rather than mostly silence. Returns
    ``y`` unchanged when it has under two frames or under 100 ms would be left.
    """
    bounds = _speech_bounds(y, sr, threshold_db)
    if bounds is None:
        return y
    end = bounds[1] + int(round(keep_s * sr))
    if end >= y.size or end < int(0.1 * sr):
        return y
    return y[:end].copy()


JOIN_MARGIN_S = (0.03, 0.25)  # s, each joined clip keeps this much of its own sound around its speech (drawn)
JOIN_FADE_S = 0.01  # s, linear cross-fade at each join


def join_clips(clips, rng: np.random.Generator, sr: int = SAMPLE_RATE, *, threshold_db: float = -25.0,
               margin_s=JOIN_MARGIN_S) -> np.ndarray:
    """One recording of several single-word clips of one speaker: a multi-word utterance in a real voice.

    Each clip is cut to its speech (the 10 ms frames within ``threshold_db`` of its loudest) plus a margin
    drawn from ``margin_s`` on each side, taken from the clip itself, so the pauses between words hold the
    speaker's own background; the pieces are joined with a 10 ms cross-fade.  The first clip keeps all of
    its sound before the speech and the last all after it, so the recording starts and ends as the clips
    do.  Corpora of isolated words (Speech Commands, FSDD) otherwise never show a network real speech
    with more than one word.

    Parameters
    ----------
    clips : sequence of np.ndarray [shape=(n,)] float32, at ``sr``
    rng : np.random.Generator

    Returns
    -------
    np.ndarray [shape=(m,)] float32
    """
    if len(clips) == 0:
        raise ParameterError("join_clips needs at least one clip")
    lo, hi = margin_s
    fade = int(JOIN_FADE_S * sr)
    out = None
    for k, y in enumerate(clips):
        y = np.asarray(y, np.float32)
        start, end = _speech_bounds(y, sr, threshold_db) or (0, y.size)
        a = 0 if k == 0 else max(0, start - int(rng.uniform(lo, hi) * sr))
        b = y.size if k == len(clips) - 1 else min(y.size, end + int(rng.uniform(lo, hi) * sr))
        piece = y[a:b]
        if out is None:
            out = piece.copy()
            continue
        f = min(fade, out.size, piece.size)
        if f:
            w = np.linspace(0.0, 1.0, f, dtype=np.float32)
            out[-f:] = out[-f:] * (1.0 - w) + piece[:f] * w
        out = np.concatenate([out, piece[f:]])
    return out.astype(np.float32, copy=False)


def spec_augment(x: np.ndarray, rng: np.random.Generator, *, time_masks: int = 2, max_time: int = 5,
                 feature_masks: int = 2, max_features: int = 3, n_cepstra: Optional[int] = None,
                 mel_bands: int = 0, scale: Optional[np.ndarray] = None) -> np.ndarray:
    """SpecAugment on model features ``[T, D]``: zero random time spans and feature bands.

    With ``n_cepstra``, a feature band masks the same cepstral indices in every stacked copy and
    delta group (features are laid out as repeating groups of ``n_cepstra``).

    With ``mel_bands`` (the number of log-mel bands the cepstra were taken from by an orthonormal
    DCT-II; needs ``n_cepstra``), a feature mask is a band of up to ``max_features`` *mel bands*
    instead, as in SpecAugment proper: the spectral envelope the cepstra describe (their inverse
    DCT) is set to the normalisation mean over the masked bands, and the cepstra are taken again
    from it — the same linear map ``I - D_band D_band^T`` on every group of ``n_cepstra``, deltas
    included.  ``scale`` [shape=(D,)] is the per-feature standard deviation the features were
    divided by in normalisation (the map acts on the unnormalised cepstra); None means 1.
    The random draws are those of the cepstral masks (a width, then a start), over mel bands.
    """
    x = x.copy()
    T, D = x.shape
    if mel_bands:
        if n_cepstra is None or not 0 < n_cepstra <= mel_bands or D % n_cepstra:
            raise ParameterError(f"mel-band masks need n_cepstra in [1, mel_bands={mel_bands}] dividing the "
                                 f"{D} features, got n_cepstra={n_cepstra!r}")
        if scale is not None and np.shape(scale) != (D,):
            raise ParameterError(f"scale must have one value per feature, shape ({D},), got {np.shape(scale)}")
    for s, w in _spans(rng, time_masks, max_time, T):
        x[s: s + w] = 0.0
    group = n_cepstra or D
    if mel_bands:
        band = np.zeros(mel_bands, bool)
        for s, w in _spans(rng, feature_masks, max_features, mel_bands):
            band[s: s + w] = True
        if band.any():
            basis = _dct_rows(mel_bands, group)[:, band]  # [n_cepstra, masked bands]
            keep = np.eye(group) - basis @ basis.T  # cepstra -> cepstra of the envelope with the band at its mean
            sd = np.ones(D) if scale is None else np.asarray(scale, np.float64)
            for g0 in range(0, D, group):
                s_g = sd[g0: g0 + group]
                x[:, g0: g0 + group] = ((x[:, g0: g0 + group] * s_g) @ keep.T) / s_g
        return x
    for s, w in _spans(rng, feature_masks, max_features, group):
        for g0 in range(0, D, group):
            x[:, g0 + s: g0 + s + w] = 0.0
    return x


def _spans(rng: np.random.Generator, count: int, widest: int, length: int):
    """SpecAugment's mask spans (start, width) over ``length`` positions: per mask a width in [0, widest],
    then, if it is non-zero and shorter than ``length``, a start — drawn as they are used, so the draw order
    of every mask kind is the same."""
    for _ in range(count):
        w = int(rng.integers(0, widest + 1))
        if w and length > w:
            yield int(rng.integers(0, length - w)), w


@functools.lru_cache(maxsize=8)
def _dct_rows(n_bands: int, n_cepstra: int) -> np.ndarray:
    """The first ``n_cepstra`` rows of the orthonormal DCT-II of size ``n_bands`` — the transform the front end
    takes the cepstra with (``features._mfcc``): cepstra = rows @ log-mel."""
    from scipy.fft import dct

    rows = dct(np.eye(n_bands), type=2, norm="ortho", axis=0)[:n_cepstra]
    rows.flags.writeable = False
    return rows


_RANGE_BOUNDS = {  # Augmenter's (low, high) settings and the values each may take
    "snr_db": (-math.inf, math.inf),
    "gain_db": (-math.inf, math.inf),
    "speed": SPEED_RANGE,
    "trim_s": (0.0, math.inf),
    "trim_end_s": (0.0, math.inf),
    "trim_vowel_s": (0.0, math.inf),
    "hum_snr_db": (-math.inf, math.inf),
    "vtlp": WARP_RANGE,
}


@dataclass
class Augmenter:
    """A random chain of waveform augmentations, with probabilities, for one clip at a time."""

    noise_clips: List[np.ndarray] = field(default_factory=list)  # recorded background noise
    p_noise: float = 0.6
    snr_db: tuple = (5.0, 30.0)
    p_gain: float = 0.5
    gain_db: tuple = (-12.0, 6.0)
    p_speed: float = 0.4
    speed: tuple = (0.85, 1.15)
    p_telephone: float = 0.15
    p_reverb: float = 0.2
    p_trim: float = 0.0  # share of clips whose speech onset is clipped (see trim_onset)
    trim_s: tuple = (0.0, 0.08)  # seconds cut after the detected onset
    p_trim_end: float = 0.0  # share of clips whose silence after the speech is cut (see trim_end)
    trim_end_s: tuple = (0.0, 0.03)  # seconds kept after the last loud frame
    p_trim_vowel: float = 0.0  # share of clips cut where the vowel begins (see trim_to_vowel)
    trim_vowel_db: float = -10.0  # dB under the loudest 10 ms frame where "the vowel" begins
    trim_vowel_s: tuple = (0.0, 0.02)  # seconds cut after that frame
    p_hum: float = 0.0  # share of clips given stationary tonal noise (see hum)
    hum_snr_db: tuple = (10.0, 30.0)
    p_vtlp: float = 0.0  # share of clips given a frequency warp (vocal-tract-length perturbation)
    vtlp: tuple = (0.9, 1.1)  # range of the warp factor
    sr: int = SAMPLE_RATE

    def __post_init__(self):  # every setting, so a bad config value fails here, not mid-training
        for f in fields(self):
            if f.name.startswith("p_"):
                check_real(f.name, getattr(self, f.name), 0.0, 1.0)
        for name, (low, high) in _RANGE_BOUNDS.items():
            check_range(name, getattr(self, name), low, high)
        check_real("trim_vowel_db", self.trim_vowel_db, -60.0, 0.0)

    @classmethod
    def check_fields(cls, d: dict) -> None:
        """Raise :class:`ParameterError` unless ``d`` holds only settable fields with valid values
        (a config file's ``[augment]`` table; ``noise_clips`` and ``sr`` come from elsewhere)."""
        if not isinstance(d, dict):
            raise ParameterError(f"augment settings must be a table of Augmenter fields, got {d!r}")
        names = {f.name for f in fields(cls)} - {"noise_clips", "sr"}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ParameterError(f"unknown augment fields: {unknown} (known: {sorted(names)})")
        cls(**d)

    def draw_warp(self, rng: np.random.Generator) -> float:
        """The frequency warp factor of one clip (1.0: none); draws nothing when ``p_vtlp`` is 0, so
        features computed before this option existed stay the same."""
        if self.p_vtlp and rng.random() < self.p_vtlp:
            return float(rng.uniform(*self.vtlp))
        return 1.0

    def __call__(self, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.p_trim and rng.random() < self.p_trim:
            y = trim_onset(y, float(rng.uniform(*self.trim_s)), self.sr)
        if self.p_trim_end and rng.random() < self.p_trim_end:  # draws nothing when off: old caches stay valid
            y = trim_end(y, float(rng.uniform(*self.trim_end_s)), self.sr)
        if self.p_trim_vowel and rng.random() < self.p_trim_vowel:  # likewise
            y = trim_to_vowel(y, float(rng.uniform(*self.trim_vowel_s)), self.sr, vowel_db=self.trim_vowel_db)
        if rng.random() < self.p_speed:
            y = speed_perturb(y, float(rng.uniform(*self.speed)), self.sr)
        if rng.random() < self.p_reverb:
            y = reverb(y, rng, self.sr)
        if rng.random() < self.p_telephone:
            y = telephone(y, self.sr)
        if rng.random() < self.p_noise:
            kind = int(rng.integers(0, 3 if self.noise_clips else 2))
            if kind == 0:
                noise = white_noise(y.size, rng)
            elif kind == 1:
                noise = pink_noise(y.size, rng)
            else:
                noise = self.noise_clips[int(rng.integers(len(self.noise_clips)))]
            y = add_noise(y, noise, float(rng.uniform(*self.snr_db)), rng)
        if self.p_hum and rng.random() < self.p_hum:
            y = add_noise(y, hum(y.size, rng, self.sr), float(rng.uniform(*self.hum_snr_db)))
        if rng.random() < self.p_gain:
            y = gain(y, float(rng.uniform(*self.gain_db)))
        return y
