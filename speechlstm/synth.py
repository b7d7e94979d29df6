"""Synthetic speech from espeak-ng and flite (Debian packages), rendered into a manifest.

Voices are :class:`Voice` specs: engine, voice, variant, speed and pitch.  Rendering runs the
engines as subprocesses in a thread pool, with a progress bar; which voice renders which text is
drawn from a seeded generator, so the manifest is deterministic for a seed.
"""
from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import List, Optional, Sequence

import numpy as np

from .alphabet import normalize_text
from .errors import DataError, ParameterError, check_int

__all__ = ["Voice", "espeak_voices", "flite_voices", "l1_voices", "accented_phonemes", "render", "synthesize",
           "voice_pool", "engine_available"]

ESPEAK_ACCENTS = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
                  "en-029", "en-us-nyc"]
FLITE_VOICES = ["kal", "kal16", "awb", "rms", "slt"]
# Foreign-accented English: the first languages (L1) of the foreign-English voices espeak-ng lists
# (``espeak-ng --voices=en``: en-german, en-greek, en-romanian, en-dutch, en-french, en-hungarian,
# en-swedish, en-afrikaans, en-polish), which need MBROLA (not in Debian main).  Without it, the
# engine "espeak-ng-l1" speaks the English phonemes of a text through that language's own voice
# (its phoneme realisations, and its nearest phoneme where it lacks the English one).
L1_ACCENTS = ["de", "el", "ro", "nl", "fr", "hu", "sv", "af", "pl"]
L1_SOURCE = "en-us"  # the accent whose phonemes (``espeak-ng -x``) the L1 voices speak

# English phonemes (espeak-ng mnemonics of en-us / en-gb) and what an L1 voice lacking them says
# instead: candidates in order, each a list of phonemes; the first the L1 voice has wins.
_L1_FALLBACK = {
    "i:": [["i:"], ["i"]], "I": [["I"], ["i"]], "I2": [["I"], ["i"]], "E": [["E"], ["e"]], "a": [["a"], ["E"]],
    "A:": [["A:"], ["a:"], ["a"]], "A@": [["A:", "r"], ["a:", "r"], ["a", "r"]], "V": [["V"], ["a"], ["@"], ["o"]],
    "0": [["0"], ["O"], ["o"]], "O:": [["O:"], ["O"], ["o"]], "O@": [["O:", "r"], ["O", "r"], ["o", "r"]],
    "o@": [["O:", "r"], ["O", "r"], ["o", "r"]], "O2": [["O"], ["o"]], "3:": [["3:"], ["E", "r"], ["e", "r"]],
    "3": [["3"], ["@", "r"], ["e", "r"]], "@": [["@"], ["e"]], "@2": [["@"], ["e"]],
    "@L": [["@L"], ["@", "l"], ["e", "l"]], "eI": [["eI"], ["e", "i"], ["e"]], "aI": [["aI"], ["a", "i"]],
    "aU": [["aU"], ["a", "u"]], "oU": [["oU"], ["o:"], ["o"]], "OI": [["OI"], ["o", "i"]], "u:": [["u:"], ["u"]],
    "U": [["U"], ["u"]], "i@": [["i@"], ["i"]], "e@": [["e@"], ["e", "r"]], "U@": [["U@"], ["u", "r"]],
    "T": [["T"], ["t"], ["s"]], "D": [["D"], ["d"], ["z"]], "w": [["w"], ["u"], ["v"]], "N": [["N"], ["n"]],
    "r": [["r"], ["R"]], "tS": [["tS"], ["t", "S"]], "dZ": [["dZ"], ["d", "Z"]], "Z": [["Z"], ["z"]],
    "S": [["S"], ["s"]], "j": [["j"], ["i"]], "h": [["h"], ["x"], []], "L": [["l"]],
}
for _p in "pbtdkgfvszmnl":
    _L1_FALLBACK.setdefault(_p, [[_p]])
