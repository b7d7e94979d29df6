"""A tightly cut copy of a manifest's clips: each word clip trimmed to its speech, as FSDD's are.

    python pipelines/trimmed_set.py runs/default/dev-heldout-sc6-other18.jsonl --out runs/devtrim

Speech Commands clips are one second long with silence around the word; FSDD's end where the
word does.  Scoring a model on both cuts of the same clips shows how much its accuracy depends on
the silence around a word (per-clip CMVN, for one, normalises by the clip's own mean, which for a
tightly cut clip is the word's own spectrum).  Rows without text (no speech, ``_silence_``) are
copied unchanged; trimming is :func:`librosa.effects.trim` (frames 25 ms, hop 5 ms, ``--top-db``
below the clip's loudest frame).  A file that cannot be read is reported on one line and left out.
"""
import json
import os

import click
import librosa
import soundfile as sf

from speechlstm.audio import load_audio
from speechlstm.cli import FiniteRange, PipelineCommand
from speechlstm.data import read_manifest, write_manifest
from speechlstm.errors import DataError, SpeechLSTMError, error_line

SAMPLE_RATE = 16000  # Hz, the rate the trimmed copies are written at
FRAME = 400  # samples (25 ms) per energy frame of the trim
HOP = 80  # samples (5 ms) between energy frames


def trim_rows(rows, out_dir, *, top_db=30.0):
    """Each word clip of ``rows`` trimmed to its speech and written to ``out_dir`` as
    ``<index>_<name>`` (16 kHz WAV); rows without text are kept as they are.  Returns (the new
    rows, the paths that could not be read); each unreadable file is reported on one line on
    stderr and left out."""
    os.makedirs(out_dir, exist_ok=True)
    out, failed = [], []
    for i, r in enumerate(rows):
        if not r.get("text"):
            out.append(r)
            continue
        try:
            y = load_audio(r["path"], sr=SAMPLE_RATE)
        except (SpeechLSTMError, OSError) as exc:
            click.echo(f"{error_line(exc, r['path'])} (skipped)", err=True)
            failed.append(r["path"])
            continue
        yt, _ = librosa.effects.trim(y, top_db=top_db, frame_length=FRAME, hop_length=HOP)
        path = os.path.abspath(os.path.join(out_dir, f"{i:06d}_{os.path.basename(r['path'])}"))
        sf.write(path, yt, SAMPLE_RATE)
        out.append(dict(r, path=path, duration=round(yt.size / SAMPLE_RATE, 3)))
    return out, failed


@click.command(cls=PipelineCommand)
@click.argument("manifest")
@click.option("--out", "out_dir", required=True, help="Folder for the trimmed WAVs and trimmed.jsonl.")
@click.option("--top-db", type=FiniteRange(min=1), default=30.0, show_default=True,
              help="Frames this far below the clip's loudest frame count as silence.")
def main(manifest, out_dir, top_db):
    rows = read_manifest(manifest)
    if not rows:
        raise DataError(f"{manifest}: the manifest holds no clips")
    out, failed = trim_rows(rows, out_dir, top_db=top_db)
    dest = write_manifest(out, os.path.join(out_dir, "trimmed.jsonl"))
    click.echo(json.dumps({"rows": len(out), "trimmed": sum(1 for r in out if r.get("text")), "failed": len(failed),
                           "manifest": dest}))
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
