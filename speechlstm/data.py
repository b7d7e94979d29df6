"""Manifests and corpus readers.

Every reader returns manifest rows — dicts with ``path``, ``text`` (normalised), ``speaker`` and
``duration`` (seconds; None where the audio cannot be read, so one bad file does not stop the list) — and :func:`write_manifest` / :func:`read_manifest` store them as JSONL
(one JSON object per line; extra keys are kept).
"""
from __future__ import annotations

import csv
import glob
import hashlib
import io
import json
import os
from typing import Dict, Iterable, List, Optional, Sequence

from .alphabet import DIGIT_WORDS, normalize_text
from .config import AUDIO_EXTENSIONS
from .errors import DataError, is_real

__all__ = [
    "read_speech_commands", "read_fsdd", "read_librispeech", "read_kaldi", "read_text_pairs", "read_csv",
    "read_manifest", "write_manifest", "read_any", "read_lines", "read_paths", "split_by_speaker", "speaker_bucket", "SPEECH_COMMANDS_WORDS",
    "COMMAND_CLASSES",
]

SPEECH_COMMANDS_WORDS = ("backward bed bird cat dog down eight five follow forward four go happy house learn left "
                         "marvin nine no off on one right seven sheila six stop three tree two up visual wow yes "
                         "zero").split()
COMMAND_CLASSES = ("yes no up down left right on off stop go".split()) + ["_unknown_", "_silence_"]


def _duration(path: str) -> Optional[float]:
    """The clip's length in seconds, or None where the file cannot be read: a reader lists every row,
    and the one bad file is reported (and left out) by whatever reads its audio (training, evaluation),
    instead of the whole list failing."""
    import soundfile as sf

    try:
        return round(float(sf.info(path).duration), 3)
    except Exception:
        return None


def _row(path, text, speaker, duration=None, **extra) -> dict:
    r = {"path": os.path.abspath(path), "text": normalize_text(text), "speaker": str(speaker),
         "duration": _duration(path) if duration is None else float(duration)}
    r.update(extra)
    return r