_L1_TOKENS = sorted(_L1_FALLBACK, key=len, reverse=True)  # longest match first


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker.

    engine : "espeak-ng", "espeak-ng-l1" (English spoken through a foreign-language voice) or "flite"
    voice : espeak-ng language/accent (``en-us`` ...; for "espeak-ng-l1" a language of
        :data:`L1_ACCENTS`, ``de`` ...) or flite voice (``slt`` ...)
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
        if self.engine in ("espeak-ng", "espeak-ng-l1"):
            v = f"{self.voice}+{self.variant}" if self.variant else self.voice
            if self.engine == "espeak-ng-l1":
                text = f"[[{accented_phonemes(text, self.voice)}]]"
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


@functools.lru_cache(maxsize=None)
def _l1_has(lang: str, phoneme: str) -> bool:
    """Whether espeak-ng's ``lang`` voice says ``phoneme`` (an unknown phoneme cuts the rest of the word:
    ``[[m<p>a]]`` then comes back without its final ``a``)."""
    out = subprocess.run(["espeak-ng", "-q", "-x", "-v", lang, f"[[m{phoneme}a]]"], capture_output=True,
                         text=True).stdout
    out = re.sub(r"[\s',;#]", "", out)
    return len(out) > 2 and out.endswith("a")


@functools.lru_cache(maxsize=4096)
def _source_phonemes(text: str, source: str) -> str:
    r = subprocess.run(["espeak-ng", "-q", "-x", "-v", source, text], capture_output=True, text=True)
    if r.returncode != 0:
        raise DataError(f"espeak-ng could not phonemize {text!r}: {r.stderr.strip()[:200]}")
    return r.stdout


def _l1_word(phonemes: str, lang: str) -> str:
    out, i = [], 0
    while i < len(phonemes):
        if phonemes[i] in "',":  # primary / secondary stress
            out.append(phonemes[i])
            i += 1
            continue
        tok = next((t for t in _L1_TOKENS if phonemes.startswith(t, i)), None)
        if tok is None:  # a length or allophone mark the L1 voice would choke on: dropped
            i += 1
            continue
        i += len(tok)
        cand = next((c for c in _L1_FALLBACK[tok] if all(_l1_has(lang, p) for p in c)), None)
        out.extend(cand or [])
    return "".join(out)


def accented_phonemes(text: str, lang: str, *, source: str = L1_SOURCE) -> str:
    """The phonemes (espeak-ng mnemonics) in which espeak-ng's ``lang`` voice says English ``text``.

    ``text`` is phonemized in the ``source`` accent; each phoneme the ``lang`` voice lacks becomes
    its nearest that it has (``_L1_FALLBACK``: "3:" -> "E r", "I" -> "i", "T" -> "t" ...), the way a
    speaker of that first language says it; the rest keep their names and take ``lang``'s sound.
    Render the result as ``espeak-ng -v lang "[[...]]"``.

    Parameters
    ----------
    text : str
        English words.
    lang : str
        An espeak-ng language (one of :data:`L1_ACCENTS`, or any other it has).

    Returns
    -------
    str
        Space-separated words of phoneme mnemonics, with stress marks.
    """
    if not engine_available("espeak-ng"):
        raise DataError("espeak-ng is not installed (Debian package espeak-ng)")
    return " ".join(w for w in (_l1_word(w, lang) for w in _source_phonemes(text, source).split()) if w)


def l1_voices() -> List[str]:
    """The :data:`L1_ACCENTS` languages (foreign-accented English) this espeak-ng has."""
    if not engine_available("espeak-ng"):
        return []
    return [lang for lang in L1_ACCENTS if _espeak_has_language(lang)]


@functools.lru_cache(maxsize=None)
def _espeak_has_language(lang: str) -> bool:
    """Whether espeak-ng has its own (not an MBROLA) voice for ``lang``."""
    out = subprocess.run(["espeak-ng", f"--voices={lang}"], capture_output=True, text=True).stdout
    return any(len(line.split()) >= 5 and not line.split()[4].startswith("mb/") for line in out.splitlines()[1:])


def espeak_voices() -> List[str]:
    return list(ESPEAK_ACCENTS) if engine_available("espeak-ng") else []


def flite_voices() -> List[str]:
    return list(FLITE_VOICES) if engine_available("flite") else []


