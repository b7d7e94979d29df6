"""A training run's checkpoint averages against its own best epoch, paired, on dev and test sets.

    python pipelines/compare_checkpoints.py --run runs/default/RUN --out runs/avgcmp/RUN \
        [--work runs/default] [--dev dev-heldout-sc6-other18.jsonl] [--synth runs/lmexp/test_s0.jsonl]

For a run built with ``--average-best N`` (``TrainConfig.average_best``: every epoch's weights kept
in ``RUN/epochs/``, their best-N mean in ``RUN/model-avg.npz``) it scores ``model.npz`` (the best
epoch by dev loss), ``model-avg.npz`` and the means of the 3 and 10 best epochs (written beside them
when missing) on each set, and pairs each average with the best epoch clip by clip
(:func:`speechlstm.evaluate.compare`: clips only one of the two gets right, McNemar p, a paired
interval). Sets: the dev speakers and the test manifests that ``build_default_model.py`` writes into
``--work`` (SC v2 test speakers, the v0.01 sample, FSDD's held-out speaker among the ten digits),
plus a synthetic sequence manifest if given (WER). Prints one line per set and writes
``OUT/summary.json``.
"""
import json
import os

import click

from speechlstm.alphabet import DIGIT_WORDS
from speechlstm.data import read_manifest
from speechlstm.errors import SpeechLSTMError
from speechlstm.evaluate import compare, evaluate
from speechlstm.model import average_models, load_model
from speechlstm.train import best_epochs, epoch_weights_path


def _sets(work, dev, synth):
    def at(name):
        return name if os.path.isabs(name) else os.path.join(work, name)

    sets = {"dev": (at(dev), "classify", None, True),
            "sc_v2": (at("test_sc_v2.jsonl"), "classify", None, True),
            "sample": (at("test_sc_sample.jsonl"), "classify", None, True),
            "fsdd": (at("test_fsdd.jsonl"), "classify", list(DIGIT_WORDS), False)}
    if synth:
        sets["synth"] = (synth, "transcribe", None, True)
    missing = [p for p, *_ in sets.values() if not os.path.isfile(p)]
    if missing:
        raise click.ClickException(f"{missing[0]}: no such manifest (run build_default_model.py with --work {work} first)")
    return sets


def _models(run):
    for name in ("log.jsonl", "model.npz", "model-avg.npz"):
        if not os.path.isfile(os.path.join(run, name)):
            raise click.ClickException(f"{os.path.join(run, name)}: missing (was the run built with --average-best N?)")
    try:
        with open(os.path.join(run, "log.jsonl")) as f:
            log = [json.loads(line) for line in f if line.strip()]
    except ValueError as exc:
        raise click.ClickException(f"{os.path.join(run, 'log.jsonl')}: not a training log ({exc})") from None
    if not log:
        raise click.ClickException(f"{os.path.join(run, 'log.jsonl')}: no epochs logged")
    models = {"best": load_model(os.path.join(run, "model.npz")), "avg5": load_model(os.path.join(run, "model-avg.npz"))}
    epochs = {}
    for n in (1, 3, 10):
        epochs[n] = best_epochs(log, n)[0]
    for n in (3, 10):
        path = os.path.join(run, f"model-avg{n}.npz")
        if not os.path.exists(path):
            snaps = [epoch_weights_path(run, e) for e in epochs[n]]
            absent = [p for p in snaps if not os.path.isfile(p)]
            if absent:
                raise click.ClickException(f"{absent[0]}: missing (the run kept no per-epoch weights)")
            average_models([load_model(p) for p in snaps], name=f"avg{n}").save(path)
        models[f"avg{n}"] = load_model(path)
    return models, log, epochs


@click.command()
@click.option("--run", "run", required=True, type=click.Path(file_okay=False), help="The run's folder.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Where summary.json goes.")
@click.option("--work", default="runs/default", show_default=True, help="The build's work folder (its manifests).")
@click.option("--dev", default="dev-heldout-sc6-other18.jsonl", show_default=True,
              help="Dev manifest, relative to --work unless absolute.")
@click.option("--synth", default="", help="A synthetic sequence manifest to score by WER (e.g. seed 0's test set).")
def main(run, out, work, dev, synth):
    sets = _sets(work, dev, synth)
    try:
        models, log, epochs = _models(run)
    except SpeechLSTMError as exc:  # a truncated or tampered model file: ModelError names it
        raise click.ClickException(str(exc)) from None
    os.makedirs(out, exist_ok=True)
    summary = {"run": run, "best_epoch": epochs[1][0], "epochs_trained": len(log),
               "avg5_epochs": models["avg5"].meta["training"].get("averaged_epochs"),
               "avg3_epochs": epochs[3], "avg10_epochs": epochs[10], "sets": {}}
    for name, (manifest, task, words, no_speech) in sets.items():
        rows = read_manifest(manifest)
        res = {k: evaluate(m, rows, task, words=words, no_speech=no_speech) for k, m in models.items()}
        key = "wer" if task == "transcribe" else "accuracy"
        summary["sets"][name] = {k: {key: r[key], "failures": len(r["failures"])} for k, r in res.items()}
        for k in ("avg5", "avg3", "avg10"):
            c = compare(res[k], res["best"])
            summary["sets"][name][k]["vs_best"] = {x: c[x] for x in (
                "error_rate_difference", "error_rate_difference_ci95", "only_model_right", "only_baseline_right",
                "mcnemar_p")}
        click.echo(f"{name} " + json.dumps({k: round(v[key], 4) for k, v in summary["sets"][name].items()}))
        with open(os.path.join(out, "summary.json"), "w") as f:  # after every set: a stopped run keeps what it scored
            json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