def _text(path: str) -> str:
    """A transcript file's text (newlines as written); one that is not UTF-8 is a DataError naming it."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            return f.read()
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None


def read_lines(path: str) -> List[str]:
    """The lines of the UTF-8 text file at ``path``, split at "\n" only (a JSON string may hold U+2028,
    which ``str.splitlines`` splits at); a missing file or one that is not UTF-8 is a DataError naming it."""
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file")
    return [line.rstrip("\r") for line in _text(path).split("\n")]




def _check_duration(value, where: str):
    """A stated duration: a finite number of seconds >= 0 (a manifest's or CSV's own column; 0 for an empty
    clip, which fails on its own when it is read, not the whole list)."""
    try:
        d = float(value)  # a CSV gives text, a manifest a JSON number
    except (TypeError, ValueError):
        d = None
    if isinstance(value, bool) or not is_real(d) or d < 0:
        raise DataError(f"{where}: duration must be a number of seconds >= 0, got {value!r}")
    return d


def _require_dir(root: str) -> str:
    if not os.path.isdir(root):
        raise DataError(f"{root}: no such directory")
    return root


def read_speech_commands(root: str, *, with_duration: bool = True) -> List[dict]:
    """Speech Commands layout ``{label}/{speaker}_nohash_{n}.wav``.

    ``_unknown_`` files start with the word spoken (``backward_0c540988_nohash_0.wav``); ``_silence_``
    clips get empty text.  Rows carry ``label`` (the folder name).
    """
    _require_dir(root)
    rows = []
    for label in sorted(os.listdir(root)):
        d = os.path.join(root, label)
        if not os.path.isdir(d) or label.startswith(".") or label == "_background_noise_":
            continue
        for f in sorted(os.listdir(d)):
            if not f.lower().endswith(".wav"):
                continue
            stem = f[:-4]
            if label == "_silence_":
                text, speaker = "", f"silence-{stem.split('_nohash_')[0]}"
            elif label == "_unknown_":
                word, _, rest = stem.partition("_")
                text, speaker = word, rest.split("_nohash_")[0]
            else:
                text, speaker = label, stem.split("_nohash_")[0]
            p = os.path.join(d, f)
            rows.append(_row(p, text, speaker, None if with_duration else 1.0, label=label))
    if not rows:
        raise DataError(f"{root}: no Speech Commands clips found ({{label}}/*.wav)")
    return rows


def read_fsdd(root: str, *, with_duration: bool = True) -> List[dict]:
    """Free Spoken Digit Dataset: ``{digit}_{speaker}_{take}.wav`` (searched recursively)."""
    _require_dir(root)
    rows = []
    for p in sorted(glob.glob(os.path.join(root, "**", "*.wav"), recursive=True)):
        parts = os.path.basename(p)[:-4].split("_")
        if len(parts) != 3 or not parts[0].isdigit() or not 0 <= int(parts[0]) <= 9:
            continue
        rows.append(_row(p, DIGIT_WORDS[int(parts[0])], parts[1], None if with_duration else 0.5))
    if not rows:
        raise DataError(f"{root}: no FSDD clips found ({{digit}}_{{speaker}}_{{n}}.wav)")
    return rows


def read_librispeech(root: str) -> List[dict]:
    """LibriSpeech: ``{speaker}/{chapter}/{speaker}-{chapter}.trans.txt`` beside ``.flac`` files."""
    _require_dir(root)
    rows = []
    for trans in sorted(glob.glob(os.path.join(root, "**", "*.trans.txt"), recursive=True)):
        d = os.path.dirname(trans)
        for line in read_lines(trans):
            if not line.strip():
                continue
            uid, _, text = line.strip().partition(" ")
            p = os.path.join(d, uid + ".flac")
            if not os.path.exists(p):
                raise DataError(f"{trans}: {uid}.flac is missing")
            rows.append(_row(p, text, uid.split("-")[0]))
    if not rows:
        raise DataError(f"{root}: no *.trans.txt files found")
    return rows


def read_kaldi(data_dir: str) -> List[dict]:
    """A Kaldi data directory: ``wav.scp`` (id path) + ``text`` (id words) [+ ``utt2spk``]."""
    _require_dir(data_dir)
    def table(name, required=True):
        p = os.path.join(data_dir, name)
        if not os.path.exists(p):
            if required:
                raise DataError(f"{data_dir}: {name} is missing")
            return {}
        out = {}
        for n, line in enumerate(read_lines(p), 1):
            if line.strip():
                k, _, v = line.strip().partition(" ")
                if name == "wav.scp" and not v.strip():
                    raise DataError(f"{p}:{n}: {k} has no audio path")
                out[k] = v.strip()
        return out

    if os.path.exists(os.path.join(data_dir, "segments")):  # wav.scp then names recordings, not utterances
        raise DataError(f"{data_dir}/segments: utterances cut from longer recordings are not supported; "
                        "give each utterance its own audio file in wav.scp (e.g. extract-segments or sox trim)")
    wavs, texts, spk = table("wav.scp"), table("text"), table("utt2spk", False)
    if not wavs:
        raise DataError(f"{data_dir}/wav.scp: no utterances")
    rows = []
    for uid, path in wavs.items():
        if path.endswith("|"):
            raise DataError(f"{data_dir}/wav.scp: {uid} is a pipe command; only plain paths are supported")
        if uid not in texts:
            raise DataError(f"{data_dir}/text: no transcript for {uid}")
        p = path if os.path.isabs(path) else os.path.join(data_dir, path)
        rows.append(_row(p, texts[uid], spk.get(uid, uid.split("-")[0]), utt_id=uid))
    return rows


def read_text_pairs(root: str, *, speaker: Optional[str] = None) -> List[dict]:
    """One ``.txt`` transcript beside each audio file of the same stem (e.g. CMU ARCTIC)."""
    _require_dir(root)
    rows = []
    for p in sorted(glob.glob(os.path.join(root, "**", "*"), recursive=True)):
        stem, ext = os.path.splitext(p)
        if ext.lower() not in AUDIO_EXTENSIONS or not os.path.exists(stem + ".txt"):
            continue
        text = _text(stem + ".txt").strip()
        rows.append(_row(p, text, speaker or os.path.basename(os.path.dirname(p))))
    if not rows:
        raise DataError(f"{root}: no audio files with a .txt transcript beside them")
    return rows


def _csv_records(path: str, columns: Sequence[str]):
    """``(file:line, row, audio path as written)`` for each row of a CSV whose header holds ``columns``
    ("path" first); a missing file, a header without them, an empty path or malformed CSV is a DataError
    naming the file (and line)."""
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file")
    reader = csv.DictReader(io.StringIO(_text(path), newline=""))
    try:
        if not reader.fieldnames or not set(columns) <= set(reader.fieldnames):
            names = " and ".join(repr(c) for c in columns)
            raise DataError(f"{path}: needs a header with " + (f"a {names} column" if len(columns) == 1 else f"{names} columns"))
        for r in reader:
            where = f"{path}:{reader.line_num}"
            audio = (r["path"] or "").strip()
            if not audio:
                raise DataError(f"{where}: the 'path' column is empty")
            yield where, r, audio
    except csv.Error as exc:
        raise DataError(f"{path}:{reader.line_num}: not valid CSV ({exc})") from None


def read_csv(path: str) -> List[dict]:
    """CSV with a header holding at least ``path`` and ``text`` (``speaker``, ``duration`` optional);
    relative paths are relative to the CSV's folder."""
    base = os.path.dirname(os.path.abspath(path))
    rows = []
    for where, r, audio in _csv_records(path, ("path", "text")):
        p = audio if os.path.isabs(audio) else os.path.join(base, audio)
        dur = (r.get("duration") or "").strip()
        rows.append(_row(p, r["text"] or "", r.get("speaker") or "unknown",
                         _check_duration(dur, where) if dur else None))
    return rows


