"""Word error rate on recordings with pauses between utterances: each segment run through the network
whole (``split_pauses=False``, before 2026-12-08) against cut at its pauses (``transcribe.pause_cuts``,
the default since).

    python pipelines/eval_pauses.py [--data ../shared/data] [--model commands] [--groups 40]

Recordings are built from clips joined by pauses of 0.25-2 s filled with digital silence, white noise at
-80 dBFS (RMS) or at -60 dBFS: the six multi-word sequences of ``audio_samples/`` (synthetic voices),
three times over in one recording; and, with ``--data``, the Speech Commands v0.02 test speakers' word
clips of ``build_default_model.py``'s split (real held-out speakers, their own background noise kept), five
clips per recording. Prints one Markdown table of WER (word errors / reference words) per source, pause
and filler, both ways; deterministic for a seed.
"""
import os

import click
import numpy as np

from speechlstm.cli import PipelineCommand
from speechlstm.config import SAMPLE_RATE
from speechlstm.data import read_manifest
from speechlstm.metrics import error_counts

HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLES = os.path.join(os.path.dirname(HERE), "audio_samples")
PAUSES = (0.25, 0.5, 1.0, 2.0)  # s
FILLERS = (("digital silence", None), ("-80 dBFS noise", -80.0), ("-60 dBFS noise", -60.0))  # RMS, dBFS


def _samples():
    from speechlstm import load_audio

    seqs = [(load_audio(r["path"], sr=SAMPLE_RATE), r["text"]) for r in read_manifest(os.path.join(SAMPLES, "manifest.jsonl"))
            if len(r["text"].split()) > 1]
    return [seqs * 3]


def _speech_commands(data_root, groups, rng):
    from build_default_model import speech_commands_split
    from speechlstm import load_audio

    rows = [r for r in speech_commands_split(data_root)["test"] if r["text"]]
    order = rng.permutation(len(rows))[: groups * 5]
    clips = [(load_audio(rows[i]["path"], sr=SAMPLE_RATE), rows[i]["text"]) for i in order]
    return [clips[k:k + 5] for k in range(0, len(clips) - 4, 5)]


def _join(clips, pause_s, level_db, rng):
    parts, words = [], []
    for k, (y, text) in enumerate(clips):
        if k:
            n = int(pause_s * SAMPLE_RATE)
            fill = np.zeros(n, np.float32) if level_db is None else \
                (rng.standard_normal(n) * 10 ** (level_db / 20)).astype(np.float32)
            parts.append(fill)
        parts.append(y)
        words.append(text)
    return np.concatenate(parts), " ".join(words)


@click.command(cls=PipelineCommand)
@click.option("--data", "data_root", default=None, help="Folder with the corpora (adds the Speech Commands test clips).")
@click.option("--model", "model_name", default=None, help="Model name or path (default: shipped).")
@click.option("--groups", default=40, show_default=True, type=click.IntRange(min=1),
              help="Speech Commands recordings of five clips each.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0))
def main(data_root, model_name, groups, seed):
    from speechlstm import load_model

    model = load_model(model_name)
    rng = np.random.default_rng(seed)
    sources = [("audio_samples sequences x3", _samples())]
    if data_root:
        sources.append((f"SC v2 test speakers, {groups} x 5 words", _speech_commands(data_root, groups, rng)))
    click.echo(f"model: {model.name}\n")
    click.echo("| source | pause | filler | WER whole | WER cut at pauses | words |")
    click.echo("|---|---:|---|---:|---:|---:|")
    for name, recordings in sources:
        for pause in PAUSES:
            for filler, level in FILLERS:
                refs, whole, cut = [], [], []
                for clips in recordings:
                    y, ref = _join(clips, pause, level, rng)
                    refs.append(ref)
                    whole.append(model.transcribe(y, split_pauses=False)["text"])
                    cut.append(model.transcribe(y)["text"])
                (ew, n), (ec, _) = error_counts(refs, whole), error_counts(refs, cut)
                click.echo(f"| {name} | {pause:.2f} s | {filler} | {ew / n:.1%} ({ew}) | {ec / n:.1%} ({ec}) | {n} |")


if __name__ == "__main__":
    main()
