"""Batch keyword spotting as a pipeline: expand inputs → spot (workers or Dask) → summary.

    python pipelines/kws_batch.py DATA_DIR --keywords yes,stop --out-dir runs/kws [--workers 2] [--dask local]

Writes ``results.csv`` (``speechlstm spot``'s schema), ``summary.json`` and ``summary.md`` (counts per
keyword, failures, throughput).  Re-running with ``--resume`` continues an interrupted job.
"""
import json
import os

import click

from speechlstm.batch import SpotJob, spot_files
from speechlstm.cli import FiniteRange, PipelineCommand
from speechlstm.model import _resolve


@click.command(cls=PipelineCommand)
@click.argument("paths", nargs=-1, required=True)
@click.option("--keywords", required=True, help="Comma-separated keywords.")
@click.option("--out-dir", required=True, type=click.Path(file_okay=False))
@click.option("--model", "model_name", default=None)
@click.option("--threshold", default=0.5, show_default=True, type=FiniteRange(0, 1))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 256))
@click.option("--dask", "dask_address", default=None, help="'local' or tcp://HOST:PORT")
@click.option("--resume", is_flag=True)
def main(paths, keywords, out_dir, model_name, threshold, workers, dask_address, resume):
    job = SpotJob(_resolve(model_name), [k.strip() for k in keywords.split(",") if k.strip()], threshold).check()
    os.makedirs(out_dir, exist_ok=True)  # after the model and keywords are checked
    out_csv = os.path.join(out_dir, "results.csv")
    if dask_address:
        from speechlstm.distributed import dask_spot_files

        s = dask_spot_files(job, paths, out_csv, address=dask_address, workers=workers, resume=resume, progress=False)
    else:
        s = spot_files(job, paths, out_csv, workers=workers, resume=resume, progress=False)
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump(s, f, indent=2)
    lines = ["# Keyword-spotting job", "", f"- files: {s['files']} (skipped as already done: {s['skipped_done']})",
             f"- processed: {s['processed']}, failed: {s['failed']}", f"- detections: {s['detections']}",
             f"- audio: {s['audio_seconds'] / 3600:.4f} h in {s['wall_seconds']:.1f} s "
             f"= {s['audio_hours_per_minute']:.4f} audio-hours per minute ({s['files_per_second']:.2f} files/s)",
             "", "| keyword | detections |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in sorted(s["per_keyword"].items())]
    if s["failures"]:
        lines += ["", "Failures:", ""] + [f"- {x['path']}: {x['error']}" for x in s["failures"]]
    with open(os.path.join(out_dir, "summary.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    click.echo("\n".join(lines))
    raise SystemExit(1 if s["failed"] else 0)


if __name__ == "__main__":
    main()
