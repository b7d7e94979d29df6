"""Command-line interface: thin click commands over the library.

Every failure the library raises on purpose (a :class:`SpeechLSTMError`) and every OS error is
printed as one line on stderr, ``speechlstm: error: <file>: <problem>``, with a non-zero exit and no
traceback unless ``--debug`` is given.
"""
from __future__ import annotations


import click

from .device import DEVICES
from .errors import ParameterError, SpeechLSTMError, error_line


class _OneLineErrors:
    """``invoke`` with the library's failures (and OS errors) as one line on stderr,
    ``<prog>: error: <file>: <problem>``, and exit status 1; a closed output pipe ends quietly."""

    prog = None  # the prefix; None: the command's own name (a pipeline script's file name)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except BrokenPipeError:  # output piped into `head` and the like: stop quietly
            import os
            import sys

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(0)
        except (SpeechLSTMError, OSError, MemoryError) as exc:
            if ctx.meta.get("speechlstm.debug"):
                raise
            click.echo(f"{self.prog or ctx.info_name}: error: {error_line(exc)}", err=True)
            ctx.exit(1)


class FiniteRange(click.FloatRange):
    """``click.FloatRange`` that also refuses NaN and infinities (every range comparison lets NaN
    through, so ``--threshold nan`` would reach the library file after file)."""

    def convert(self, value, param, ctx):
        import math

        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return rv


class _Group(_OneLineErrors, click.Group):
    prog = "speechlstm"


class PipelineCommand(_OneLineErrors, click.Command):
    """``@click.command(cls=PipelineCommand)`` for the scripts in ``pipelines/``: the CLI's one-line
    errors (a missing corpus folder, an unreadable model) instead of a traceback."""


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.version_option(package_name="speechlstm")
@click.pass_context
def main(ctx, debug):
    """Offline speech recognition and keyword spotting (MFCC → LSTM → CTC, on Numba).

    SPEECHLSTM_BLAS=auto|mkl|openblas chooses the BLAS of the CPU kernels (auto: MKL when installed, on
    Intel CPUs)."""
    ctx.meta["speechlstm.debug"] = debug
    import os

    from .config import BLAS_ENV

    if os.environ.get(BLAS_ENV):  # refuse a bad choice once, up front, not once per file
        from .linalg import blas_backend

        blas_backend()


@main.command()
@click.argument("file", type=click.Path(dir_okay=True, path_type=str))
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="Output .npy file.")
@click.option("--cmvn", type=click.Choice(["utterance", "none"]), default="utterance", show_default=True,
              help="Mean/variance normalisation (utterance: two bounded-memory passes).")
@click.option("--stack", type=int, default=None, help="Frames stacked per output frame.")
@click.option("--subsample", type=int, default=None, help="Keep one stacked frame in N.")
def features(file, out, cmvn, stack, subsample):
    """Write MFCC+Δ+ΔΔ model features of FILE to a .npy array [n_frames, dim], in bounded memory."""
    from .features import FeatureConfig, file_features

    kw = {"cmvn": cmvn}
    if stack is not None:
        kw["stack"] = stack
    if subsample is not None:
        kw["subsample"] = subsample
    cfg = FeatureConfig(**kw)
    file_features(file, cfg, out=out)
    import numpy as np

    arr = np.load(out, mmap_mode="r")
    click.echo(f"{file}: {arr.shape[0]} frames x {arr.shape[1]} features -> {out}")


def _read_words(words, words_file):
    out = []
    if words:
        out += [w.strip() for w in words.split(",") if w.strip()]
    if words_file:
        from .data import read_lines  # a missing or non-UTF-8 file: one line naming it

        out += [w for line in read_lines(words_file) for w in line.replace(",", " ").split()]
    return out or None


def _per_file(ctx, files, run):
    """``(path, run(path))`` for each file in turn; a file that fails is reported in one line and
    skipped, and once all are done the command exits with status 1 if any failed."""
    failed = 0
    for path in files:
        try:
            result = run(path)
        except (SpeechLSTMError, OSError, MemoryError) as exc:
            if ctx.meta.get("speechlstm.debug"):
                raise
            failed += 1
            click.echo(f"speechlstm: error: {error_line(exc, path)}", err=True)
            continue
        yield path, result
    if failed:
        ctx.exit(1)


