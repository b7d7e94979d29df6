"""Y, the dev yardstick by which default-model recipes are compared (docs/experiments.md, "An unheard
FSDD speaker as a second dev set"), for any number of models, each paired against a baseline.

    python pipelines/yardstick.py runs/default/<run>/model.npz [MORE ...] --data ../shared/data \\
        --work runs/yardstick [--baseline <model>]

Y counts the clips a model gets right in three parts, none of them heard in its training:
  dev       the Speech Commands v0.02 clips of the build pipeline's dev speakers (12 classes);
  dev-trim  the same clips cut tightly to their word (``trimmed_set.py``), as FSDD's are;
  fsdd      every clip of one FSDD speaker (``--fsdd-speaker``, default nicolas), closed-set among
            the ten digits, no "no speech" candidate; ``--fsdd-speaker none`` leaves this part out (Y is
            then dev + dev-trim, and real-dev is joined from the dev speakers alone), so that builds which
            trained on every FSDD speaker but ``george`` — the shipped models — can be compared.
Beside Y, not in it: ``synth-dev``, the WER of ``transcribe`` on ``--synth-dev`` (default 300) command
sequences rendered by new draws of the held-out synthetic voices (``build_default_model.synthetic_dev_set``,
seed 2026; ``--synth-dev 0`` leaves it out), paired against the baseline over whole sequences — so a recipe
cannot trade the synthetic-voice target for Y unseen. Also beside Y with ``--real-dev N``: ``real-dev``, the
WER of ``transcribe`` on N multi-word recordings in real held-out voices, half joined from the dev speakers'
Speech Commands clips and half from the FSDD speaker's digits (``build_default_model.real_sequence_set``,
seed 2026: 2-6 clips of one speaker each), paired over whole sequences.
A model is refused if a training manifest named in it (or in its teacher, or in an ensemble's
members) lists any of these clips or any held-out synthetic voice, so build the candidates with ``--fsdd-train-speakers`` leaving
that speaker out (the standing split is ``--fsdd-train-speakers jackson,lucas``); a manifest that
is no longer on disk cannot be checked, which is said on stderr.  The FSDD test speaker
(``george``) cannot be the yardstick's speaker.  Prints one line per model and writes
``yardstick.json`` and each part's report under ``--work``.  A model that cannot be loaded or
evaluated is reported on one line and skipped; the exit status is then 1.
"""
import json
import os

import click

from build_default_model import (FSDD_TEST_SPEAKER, held_out_voice, real_sequence_set, speech_commands_split,
                                 synthetic_dev_set)
from speechlstm.cli import FiniteRange, PipelineCommand
from speechlstm.alphabet import DIGIT_WORDS
from speechlstm.data import read_fsdd, read_manifest, write_manifest
from speechlstm.errors import DataError, SpeechLSTMError, error_line
from speechlstm.evaluate import compare, evaluate, write_report
from trimmed_set import trim_rows

PARTS = ("dev", "devtrim", "fsdd")
REAL_DEV_SEED = 2026  # seed of the joined real-voice dev recordings
NO_FSDD = "none"  # --fsdd-speaker value that leaves the FSDD part out


def yardstick_sets(data_root, work, fsdd_speaker, top_db=30.0):
    """The three parts' rows: ``{"dev", "devtrim", "fsdd"}`` (dev-trim's WAVs written under
    ``work/devtrim``; ``fsdd`` empty for ``--fsdd-speaker none``), and the paths of dev clips that could
    not be trimmed."""
    fsdd = [] if fsdd_speaker == NO_FSDD else read_fsdd(os.path.join(data_root, "fsdd"))
    speakers = sorted({r["speaker"] for r in fsdd})
    if fsdd_speaker == FSDD_TEST_SPEAKER:
        raise click.BadParameter(f"{fsdd_speaker!r} is the FSDD test speaker; a dev yardstick must not use him",
                                 param_hint="--fsdd-speaker")
    if fsdd_speaker != NO_FSDD and fsdd_speaker not in speakers:
        raise click.BadParameter(f"{fsdd_speaker!r} is not an FSDD speaker here (they are: {', '.join(speakers)})",
                                 param_hint="--fsdd-speaker")
    sc = speech_commands_split(data_root)
    if not sc["dev"]:
        raise DataError(f"{os.path.join(data_root, 'speech_commands_v2_half')}: no clip falls to the dev speakers")
    trimmed, failed = trim_rows(sc["dev"], os.path.join(work, "devtrim"), top_db=top_db)
    return {"dev": sc["dev"], "devtrim": trimmed, "fsdd": [r for r in fsdd if r["speaker"] == fsdd_speaker]}, failed


