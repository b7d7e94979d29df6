"""Keyword-spotting throughput on a Dask LocalCluster with 1 and 2 worker processes.

    python pipelines/bench_dask.py --files 200

Audio-hours per minute, cluster start-up excluded (the cluster and its model loads are warmed up
on a first small job), median of 3 runs each.
"""
import glob
import os
import shutil
import statistics
import tempfile
import time

import click


@click.command()
@click.option("--files", "n_files", default=200, show_default=True)
@click.option("--repeats", default=3, show_default=True)
def main(n_files, repeats):
    import soundfile as sf
    from dask.distributed import Client, LocalCluster

    from speechlstm.batch import SpotJob
    from speechlstm.distributed import dask_spot_files
    from speechlstm.model import _resolve

    here = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "audio_samples")
    wavs = sorted(glob.glob(os.path.join(here, "*.wav")))
    tmp = tempfile.mkdtemp()
    d = os.path.join(tmp, "files")
    os.makedirs(d)
    for i in range(n_files):
        shutil.copy(wavs[i % len(wavs)], os.path.join(d, f"{i:04d}.wav"))
    hours = sum(sf.info(os.path.join(d, f)).duration for f in os.listdir(d)) / 3600
    job = SpotJob(_resolve(None), ["yes", "no", "stop", "go", "left", "right"], 0.5)
    print(f"{n_files} files, {hours * 60:.2f} audio-minutes")
    print("| Dask workers | median wall s | audio-hours per minute |")
    print("|---:|---:|---:|")
    for workers in (1, 2):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
        dask_spot_files(job, wavs[:4], os.path.join(tmp, "warm.csv"), client=client, progress=False)
        walls = []
        for r in range(repeats):
            out = os.path.join(tmp, f"r{workers}_{r}.csv")
            t0 = time.perf_counter()
            dask_spot_files(job, [d], out, client=client, progress=False)
            walls.append(time.perf_counter() - t0)
        w = statistics.median(walls)
        print(f"| {workers} | {w:.2f} | {hours / (w / 60):.3f} |")
        client.close()
        cluster.close()
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