@main.command()
@click.argument("files", nargs=-1, required=True)
@click.option("--model", "model_name", default=None, help="Model name or .npz path (default: the shipped model).")
@click.option("--format", "fmt", type=click.Choice(["txt", "json", "srt", "vtt", "tsv"]), default="txt", show_default=True)
@click.option("--output-dir", type=click.Path(file_okay=False), help="Write <name>.<format> files here.")
@click.option("--beam-size", default=16, show_default=True, type=click.IntRange(1, 1024))
@click.option("--words", help="Comma-separated allowed words (default: the model's vocabulary).")
@click.option("--words-file", type=click.Path(dir_okay=False), help="File of allowed words.")
@click.option("--any-text", is_flag=True, help="Do not restrict output to the model's vocabulary.")
@click.option("--no-pause-split", is_flag=True,
              help="Run each (up to 30 s) segment through the network whole instead of cutting it at its pauses.")
@click.option("--hotword", "hotwords", multiple=True, metavar="WORD:BOOST", help="Boost a word (repeatable).")
@click.option("--device", type=click.Choice(DEVICES), default="cpu", show_default=True)
@click.pass_context
def transcribe(ctx, files, model_name, fmt, output_dir, beam_size, words, words_file, any_text, no_pause_split, hotwords,
               device):
    """Transcribe audio FILES (one model load for all; a bad file is reported and skipped)."""
    import os

    from .formats import format_result
    from .model import load_model

    model = load_model(model_name, device=device)
    allowed = [] if any_text else _read_words(words, words_file)
    hot = list(hotwords) or None
    from .transcribe import _decoder

    _decoder(model, beam_size, allowed, hot, None)  # bad words or hot-words: one error now, not one per file
    for path, result in _per_file(ctx, files, lambda p: model.transcribe(p, beam_size=beam_size, words=allowed,
                                                                         hotwords=hot, split_pauses=not no_pause_split)):
        text = format_result(result, fmt)
        if output_dir:
            os.makedirs(output_dir, exist_ok=True)
            stem = os.path.splitext(os.path.basename(path))[0]
            out = os.path.join(output_dir, f"{stem}.{fmt}")
            with open(out, "w", encoding="utf-8") as f:
                f.write(text)
        elif fmt == "txt" and len(files) > 1:
            click.echo(f"{path}\t{result['text']}")
        else:
            click.echo(text, nl=False)


@main.command()
@click.argument("files", nargs=-1, required=True)
@click.option("--model", "model_name", default=None, help="Model name or .npz path (default: the shipped model).")
@click.option("--words", help="Comma-separated candidate words or phrases (default: the model's vocabulary).")
@click.option("--words-file", type=click.Path(dir_okay=False), help="File of candidate words.")
@click.option("--no-silence", is_flag=True, help="Do not consider 'no speech' (_silence_) a candidate.")
@click.option("--format", "fmt", type=click.Choice(["txt", "json"]), default="txt", show_default=True,
              help="txt: FILE<TAB>label<TAB>probability; json: one object per line with every score.")
