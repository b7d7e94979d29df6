"""Writing transcription results as txt, json, srt, vtt or tsv (whisper's formats)."""
from __future__ import annotations

import json

__all__ = ["FORMATS", "format_result"]

FORMATS = ("txt", "json", "srt", "vtt", "tsv")


def _ts(seconds: float, sep: str) -> str:
    ms = int(round(max(seconds, 0.0) * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _cues(result):
    for seg in result["segments"]:
        start, end = seg["start"], max(seg["end"], seg["start"] + 0.001)
        yield start, end, seg["text"]


def format_result(result: dict, fmt: str) -> str:
    """Render a ``transcribe`` result dict in ``fmt`` (one of :data:`FORMATS`)."""
    if fmt == "txt":
        return result["text"] + "\n"
    if fmt == "json":
        return json.dumps(result, ensure_ascii=False) + "\n"
    if fmt == "srt":
        return "".join(f"{i}\n{_ts(s, ',')} --> {_ts(e, ',')}\n{t}\n\n" for i, (s, e, t) in enumerate(_cues(result), 1))
    if fmt == "vtt":
        return "WEBVTT\n\n" + "".join(f"{_ts(s, '.')} --> {_ts(e, '.')}\n{t}\n\n" for s, e, t in _cues(result))
    if fmt == "tsv":
        return "start\tend\ttext\n" + "".join(f"{int(round(s * 1000))}\t{int(round(e * 1000))}\t{t}\n"
                                              for s, e, t in _cues(result))
    raise ValueError(f"unknown format {fmt!r}")
