"""Audio to results: ``Model.transcribe``, ``Model.classify``, ``Model.spot``, ``Model.stream`` (bound onto
:class:`~speechlstm.model.Model`).

Long recordings are cut into segments of at most ``SEGMENT_SECONDS``, each cut placed at the
quietest 100 ms of the segment's last ``SEGMENT_SEARCH_SECONDS``, and read block by block, so memory
stays bounded whatever the file's length.  ``transcribe`` and ``spot`` also cut a segment in the middle
of every pause inside it (:func:`pause_cuts`: at least ``config.PAUSE_SPLIT_SECONDS`` under
``config.PAUSE_LEVEL_DB``): the networks were trained on clips of a few words with short pauses, and a
long stretch of (near-)digital silence between words — far below any training clip's noise floor —
makes them drop the next word.  Results are plain JSON-ready dicts.
"""
from __future__ import annotations

import os
from typing import Iterator, List, Sequence, Tuple

import numpy as np

from . import config
from .audio import load_audio, stream_audio, to_float32_mono
from .decoding import BeamSearchDecoder, greedy_decode
from .errors import ParameterError
from .features import FeatureStream, extract_features
from .kws import NO_SPEECH, classify_scores, spot_keywords
from .nn import log_softmax

SEGMENT_SECONDS = 30.0  # s, longest segment run through the LSTM at once
SEGMENT_SEARCH_SECONDS = 10.0  # s, where (at the end of a segment) the quietest cut point is sought
CUT_WINDOW_SECONDS = 0.1  # s, energy window for choosing the cut

__all__ = ["transcribe", "classify", "spot", "stream", "log_probs", "member_log_probs", "mix_log_probs", "iter_segments",
           "pause_cuts", "word_list"]


def _cut_point(y: np.ndarray, sr: int) -> int:
    """Sample index of the quietest window within the last SEGMENT_SEARCH_SECONDS."""
    win = int(CUT_WINDOW_SECONDS * sr)
    lo = max(0, y.size - int(SEGMENT_SEARCH_SECONDS * sr))
    region = y[lo:]
    n = region.size // win
    if n < 2:
        return y.size
    e = np.square(region[: n * win].astype(np.float64)).reshape(n, win).sum(axis=1)
    return lo + int(np.argmin(e[1:]) + 1) * win


def iter_segments(audio, sr: int) -> Iterator[Tuple[float, np.ndarray]]:
    """Yield ``(offset_seconds, samples)`` segments of a path or array, in bounded memory."""
    max_n = int(SEGMENT_SECONDS * sr)
    if isinstance(audio, np.ndarray):
        blocks = iter([load_audio(audio, sr=sr)])
    elif isinstance(audio, (str, os.PathLike)):
        blocks = stream_audio(audio, sr=sr, block_seconds=10.0)
    else:
        raise ParameterError(f"audio must be a path or a float array at {sr} Hz, got {type(audio).__name__}")
    buf = np.zeros(0, np.float32)
    offset = 0
    for block in blocks:
        buf = np.concatenate([buf, block]) if buf.size else block
        while buf.size > max_n:
            cut = _cut_point(buf[:max_n], sr)
            yield offset / sr, buf[:cut]
            buf = buf[cut:]
            offset += cut
    if buf.size:
        yield offset / sr, buf