@click.option("--device", type=click.Choice(DEVICES), default="cpu", show_default=True)
@click.pass_context
def classify(ctx, files, model_name, words, words_file, no_silence, fmt, device):
    """Say which candidate word each short clip in FILES holds (CTC likelihood of each candidate).

    FILES may be files, folders (walked for audio), glob patterns or manifests (.jsonl/.csv)."""
    import json

    from .batch import expand_inputs
    from .model import load_model

    paths = expand_inputs(files)
    if not paths:
        raise ParameterError(f"{' '.join(files)}: no audio files found")
    model = load_model(model_name, device=device)
    cands = _read_words(words, words_file)
    for path, res in _per_file(ctx, paths, lambda path: model.classify(path, cands, no_speech=not no_silence)):
        if fmt == "json":
            click.echo(json.dumps({"path": path, **res}))
        else:
            click.echo(f"{path}\t{res['label']}\t{res['probability']:.4f}")


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--keywords", help="Comma-separated keywords (any text).")
@click.option("--keywords-file", type=click.Path(dir_okay=False), help="File with one keyword per line.")
@click.option("--out", "out_csv", required=True, type=click.Path(dir_okay=False), help="Results CSV.")
@click.option("--model", "model_name", default=None, help="Model name or path.")
@click.option("--threshold", default=0.5, show_default=True, type=FiniteRange(0, 1))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 256))
@click.option("--resume", is_flag=True, help="Skip files already in the results CSV.")
@click.option("--dask", "dask_address", help="Run on Dask: 'local' or tcp://HOST:PORT.")
@click.option("--device", type=click.Choice(DEVICES), default="cpu", show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
def spot(ctx, paths, keywords, keywords_file, out_csv, model_name, threshold, workers, resume, dask_address, device, quiet):
    """Keyword spotting over PATHS (files, folders, globs or manifests) into a resumable CSV."""
    import json

    from .batch import SpotJob, spot_files
    from .model import _resolve

    kws = _read_words(keywords, None) or []
    if keywords_file:
        from .data import read_lines  # a missing or non-UTF-8 file: one line naming it

        kws += [line.strip() for line in read_lines(keywords_file) if line.strip()]
    if not kws:
        raise click.UsageError("give --keywords or --keywords-file")
    job = SpotJob(_resolve(model_name), kws, threshold, device).check()  # fail fast, before any worker starts
    if dask_address:
        from .distributed import dask_spot_files

        summary = dask_spot_files(job, paths, out_csv, address=dask_address, workers=workers, resume=resume,
                                  progress=not quiet)
    else:
        summary = spot_files(job, paths, out_csv, workers=workers, resume=resume, progress=not quiet)
    for f in summary["failures"]:
        click.echo(f"speechlstm: error: {f['error']}", err=True)
    short = {k: summary[k] for k in ("files", "skipped_done", "processed", "failed", "detections")}
    short["audio_hours_per_minute"] = round(summary["audio_hours_per_minute"], 4)
    click.echo(json.dumps(short), err=True)
    if summary["failed_total"]:
        ctx.exit(1)


@main.command()
@click.option("--model", "model_name", default=None, help="Model name or path.")
@click.option("--data", required=True, help="Manifest (.jsonl/.csv) or corpus folder.")
@click.option("--task", type=click.Choice(["transcribe", "kws", "classify"]), required=True)
@click.option("--report", "report_dir", required=True, type=click.Path(file_okay=False), help="Report folder.")
@click.option("--beam-size", default=16, show_default=True, type=click.IntRange(1, 1024))
@click.option("--keywords", help="Keywords for --task kws (default: every word of the references).")
@click.option("--limit", type=click.IntRange(min=1), help="Evaluate only the first N utterances.")
@click.option("--words", help="Comma-separated words: allowed words (transcribe) or the candidate classes "
              "(classify; default: the model's vocabulary mapped to the 12 Speech Commands classes).")
@click.option("--no-silence", is_flag=True, help="classify: 'no speech' is not a candidate.")
@click.option("--baseline", "baseline_name", default=None,
              help="Also evaluate this model on the same utterances and compare (transcribe, classify): the "
                   "difference with a paired 95 % interval and an exact McNemar test; its own report goes to "
                   "REPORT/baseline.")
@click.pass_context
def evaluate(ctx, model_name, data, task, report_dir, beam_size, keywords, limit, words, no_silence, baseline_name):
    """Evaluate a model: WER/CER, classification accuracy + confusion, KWS DET, real-time factor.
    A file that cannot be read is reported in one line and left out; once the reports are written
    the command exits with status 1 if any was."""
    import json
    import os

    from .data import read_any
    from .evaluate import compare, evaluate as run_eval, write_report
    from .model import load_model

    if baseline_name is not None and task == "kws":
        raise ParameterError("--baseline compares transcribe or classify results, not kws")
    model = load_model(model_name)
    baseline = load_model(baseline_name) if baseline_name is not None else None
    rows = read_any(data)[:limit]
    kws = [k.strip() for k in keywords.split(",")] if keywords else None
    opts = dict(beam_size=beam_size, keywords=kws, words=_read_words(words, None), no_speech=not no_silence)
    res = run_eval(model, rows, task, **opts)
    if baseline is not None:
        base = run_eval(baseline, rows, task, **opts)
        write_report(base, os.path.join(report_dir, "baseline"))
        res["comparison"] = compare(res, base)
    paths = write_report(res, report_dir)
    keys = ("utterances", "wer", "wer_ci95", "cer", "accuracy", "accuracy_ci95", "rtf", "miss_rate_at_0.5_fa_per_hour")
    click.echo(json.dumps({k: res[k] for k in keys if k in res}))
    if baseline is not None:
        click.echo(json.dumps(res["comparison"]))
    click.echo(f"report: {paths['md']}")
    failed = {f["path"]: f["error"] for r in (res, base if baseline is not None else {}) for f in r.get("failures", [])}
    for line in failed.values():
        click.echo(f"speechlstm: error: {line}", err=True)
    if failed:
        ctx.exit(1)


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False), help="Training config (TOML).")
@click.option("--resume", is_flag=True, help="Continue from the run folder's checkpoint.")
@click.option("--device", type=click.Choice(DEVICES), default=None,
              help="Where the LSTM runs (default: the config's device, else cpu).")