def _training_manifests(training: dict, seen=None):
    """Every training manifest named in a model's ``training`` entry, its teacher's (when its file
    is still there) and its members' — the teacher's knowledge of a clip counts as hearing it."""
    from speechlstm.model import load_model

    seen = set() if seen is None else seen
    out = []
    cfg = training.get("config", {})
    out += list(cfg.get("train", []))
    teacher = cfg.get("teacher")
    if teacher and os.path.isfile(teacher) and os.path.abspath(teacher) not in seen:
        seen.add(os.path.abspath(teacher))
        out += _training_manifests(load_model(teacher).meta.get("training", {}), seen)
    for m in training.get("members", []) + training.get("averaged", []):
        out += _training_manifests(m, seen)
    return out


def check_held_out(model, sets):
    """Raises DataError if a training manifest of ``model`` lists a clip of ``sets`` (or, when
    ``sets`` holds ``synth``, a clip of a held-out synthetic voice); returns the manifests that
    could not be read (not checked)."""
    ours = {os.path.abspath(r["path"]) for part in ("dev", "fsdd") for r in sets[part]}
    unchecked = []
    for path in dict.fromkeys(_training_manifests(model.meta.get("training", {}))):
        if not os.path.isfile(path):
            unchecked.append(path)
            continue
        rows = read_manifest(path)
        heard = sum(1 for r in rows for p in [r["path"], *r.get("joined", [])] if os.path.abspath(p) in ours)
        if heard:
            raise DataError(f"{model.path}: its training manifest {path} holds {heard} of the yardstick's clips; "
                            "its Y would not be held out")
        voiced = sum(1 for r in rows if held_out_voice(r.get("speaker", ""))) if sets.get("synth") else 0
        if voiced:
            raise DataError(f"{model.path}: its training manifest {path} holds {voiced} clip(s) of the held-out "
                            "synthetic voices; its synth-dev WER would not be held out")
    return unchecked


def _held_out_or_refused(model, name, sets):
    """:func:`check_held_out`, each manifest it could not check warned of on stderr; returns them."""
    unchecked = check_held_out(model, sets)
    for path in unchecked:
        _say("warning", f"{name}: training manifest {path} is gone; not checked")
    return unchecked


def _slug(path):
    base = os.path.basename(path)
    if base == "model.npz":
        return os.path.basename(os.path.dirname(os.path.abspath(path))) or "model"
    return base[:-4] if base.endswith(".npz") else base


def score(model, sets, report_dir=None):
    """``{part: evaluate() result}`` for the parts that have clips, and ``synth`` (transcribed) when ``sets``
    holds it (reports written under ``report_dir``)."""
    res = {"dev": evaluate(model, sets["dev"], "classify"),
           "devtrim": evaluate(model, sets["devtrim"], "classify")}
    if sets["fsdd"]:
        res["fsdd"] = evaluate(model, sets["fsdd"], "classify", words=DIGIT_WORDS, no_speech=False)
    if sets.get("synth"):
        res["synth"] = evaluate(model, sets["synth"], "transcribe")
    if sets.get("real"):
        res["real"] = evaluate(model, sets["real"], "transcribe")
    if report_dir:
        for part, r in res.items():
            write_report(r, os.path.join(report_dir, part))
    return res


def _say(kind, msg):
    click.echo(f"{click.get_current_context().info_name}: {kind}: {msg}", err=True)


def right(result):
    return sum(1 for u in result["per_utterance"] if u["errors"] == 0)


def tally(res):
    """``{"Y", "parts"}`` of a :func:`score` result, and ``synth`` (WER, word errors, words and
    sequences right) when it was scored."""
    parts = {p: right(res[p]) for p in PARTS if p in res}
    out = {"Y": sum(parts.values()), "parts": parts}
    for part in ("synth", "real"):
        if part in res:
            u = res[part]["per_utterance"]
            out[part] = {"wer": res[part]["wer"], "word_errors": sum(x["errors"] for x in u),
                         "words": sum(x["length"] for x in u), "sequences_right": right(res[part])}
    return out


def _line(name, t, sizes):
    line = f"{name}: Y = {t['Y']} | " + " | ".join(f"{p} {n}/{sizes[p]}" for p, n in t["parts"].items())
    for part in ("synth", "real"):
        if part in t:
            s = t[part]
            line += (f" | {part}-dev WER {100 * s['wer']:.2f} % ({s['word_errors']}/{s['words']} words; "
                     f"{s['sequences_right']}/{sizes[part]} sequences right)")
    return line


@click.command(cls=PipelineCommand)
@click.argument("models", nargs=-1, required=True)
@click.option("--data", "data_root", default="../shared/data", show_default=True, help="Folder with the corpora.")
@click.option("--work", default="runs/yardstick", show_default=True, help="Folder for dev-trim, reports, yardstick.json.")
@click.option("--baseline", default=None, help="A model every one is paired against (McNemar per part).")
@click.option("--fsdd-speaker", default="nicolas", show_default=True,
              help="The FSDD speaker of the third part (none of the models may have trained on him); 'none' "
                   "leaves the part out.")
@click.option("--top-db", type=FiniteRange(min=1), default=30.0, show_default=True,
              help="dev-trim: frames this far below a clip's loudest count as silence.")
