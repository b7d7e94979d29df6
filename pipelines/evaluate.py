"""The standard evaluation suite on held-out speakers, with reports (JSON, Markdown, PNG).

    python pipelines/evaluate.py --data ../shared/data --work runs/eval [--model commands]

Uses the same speaker-disjoint splits as ``build_default_model.py`` (the model never trained on
these speakers or voices): FSDD speaker george, 25 % of the Speech Commands v0.02 speakers, the
Speech Commands v0.01 sample, synthetic sequences from held-out voices (also scored for keyword
spotting: DET curve, miss rate at 0.5 false alarms per hour).
"""
import json
import os

import click
import numpy as np

from build_default_model import FSDD_TEST_SPEAKER, command_sequences, speech_commands_split, synthetic_voices
from speechlstm.cli import PipelineCommand
from speechlstm.data import SPEECH_COMMANDS_WORDS, read_fsdd, read_speech_commands, write_manifest
from speechlstm.evaluate import evaluate, evaluate_model_suite, write_report
from speechlstm.synth import synthesize


@click.command(cls=PipelineCommand)
@click.option("--data", "data_root", default="../shared/data", show_default=True)
@click.option("--work", default="runs/eval", show_default=True)
@click.option("--model", "model_name", default=None, help="Model name or path (default: shipped).")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0),
              help="Seed of the synthetic test set (as in the build).")
def main(data_root, work, model_name, seed):
    from speechlstm.model import _resolve, load_model

    path = _resolve(model_name)
    model = load_model(path)  # a bad model fails before the corpora are read and the synthetic set is rendered
    sc = speech_commands_split(data_root)
    fsdd = [r for r in read_fsdd(os.path.join(data_root, "fsdd")) if r["speaker"] == FSDD_TEST_SPEAKER]
    os.makedirs(work, exist_ok=True)
    _, test_voices = synthetic_voices(np.random.default_rng(seed))
    synth = synthesize(command_sequences(np.random.default_rng(seed + 1), 300), os.path.join(work, "synth_test"),
                       voices=test_voices, seed=seed + 1, progress=False)
    m = {"test_fsdd": write_manifest(fsdd, os.path.join(work, "test_fsdd.jsonl")),
         "test_sc": write_manifest(sc["test"], os.path.join(work, "test_sc_v2.jsonl")),
         "test_sample": write_manifest(read_speech_commands(os.path.join(data_root, "speech_commands_sample")),
                                       os.path.join(work, "test_sc_sample.jsonl")),
         "test_synth": write_manifest(synth, os.path.join(work, "test_synth.jsonl"))}
    metrics = evaluate_model_suite(path, m, os.path.join(work, "reports"))
    kws = evaluate(model, synth, "kws", keywords=list(SPEECH_COMMANDS_WORDS))
    write_report(kws, os.path.join(work, "reports", "kws_synth"))
    metrics["kws_synth_miss_rate_at_0.5_fa_per_hour"] = kws["miss_rate_at_0.5_fa_per_hour"]
    with open(os.path.join(work, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    click.echo(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