def pause_cuts(y: np.ndarray, sr: int) -> List[int]:
    """Where recognition cuts ``y`` at its pauses: sample indices, ascending.

    A pause is a run of at least ``config.PAUSE_SPLIT_SECONDS`` of 25 ms frames (10 ms apart) whose RMS
    lies under ``config.PAUSE_LEVEL_DB`` dBFS, with sound on both sides (leading and trailing silence is
    not cut off).  The cut is the pause's middle, so each piece keeps half of it as its own edge.  A
    piece holding less than ``config.PAUSE_MIN_SPEECH_SECONDS`` of frames above the level (a click, a
    breath) is not cut off on its own: it stays joined to the piece after it (the last one, to the piece
    before).

    Parameters
    ----------
    y : np.ndarray [shape=(n,)] float samples
    sr : int, Hz

    Returns
    -------
    list of int
    """
    win, hop = int(round(0.025 * sr)), int(round(0.010 * sr))
    if y.size < win:
        return []
    frames = np.lib.stride_tricks.sliding_window_view(y, win)[::hop].astype(np.float64)
    level = 10.0 * np.log10(np.mean(frames * frames, axis=1) + 1e-20)
    quiet = np.concatenate([[False], level < config.PAUSE_LEVEL_DB, [False]])
    starts = np.flatnonzero(~quiet[:-1] & quiet[1:])  # frame where each quiet run begins
    ends = np.flatnonzero(quiet[:-1] & ~quiet[1:])  # frame after it ends
    n = level.size
    inner = (starts > 0) & (ends < n)  # sound on both sides
    need = int(round(config.PAUSE_SPLIT_SECONDS / 0.010))
    runs = [(a, b) for a, b, ok in zip(starts, ends, inner) if ok and b - a >= need]
    if not runs:
        return []
    loud = np.concatenate([[0], np.cumsum(level >= config.PAUSE_LEVEL_DB)])  # loud frames before each frame
    edges = [0] + [e for r in runs for e in r] + [n]
    speech = [loud[edges[2 * k + 1]] - loud[edges[2 * k]] for k in range(len(runs) + 1)]  # per piece
    min_loud = config.PAUSE_MIN_SPEECH_SECONDS / 0.010
    cuts = []
    for k, (a, b) in enumerate(runs):
        if speech[k] >= min_loud and speech[k + 1] >= min_loud:
            cuts.append((a * hop + b * hop + win) // 2)
        else:  # no cut: the piece before joins the next one, its speech with it
            speech[k + 1] += speech[k]
    return cuts


def _pieces(audio, sr: int, split_pauses: bool) -> Iterator[Tuple[float, np.ndarray]]:
    """:func:`iter_segments`, each segment cut further at its pauses when ``split_pauses``."""
    for off, y in iter_segments(audio, sr):
        if not split_pauses:
            yield off, y
            continue
        bounds = [0] + pause_cuts(y, sr) + [y.size]
        for a, b in zip(bounds[:-1], bounds[1:]):
            yield off + a / sr, y[a:b]


def _member_logps(self, y: np.ndarray) -> np.ndarray:
    """Every network's per-frame log-probabilities of one segment, ``[M, T, C]`` (M = 1 unless the
    model is an ensemble; the members share the front end, so the features are computed once)."""
    x = extract_features(y, self.features, stats=self.stats)
    if self.device == "cuda":
        from .gpu_lstm import gpu_log_probs

        return np.stack([gpu_log_probs(a, x[None])[0] for a in self.members])
    return np.stack([a.log_probs(x[None])[0][0] for a in self.members])


def mix_log_probs(lps: np.ndarray) -> np.ndarray:
    """Frame-wise mixture of several networks' outputs: log of the mean posterior, ``[T, C]``.

    Averaging probabilities (not log-probabilities) keeps a symbol likely wherever any member
    spikes on it: members trained apart spike on different frames, and the mean in log space
    (a product of their posteriors) punishes every such frame.
    """
    lps = np.asarray(lps)
    if lps.shape[0] == 1:
        return lps[0]
    out = np.logaddexp.reduce(lps.astype(np.float64), axis=0) - np.log(lps.shape[0])
    return out.astype(lps.dtype)


def _segment_logp(self, y: np.ndarray) -> np.ndarray:
    return mix_log_probs(_member_logps(self, y))


def member_log_probs(self, audio) -> Tuple[np.ndarray, float]:
    """Every network's per-frame log-probabilities ``[M, T, C]`` of a whole recording (M = 1 unless
    the model is an ensemble; the audio is read and its features computed once) and its duration (s)."""
    sr = self.features.sample_rate
    parts, dur = [], 0.0
    for off, y in iter_segments(audio, sr):
        parts.append(_member_logps(self, y))
        dur = off + y.size / sr
    return np.concatenate(parts, axis=1), dur


def log_probs(self, audio) -> Tuple[np.ndarray, float]:
    """Per-frame log-probabilities ``[T, C]`` of a whole recording and its duration (s); for an
    ensemble, the mixture of its networks' (:func:`mix_log_probs`)."""
    lps, dur = member_log_probs(self, audio)
    return mix_log_probs(lps), dur


def word_list(words):
    """A word-list argument as a list: a str is split on commas and whitespace; a list or None
    passes through."""
    return [w for w in words.replace(",", " ").split() if w] if isinstance(words, str) else words


def _decoder(self, beam_size, words, hotwords, lm):
    words = self.vocabulary if words is None else word_list(words)
    return BeamSearchDecoder(self.alphabet, beam_width=beam_size, words=words or None, hotwords=hotwords, lm=lm)


def _segment_result(dec, lp, offset, period) -> dict:
    beams = dec.decode_beams(lp, n_best=1) if lp.shape[0] else []
    if not beams:
        return {"start": round(offset, 3), "end": round(offset + lp.shape[0] * period, 3), "text": "", "words": []}
    b = beams[0]
    words = [{"word": w.word, "start": round(offset + w.start_frame * period, 3),
              "end": round(offset + w.end_frame * period, 3), "confidence": round(w.confidence, 4)} for w in b.words]
    return {"start": round(offset + (b.words[0].start_frame * period if b.words else 0.0), 3),
            "end": round(offset + (b.words[-1].end_frame * period if b.words else lp.shape[0] * period), 3),
            "text": b.text, "words": words}


def transcribe(self, audio, *, beam_size: int = 16, words=None, hotwords=None, lm=None, split_pauses: bool = True) -> dict:
    """Transcribe a recording.

    Parameters
    ----------
    audio : str, os.PathLike or np.ndarray [shape=(n,)] float at the model's rate (16 kHz)
    beam_size : int
    words : list of str, comma-separated str, [] or None
        allowed words; None means the model's own vocabulary (if it has one), [] means any text.
    hotwords : dict, list or None
        ``{"word": boost}`` or ``["word:boost", ...]``.
    lm : WordLM or None
    split_pauses : bool
        recognise the stretches between pauses apart (:func:`pause_cuts`); False runs each
        ``SEGMENT_SECONDS`` segment through the network whole.

    Returns
    -------
    dict
        ``{"text", "duration", "segments": [{"start", "end", "text", "words": [{"word", "start",
        "end", "confidence"}]}]}`` — times in seconds.
    """
    dec = _decoder(self, beam_size, words, hotwords, lm)
    sr = self.features.sample_rate
    period = float(self.features.frame_period)
    segments, dur = [], 0.0
    for off, y in _pieces(audio, sr, split_pauses):
        lp = _segment_logp(self, y)
        seg = _segment_result(dec, lp, off, period)
        if seg["text"]:
            segments.append(seg)
        dur = off + y.size / sr
    return {"text": " ".join(s["text"] for s in segments), "duration": round(dur, 3), "segments": segments}


def classify(self, audio, words=None, *, no_speech: bool = True) -> dict:
    """Say which of a closed set of texts a short clip holds (isolated words, commands, digits).

    Each candidate is scored by its CTC log-likelihood over the whole clip (every alignment summed,
    see :func:`~speechlstm.kws.classify_scores`), not by a pruned beam search, so the answer is
    always one of the candidates.  An ensemble scores a candidate by the sum of its networks'
    log-likelihoods (each network aligns the text its own way).

    Parameters
    ----------
    audio : str, os.PathLike or np.ndarray [shape=(n,)] float at the model's rate (16 kHz)
    words : list of str, comma-separated str or None
        the candidate texts (words or phrases); None means the model's vocabulary.
    no_speech : bool
        also consider "no speech" (the empty transcript), labelled ``"_silence_"``.

    Returns
    -------
    dict
        ``{"label", "probability", "duration", "scores": [{"text", "log_likelihood",
        "probability"}, ...]}`` — scores best first, probabilities within the candidate set;
        ``log_likelihood`` is None for a candidate longer than the clip allows.
    """
    if words is None:
        words = self.vocabulary
        if not words:
            raise ParameterError("this model has no vocabulary: pass the candidate words")
    elif not word_list(words):  # else "no speech" would win alone, whatever the clip holds
        raise ParameterError(f"no candidate words given ({words!r}); None means the model's vocabulary")
    cands = list(word_list(words)) + ([NO_SPEECH] if no_speech else [])
    lp, dur = member_log_probs(self, audio)
    if lp.shape[1] == 0:
        raise ParameterError("the audio is too short to classify (no feature frames)")
    scores = classify_scores(lp, cands, self.alphabet)
    if not np.isfinite(scores[0]["log_likelihood"]):
        raise ParameterError(f"the audio is too short for every candidate ({lp.shape[1]} feature frames)")
    return {"label": scores[0]["text"], "probability": round(scores[0]["probability"], 4), "duration": round(dur, 3),
            "scores": [{"text": r["text"],  # None: the candidate needs more frames than the clip has
                        "log_likelihood": round(r["log_likelihood"], 4) if np.isfinite(r["log_likelihood"]) else None,
                        "probability": round(r["probability"], 4)} for r in scores]}


def spot(self, audio, keywords: Sequence[str], *, threshold: float = 0.5, split_pauses: bool = True) -> List[dict]:
    """Find keywords: a list of ``{"keyword", "start", "end", "score"}`` (seconds, score in [0, 1]);
    ``split_pauses`` as in :func:`transcribe`."""
    if isinstance(keywords, str):
        keywords = [k for k in keywords.split(",") if k.strip()]
    if not keywords:
        raise ParameterError("no keywords given")
    sr = self.features.sample_rate
    period = float(self.features.frame_period)
    out = []
    for off, y in _pieces(audio, sr, split_pauses):
        for r in spot_keywords(_segment_logp(self, y), keywords, self.alphabet, threshold=threshold,
                               frame_period=period):
            r["start"] = round(r["start"] + off, 3)
            r["end"] = round(r["end"] + off, 3)
            out.append(r)
    return out


class Stream:
    """Live recognition for unidirectional models: ``feed(samples)`` returns the partial result,
    ``finish()`` the final one (same shape as ``transcribe``'s)."""

    def __init__(self, model, *, beam_size: int = 16, words=None, hotwords=None, lm=None):
        if len(model.members) > 1:
            raise ParameterError(f"{model.name}: streaming needs a single network; this model is an ensemble of "
                                 f"{len(model.members)}")
        if not model.streaming:
            raise ParameterError(f"{model.name}: streaming needs a unidirectional model; this one is bidirectional")
        if model.features.cmvn == "utterance":
            raise ParameterError(f"{model.name}: streaming needs global or no CMVN; this model uses per-utterance CMVN")
        self.model = model
        self.features = FeatureStream(model.features, stats=model.stats)
        self.state = None
        self.logp: List[np.ndarray] = []
        self.n_samples = 0
        self.decoder = _decoder(model, beam_size, words, hotwords, lm)

    def _run(self, x):
        if x.shape[0] == 0:
            return
        z, self.state = self.model.acoustic.forward(x[None], state=self.state)
        self.logp.append(log_softmax(z)[0])

    def feed(self, samples: np.ndarray) -> dict:
        """Take the next block of samples at the model's rate (16 kHz), as ``load_audio`` reads an array:
        float in [-1, 1] or integer PCM (full scale of its dtype, e.g. int16 from a sound card), shape
        ``(n,)`` or ``(n, channels)`` (the channels averaged).  An empty block is allowed."""
        a = np.asarray(samples)
        y = to_float32_mono(a, name="stream block") if a.size else np.zeros(0, np.float32)
        self.n_samples += y.size
        self._run(self.features.accept(y))
        lp = np.concatenate(self.logp) if self.logp else np.zeros((0, len(self.model.alphabet)), np.float32)
        return {"text": greedy_decode(lp, self.model.alphabet), "final": False,
                "duration": round(self.n_samples / self.model.features.sample_rate, 3)}

    def finish(self) -> dict:
        self._run(self.features.finish())
        lp = np.concatenate(self.logp) if self.logp else np.zeros((0, len(self.model.alphabet)), np.float32)
        seg = _segment_result(self.decoder, lp, 0.0, float(self.model.features.frame_period))
        return {"text": seg["text"], "duration": round(self.n_samples / self.model.features.sample_rate, 3),
                "segments": [seg] if seg["text"] else [], "final": True}


def stream(self, **kw) -> Stream:
    """A :class:`Stream` for live audio (unidirectional models only)."""
    return Stream(self, **kw)