@click.option("--synth-dev", type=click.IntRange(min=0), default=300, show_default=True,
              help="Command sequences of held-out synthetic voices, transcribed beside Y (0: none).")
@click.option("--real-dev", type=click.IntRange(min=0), default=0, show_default=True,
              help="Multi-word recordings joined from the dev speakers' and the FSDD speaker's clips (the dev "
                   "speakers' alone with --fsdd-speaker none), transcribed beside Y (0: none).")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True,
              help="Parallel renders of the synthetic dev set.")
def main(models, data_root, work, baseline, fsdd_speaker, top_db, synth_dev, real_dev, workers):
    from speechlstm.model import load_model

    os.makedirs(work, exist_ok=True)
    sets, failed_trim = yardstick_sets(data_root, work, fsdd_speaker, top_db)
    if failed_trim:
        raise DataError(f"{len(failed_trim)} dev clip(s) could not be read, so Y would not be comparable "
                        f"(first: {failed_trim[0]})")
    write_manifest(sets["devtrim"], os.path.join(work, "devtrim", "trimmed.jsonl"))
    sizes = {p: len(sets[p]) for p in PARTS if sets[p]}  # dev and dev-trim are never empty here
    click.echo(f"Y over {sum(sizes.values())} clips: dev {sizes['dev']}, dev-trim {sizes['devtrim']}"
               + (f", FSDD {fsdd_speaker} {sizes['fsdd']} (digits)" if "fsdd" in sizes else " (no FSDD part)"))
    if synth_dev:
        sets["synth"] = synthetic_dev_set(work, synth_dev, workers=workers)
        if len(sets["synth"]) != synth_dev:
            raise DataError(f"{os.path.join(work, 'synth_dev')}: {synth_dev - len(sets['synth'])} of the {synth_dev} "
                            "synthetic dev sequences could not be rendered, so its WER would not be comparable")
        write_manifest(sets["synth"], os.path.join(work, "synth_dev", "synth_dev.jsonl"))
        sizes["synth"] = len(sets["synth"])
        click.echo(f"beside Y: synth-dev, {sizes['synth']} command sequences of held-out synthetic voices (WER)")
    if real_dev:
        half = real_dev // 2 if sets["fsdd"] else 0
        sets["real"] = (real_sequence_set(sets["dev"], real_dev - half, REAL_DEV_SEED, os.path.join(work, "real_dev", "sc"))
                        + real_sequence_set(sets["fsdd"], half, REAL_DEV_SEED, os.path.join(work, "real_dev", "fsdd")))
        write_manifest(sets["real"], os.path.join(work, "real_dev", "real_dev.jsonl"))
        sizes["real"] = len(sets["real"])
        click.echo(f"beside Y: real-dev, {sizes['real']} recordings of 2-6 words joined from one held-out speaker's "
                   "clips (WER)")
    base = None
    names = list(models) + ([baseline] if baseline else [])
    if len(set(map(_slug, names))) != len(names):
        raise click.BadParameter("two models would share a report folder (the same file name, or two "
                                 "model.npz in folders of one name)", param_hint="MODELS")
    if baseline:
        try:
            bm = load_model(baseline)
            _held_out_or_refused(bm, baseline, sets)
            base = score(bm, sets, os.path.join(work, _slug(baseline)))
            click.echo(_line(f"{baseline} (baseline)", tally(base), sizes))
        except SpeechLSTMError as exc:  # without its baseline no comparison can be made
            raise DataError(error_line(exc, baseline)) from None
    out, bad = [], 0
    for path in models:
        try:
            m = load_model(path)
            unchecked = _held_out_or_refused(m, path, sets)
            res = score(m, sets, os.path.join(work, _slug(path)))
        except (SpeechLSTMError, OSError) as exc:
            _say("error", f"{error_line(exc, path)} (skipped)")
            bad += 1
            continue
        row = {"model": path, **tally(res), "failures": sum(len(r["failures"]) for r in res.values()),
               "unchecked_manifests": unchecked}
        line = _line(path, row, sizes)
        if base is not None:
            row["comparison"] = {p: compare(res[p], base[p]) for p in res}
            line += f" | against {baseline}: " + ", ".join(
                f"{p} {c['only_model_right']} / {c['only_baseline_right']} (p = {c['mcnemar_p']:.3g})"
                for p, c in row["comparison"].items())
        if unchecked:
            line += " | held out? not checked (a training manifest is gone)"
        if row["failures"]:
            line += f" | {row['failures']} clip(s) failed (counted wrong)"
        click.echo(line)
        out.append(row)
    summary = {"fsdd_speaker": fsdd_speaker, "sizes": sizes, "baseline": baseline, "models": out}
    if base is not None:
        summary["baseline_Y"] = tally(base)
    with open(os.path.join(work, "yardstick.json"), "w") as f:
        json.dump(summary, f, indent=2)
    if bad:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
