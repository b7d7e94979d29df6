"""Synthetic speech from espeak-ng and flite (Debian packages), rendered into a manifest.

Voices are :class:`Voice` specs: engine, voice, variant, speed and pitch.  Rendering runs the
engines as subprocesses in a thread pool, with a progress bar; which voice renders which text is
drawn from a seeded generator, so the manifest is deterministic for a seed.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import List, Optional, Sequence

import numpy as np

from .errors import DataError, ParameterError

__all__ = ["Voice", "espeak_voices", "flite_voices", "render", "synthesize", "voice_pool", "engine_available"]

ESPEAK_ACCENTS = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
                  "en-029", "en-us-nyc"]
FLITE_VOICES = ["kal", "kal16", "awb", "rms", "slt"]


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker.

    engine : "espeak-ng" or "flite"
    voice : espeak-ng language/accent (``en-us`` ...) or flite voice (``slt`` ...)
    variant : espeak-ng variant (``f3``, ``Alicia`` ...) or ""
    rate : speed factor (1.0 = the engine's default speed)
    pitch : pitch factor (1.0 = default)
    """

    engine: str
    voice: str
    variant: str = ""
    rate: float = 1.0
    pitch: float = 1.0

    @property
    def speaker(self) -> str:
        v = f"{self.voice}+{self.variant}" if self.variant else self.voice
        return f"{self.engine}:{v}:r{self.rate:.2f}:p{self.pitch:.2f}"

    def command(self, text: str, out_path: str) -> List[str]:
        if self.engine == "espeak-ng":
            v = f"{self.voice}+{self.variant}" if self.variant else self.voice
            return ["espeak-ng", "-v", v, "-s", str(int(round(175 * self.rate))),
                    "-p", str(int(np.clip(round(50 * self.pitch), 0, 99))), "-w", out_path, text]
        if self.engine == "flite":
            return ["flite", "-voice", self.voice, "--setf", f"duration_stretch={1.0 / self.rate:.3f}",
                    "--setf", f"int_f0_target_mean={110 * self.pitch:.1f}", "-t", text, "-o", out_path]
        raise ParameterError(f"unknown synthesis engine {self.engine!r}")


def engine_available(engine: str) -> bool:
    return shutil.which(engine) is not None


def espeak_variants() -> List[str]:
    """Names of the installed espeak-ng voice variants."""
    if not engine_available("espeak-ng"):
        return []
    out = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True).stdout
    names = []
    for line in out.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 5 and parts[4].startswith("!v/"):
            names.append(parts[4][3:])
    return names


def espeak_voices() -> List[str]:
    return list(ESPEAK_ACCENTS) if engine_available("espeak-ng") else []


def flite_voices() -> List[str]:
    return list(FLITE_VOICES) if engine_available("flite") else []


def voice_pool(rng: np.random.Generator, n: int, *, espeak_accents=None, espeak_variant_names=None,
               flite_names=None, rate_range=(0.8, 1.25), pitch_range=(0.7, 1.4), flite_share=0.3) -> List[Voice]:
    """Draw ``n`` random voices from the given accents, variants and flite voices."""
    accents = list(espeak_accents if espeak_accents is not None else espeak_voices())
    variants = list(espeak_variant_names if espeak_variant_names is not None else espeak_variants())
    flites = list(flite_names if flite_names is not None else flite_voices())
    if not accents and not flites:
        raise DataError("no speech synthesizer found: install the Debian packages espeak-ng and flite")
    voices = []
    for _ in range(n):
        rate = float(rng.uniform(*rate_range))
        pitch = float(rng.uniform(*pitch_range))
        if flites and (not accents or rng.random() < flite_share):
            voices.append(Voice("flite", str(rng.choice(flites)), "", round(rate, 2), round(pitch, 2)))
        else:
            var = str(rng.choice(variants)) if variants and rng.random() < 0.85 else ""
            voices.append(Voice("espeak-ng", str(rng.choice(accents)), var, round(rate, 2), round(pitch, 2)))
    return voices


def render(text: str, voice: Voice, out_path: str, *, timeout: float = 30.0) -> str:
    """Render ``text`` with ``voice`` into a WAV file; raises DataError on failure."""
    if not engine_available(voice.engine):
        raise DataError(f"{voice.engine} is not installed (Debian package {voice.engine})")
    tmp = f"{out_path}.{os.getpid()}-{threading.get_ident()}.part.wav"  # never shared by two renders
    try:
        r = subprocess.run(voice.command(text, tmp), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise DataError(f"{voice.engine} timed out rendering {text!r}") from None
    if r.returncode != 0 or not os.path.exists(tmp) or os.path.getsize(tmp) <= 44:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise DataError(f"{voice.engine} failed for {text!r} with voice {voice.speaker}: {r.stderr.strip()[:200]}")
    os.replace(tmp, out_path)
    return out_path


def synthesize(texts: Sequence[str], out_dir: str, *, voices: Optional[Sequence[Voice]] = None, seed: int = 0,
               n_voices: int = 200, workers: int = 2, progress: bool = True, **pool_kw) -> List[dict]:
    """Render every text once, each with a voice drawn (seeded) from ``voices``.

    Returns manifest rows ``{"path", "text", "speaker", "duration", "voice"}``; files already
    rendered (same text, voice) are reused, so a re-run is cheap, and a (text, voice) pair drawn
    twice is rendered once.  A render that fails is reported in one line on stderr and its rows
    are left out; only when every render fails is it an error.
    """
    import soundfile as sf
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    pool = list(voices) if voices else voice_pool(rng, n_voices, **pool_kw)
    os.makedirs(out_dir, exist_ok=True)
    jobs = []
    for i, text in enumerate(texts):
        v = pool[int(rng.integers(len(pool)))]
        key = hashlib.sha1(f"{text}|{v.speaker}".encode()).hexdigest()[:16]
        jobs.append((text, v, os.path.abspath(os.path.join(out_dir, f"{key}.wav"))))

    def one(job):
        text, v, path = job
        try:
            if not os.path.exists(path):
                render(text, v, path)
            return path, round(sf.info(path).duration, 3), None
        except (DataError, OSError, RuntimeError) as exc:  # soundfile raises RuntimeError subclasses
            return path, None, str(exc)

    unique = list({path: (text, v, path) for text, v, path in jobs}.values())
    done = {}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as ex:
        it = ex.map(one, unique)
        if progress:
            it = tqdm(it, total=len(unique), desc="synth", unit="utt")
        errors = []
        for path, duration, err in it:
            done[path] = duration
            if err is not None:
                errors.append(err)
                print(f"speechlstm: warning: {path}: skipped ({err})", file=sys.stderr)
    if unique and len(errors) == len(unique):
        raise DataError(f"{out_dir}: every synthesis failed (the first: {errors[0]})")
    return [{"path": path, "text": text, "speaker": v.speaker, "duration": done[path], "voice": asdict(v)}
            for text, v, path in jobs if done[path] is not None]