def train(config_path, resume, device):
    """Train a model from a TOML config (see README); writes model.npz, log.jsonl, curve.png."""
    from .device import resolve_device
    from .train import Trainer, load_config

    cfg = load_config(config_path)
    if device:
        cfg.device = device
    resolve_device(cfg.device)  # a clear error before any feature is computed
    state = Trainer(cfg).run(resume=resume)
    best = next((r for r in state["history"] if r["epoch"] == state["best_epoch"]), None)
    if best is None:
        click.echo(f"no epoch trained (epochs = {cfg.epochs}); nothing written to {cfg.out_dir}/model.npz")
    elif "dev_loss" in best:
        by = {"loss": "dev loss", "wer": "dev WER"}[cfg.select_by]
        click.echo(f"best epoch {best['epoch']} by {by}: dev loss {best['dev_loss']:.4f}, dev WER {best['dev_wer']:.1%}; "
                   f"model: {cfg.out_dir}/model.npz")
    else:
        click.echo(f"best epoch {best['epoch']} by training loss {best['train_loss']:.4f} (no dev set); "
                   f"model: {cfg.out_dir}/model.npz")


@main.command()
@click.option("--texts", "texts_file", type=click.Path(dir_okay=False), help="File with one text per line.")
@click.option("--words", help="Comma-separated texts to render.")
@click.option("--repeat", default=1, show_default=True, type=click.IntRange(min=1), help="Renders per text (each with a random voice).")
@click.option("--out-dir", required=True, type=click.Path(file_okay=False))
@click.option("--manifest", required=True, type=click.Path(dir_okay=False), help="Output manifest (.jsonl).")
@click.option("--voices", "n_voices", default=100, show_default=True, type=click.IntRange(min=1), help="Size of the random voice pool.")
@click.option("--engine", type=click.Choice(["both", "espeak-ng", "flite"]), default="both", show_default=True)
@click.option("--foreign-accents", "l1_share", type=FiniteRange(0, 1), default=0.0, show_default=True,
              help="Share of the espeak-ng voices that speak English with a foreign accent (German, Greek, French ... "
                   "voices saying the English phonemes; 1: all of them).")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 256))
def synth(texts_file, words, repeat, out_dir, manifest, n_voices, engine, l1_share, seed, workers):
    """Render texts with espeak-ng / flite voices (accents, variants, speeds, pitches) into a manifest."""
    from .data import read_lines, write_manifest
    from .synth import synthesize

    texts = [w.strip() for w in (words or "").split(",") if w.strip()]
    if texts_file:
        texts += [line.strip() for line in read_lines(texts_file) if line.strip()]
    if not texts:
        raise click.UsageError("give --texts or --words")
    kw = {}
    if engine == "espeak-ng":
        kw["flite_names"] = []
    elif engine == "flite":
        kw["espeak_accents"] = []
    if l1_share and engine == "flite":
        raise click.UsageError("--foreign-accents speaks through espeak-ng voices: use --engine both or espeak-ng")
    if l1_share:
        kw["l1_share"] = l1_share
        if l1_share == 1.0:
            kw["espeak_accents"] = []
    rows = synthesize([t for t in texts for _ in range(repeat)], out_dir, seed=seed, n_voices=n_voices,
                      workers=workers, **kw)
    write_manifest(rows, manifest)
    click.echo(f"{len(rows)} utterances -> {manifest}")