def write_manifest(rows: Iterable[dict], path) -> str:
    """Write ``rows`` as a JSONL manifest at ``path`` (str or path-like; atomically: a temporary
    file is renamed into place) and return the path as a str."""
    path = os.fspath(path)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path


def _jsonl_records(path: str):
    """``(line number, decoded JSON value)`` for each non-blank line of a JSONL file; a line that is not
    JSON is a DataError naming the file and line."""
    for n, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        try:
            yield n, json.loads(line)
        except ValueError as exc:
            raise DataError(f"{path}:{n}: not JSON ({exc})") from None


def read_manifest(path: str) -> List[dict]:
    """Read a JSONL manifest (relative paths are relative to its folder)."""
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such manifest")
    base = os.path.dirname(os.path.abspath(path))
    rows = []
    for n, r in _jsonl_records(path):
        if not isinstance(r, dict) or "path" not in r or "text" not in r:
            raise DataError(f"{path}:{n}: each line needs 'path' and 'text'")
        if not isinstance(r["path"], str) or not r["path"].strip():
            raise DataError(f"{path}:{n}: 'path' must be a non-empty string, got {r['path']!r}")
        if not isinstance(r["text"], str):
            raise DataError(f"{path}:{n}: 'text' must be a string, got {r['text']!r}")
        if r.get("duration") is not None:
            _check_duration(r["duration"], f"{path}:{n}")
        if not os.path.isabs(r["path"]):
            r["path"] = os.path.join(base, r["path"])
        r.setdefault("speaker", "unknown")
        rows.append(r)
    return rows


def read_paths(path: str) -> List[str]:
    """The audio paths a list names, for jobs that need no transcript (``speechlstm spot``): a CSV with a
    ``path`` column or a JSONL file with a ``path`` key per line, other columns and keys ignored; relative
    paths are relative to the list's folder.  A list that is not UTF-8, has no ``path`` column, or an
    entry without a path is a DataError naming the file (and line).  Audio is not opened here."""
    base = os.path.dirname(os.path.abspath(path))
    out = []
    if path.lower().endswith(".csv"):
        out = [audio for _, _, audio in _csv_records(path, ("path",))]
    else:
        for n, r in _jsonl_records(path):
            audio = r.get("path") if isinstance(r, dict) else None
            if not isinstance(audio, str) or not audio.strip():
                raise DataError(f"{path}:{n}: each line needs a 'path' (a non-empty string)")
            out.append(audio)
    return [p if os.path.isabs(p) else os.path.normpath(os.path.join(base, p)) for p in out]


def read_any(source: str, kind: str = "auto") -> List[dict]:
    """Read a manifest (.jsonl/.json), a CSV, or a corpus folder (kind: speech_commands, fsdd,
    librispeech, kaldi, text_pairs; "auto" guesses from the layout)."""
    if not os.path.exists(source):
        raise DataError(f"{source}: no such file or directory")
    if kind == "auto":
        if os.path.isfile(source):
            kind = "csv" if source.lower().endswith(".csv") else "manifest"
        elif os.path.isfile(os.path.join(source, "wav.scp")):
            kind = "kaldi"
        elif glob.glob(os.path.join(source, "**", "*.trans.txt"), recursive=True):
            kind = "librispeech"
        elif glob.glob(os.path.join(source, "*", "*_nohash_*.wav")):
            kind = "speech_commands"
        elif glob.glob(os.path.join(source, "**", "[0-9]_*_*.wav"), recursive=True):
            kind = "fsdd"
        else:
            kind = "text_pairs"
    readers = {"manifest": read_manifest, "csv": read_csv, "kaldi": read_kaldi, "librispeech": read_librispeech,
               "speech_commands": read_speech_commands, "fsdd": read_fsdd, "text_pairs": read_text_pairs}
    if kind not in readers:
        raise DataError(f"unknown corpus kind {kind!r} (one of {sorted(readers)})")
    return readers[kind](source)


def speaker_bucket(speaker: str, salt: str = "speechlstm") -> float:
    """A stable pseudo-random number in [0, 1) for a speaker (same on every machine)."""
    h = hashlib.sha256(f"{salt}:{speaker}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2 ** 64


def split_by_speaker(rows: Sequence[dict], *, test: float = 0.2, dev: float = 0.0, salt: str = "speechlstm",
                     test_speakers: Optional[Sequence[str]] = None) -> Dict[str, List[dict]]:
    """Speaker-disjoint split: ``{"train", "dev", "test"}``.

    A speaker goes to test when ``speaker_bucket(speaker) < test`` (or is listed in
    ``test_speakers``), to dev when it falls in the next ``dev`` share, else to train.
    """
    out = {"train": [], "dev": [], "test": []}
    listed = set(test_speakers or [])
    for r in rows:
        s = r.get("speaker", "unknown")
        b = speaker_bucket(s, salt)
        if s in listed or (not listed and b < test):
            out["test"].append(r)
        elif (listed and b < dev) or (not listed and b < test + dev):
            out["dev"].append(r)
        else:
            out["train"].append(r)
    return out