def voice_pool(rng: np.random.Generator, n: int, *, espeak_accents=None, espeak_variant_names=None,
               flite_names=None, rate_range=(0.8, 1.25), pitch_range=(0.7, 1.4), flite_share=0.3,
               l1_accents=None, l1_share=0.0) -> List[Voice]:
    """Draw ``n`` random voices from the given accents, variants and flite voices.

    ``l1_share`` of the espeak-ng voices (all of them where ``espeak_accents`` is empty) speak
    English with a foreign accent (engine "espeak-ng-l1", a language of ``l1_accents``, default
    :func:`l1_voices`).  With ``l1_share`` 0 nothing is drawn for it, so pools drawn before it
    existed stay the same for a seed.
    """
    check_int("n", n, 0)
    accents = list(espeak_accents if espeak_accents is not None else espeak_voices())
    variants = list(espeak_variant_names if espeak_variant_names is not None else espeak_variants())
    flites = list(flite_names if flite_names is not None else flite_voices())
    if not 0.0 <= l1_share <= 1.0:
        raise ParameterError(f"l1_share must be within [0, 1], got {l1_share!r}")
    l1s = list(l1_accents if l1_accents is not None else l1_voices()) if l1_share else []
    if l1_share and not l1s:  # else the share would silently go to the native voices
        raise DataError(f"foreign-accented voices asked for (l1_share={l1_share!r}), but espeak-ng has none of the "
                        f"languages {', '.join(L1_ACCENTS)} (or l1_accents is empty)")
    if not accents and not flites and not l1s:
        raise DataError("no speech synthesizer found: install the Debian packages espeak-ng and flite")
    voices = []
    for _ in range(n):
        rate = float(rng.uniform(*rate_range))
        pitch = float(rng.uniform(*pitch_range))
        if flites and (not (accents or l1s) or rng.random() < flite_share):
            voices.append(Voice("flite", str(rng.choice(flites)), "", round(rate, 2), round(pitch, 2)))
        else:
            var = str(rng.choice(variants)) if variants and rng.random() < 0.85 else ""
            if l1s and (not accents or rng.random() < l1_share):
                voices.append(Voice("espeak-ng-l1", str(rng.choice(l1s)), var, round(rate, 2), round(pitch, 2)))
            else:
                voices.append(Voice("espeak-ng", str(rng.choice(accents)), var, round(rate, 2), round(pitch, 2)))
    return voices


def render(text: str, voice: Voice, out_path: str, *, timeout: float = 30.0) -> str:
    """Render ``text`` with ``voice`` into a WAV file; raises DataError on failure."""
    binary = "espeak-ng" if voice.engine == "espeak-ng-l1" else voice.engine
    if not engine_available(binary):
        raise DataError(f"{binary} is not installed (Debian package {binary})")
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

    Each text is normalised first (:func:`~speechlstm.alphabet.normalize_text`) and the normalised
    text is what the voice says and what the row's ``text`` holds, so the two agree: "Go 42!" is
    said and written "go four two" (a digit string is read digit by digit, as in commands), not
    "forty-two" under a "42" label.  A text with nothing left to say ("!!!") is reported in one
    line on stderr and left out.

    Returns manifest rows ``{"path", "text", "speaker", "duration", "voice"}``; files already
    rendered (same text, voice) are reused, so a re-run is cheap, and a (text, voice) pair drawn
    twice is rendered once.  A render that fails is reported in one line on stderr and its rows
    are left out; only when every render fails is it an error.
    """
    import soundfile as sf
    from tqdm import tqdm

    check_int("seed", seed, 0)
    check_int("workers", workers, 1)
    if not voices:
        check_int("n_voices", n_voices, 1)
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise ParameterError(f"texts must be a list of strings, got {texts!r:.80}")
    spoken = [normalize_text(t) for t in texts]
    for t in dict.fromkeys(t for t, n in zip(texts, spoken) if not n):
        print(f"speechlstm: warning: text {t!r}: no words once normalised (skipped)", file=sys.stderr)
    if texts and not any(spoken):
        raise DataError(f"no text to synthesize: every text is empty once normalised (the first: {texts[0]!r})")
    rng = np.random.default_rng(seed)
    pool = list(voices) if voices else voice_pool(rng, n_voices, **pool_kw)
    os.makedirs(out_dir, exist_ok=True)
    jobs = []
    for text in (n for n in spoken if n):
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