@main.command()
@click.argument("model", required=False)
@click.option("--json", "as_json", is_flag=True)
def info(model, as_json):
    """Show what a model file holds (default: the shipped model)."""
    import json

    from .model import load_model

    m = load_model(model)
    d = m.info()
    if as_json:
        click.echo(json.dumps(d, indent=2))
        return
    click.echo(f"model:        {d['name']} ({d['path']})")
    nets = [f"{a['num_layers']} x LSTM({a['hidden_size']}, {'bidirectional' if a['bidirectional'] else 'unidirectional'})"
            f" -> Dense({a['num_classes']})" for a in d["members"]]
    if len(nets) == 1:
        click.echo(f"architecture: {nets[0]}; {d['parameters']:,} parameters")
    else:
        kinds = {n: nets.count(n) for n in nets}
        click.echo(f"architecture: ensemble of {len(nets)} networks ("
                   + ", ".join(f"{k} x {n}" if k > 1 else n for n, k in kinds.items())
                   + f"); {d['parameters']:,} parameters")
    f = d["features"]
    click.echo(f"features:     {f['n_mfcc']} MFCC + {f['delta_order']} deltas, {f['n_mels']} mels "
               f"{f['fmin']:g}-{f['fmax'] or f['sample_rate'] / 2:g} Hz, "
               f"{f['win_ms']}/{f['hop_ms']} ms, stack {f['stack']}, subsample {f['subsample']}, cmvn {f['cmvn']}")
    click.echo(f"alphabet:     {d['alphabet']!r}")
    click.echo(f"vocabulary:   {' '.join(d['vocabulary']) if d['vocabulary'] else '(any text)'}")
    click.echo(f"streaming:    {'yes' if d['streaming'] else 'no'}")
    for k, v in (d.get("metrics") or {}).items():
        click.echo(f"metric:       {k} = {v}")
    env = (d.get("training") or {}).get("environment")
    if env:  # what the training run ran on (models trained since 2026-12-08)
        click.echo("trained on:   " + ", ".join(f"{k} {v if not isinstance(v, list) else '; '.join(v)}"
                                                for k, v in env.items()))
    from .config import BLAS_ENV
    from .linalg import blas_backend, cpu_vendor, mkl_info  # of this installation, not of the file

    mkl = mkl_info()
    if blas_backend() == "mkl":
        click.echo(f"CPU BLAS:     MKL ({mkl[1]})")
    elif mkl:
        click.echo(f"CPU BLAS:     OpenBLAS (SciPy's); MKL is installed but 'auto' takes it on Intel CPUs only "
                   f"(this one: {cpu_vendor()}); {BLAS_ENV}=mkl uses it")
    else:
        click.echo("CPU BLAS:     OpenBLAS (SciPy's); pip install 'speechlstm[mkl]' adds MKL")


@main.command()
@click.argument("models", nargs=-1, required=True)
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="Output model file (.npz).")
@click.option("--name", default="", help="The ensemble's name (default: the output file's).")
def combine(models, out, name):
    """Combine models trained on the same front end into one ensemble file.

    Global-CMVN models with statistics of their own are restated on the first model's.  classify sums each candidate's log-likelihood over the networks; transcribe and spot use the mean
    of their per-frame posteriors.  Each network costs its own pass over the audio."""
    import os

    from .model import combine_models, load_model

    name = name or os.path.splitext(os.path.basename(out))[0]
    m = combine_models([load_model(p) for p in models], name=name)
    click.echo(f"wrote {m.save(out)}: {len(m.members)} networks")


@main.command()
@click.argument("models", nargs=-1, required=True)
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="Output model file (.npz).")
@click.option("--name", default="", help="The averaged model's name (default: the output file's).")
def average(models, out, name):
    """Average the weights of snapshots of one training run into one network (checkpoint averaging).

    For epochs of the same run (e.g. its epochs/ folder, kept with average_best); networks trained
    apart do not average — combine those instead.  The result costs one network's time."""
    import os

    from .model import average_models, load_model

    name = name or os.path.splitext(os.path.basename(out))[0]
    m = average_models([load_model(p) for p in models], name=name)
    click.echo(f"wrote {m.save(out)}: the mean of {len(models)} networks")


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False), help="Base training config.")
@click.option("--grid", "grid", multiple=True, metavar="KEY=V1,V2", help="Values to try (repeatable).")
@click.option("--random", "n_random", type=click.IntRange(min=0), default=0,
              help="Random search: this many draws from the grid (0: the whole grid).")
@click.option("--epochs", type=click.IntRange(min=1), default=3, show_default=True, help="Epochs per trial.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0), help="Seed of the random draws.")
def tune(config_path, grid, n_random, epochs, out_dir, seed):
    """Hyper-parameter search: short runs ranked on the dev set (results.csv + results.md)."""
    from .train import load_config
    from .tune import parse_grid, run_search

    base = load_config(config_path)
    run_search(base, parse_grid(grid), out_dir, epochs=epochs, n_random=n_random, seed=seed)
    click.echo(open(f"{out_dir}/results.md").read())


if __name__ == "__main__":  # pragma: no cover
    main()
