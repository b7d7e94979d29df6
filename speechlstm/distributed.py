"""Keyword-spotting batch jobs on a Dask cluster (``speechlstm spot ... --dask ADDRESS``).

Files are tasks; each worker process deserialises the job once and loads the model once (cached on
the worker); results stream back as they finish and are written by the client exactly as in local
mode (same CSV, same ``--resume`` guarantees).  When a worker dies, the scheduler re-runs its
unfinished tasks elsewhere; nothing reaches the CSV before a task's result is back, so no row is
lost or duplicated.
"""
from __future__ import annotations

from typing import Sequence

from .batch import SpotJob, single_thread_worker, spot_files
from .errors import SpeechLSTMError

__all__ = ["dask_spot_files", "connect"]

_WORKER_JOBS = {}


def _task(path: str, job: SpotJob):
    key = (job.model_name, job.device, tuple(job.keywords), job.threshold)
    if not _WORKER_JOBS:
        single_thread_worker()
    local = _WORKER_JOBS.setdefault(key, job)  # one model load per worker process
    return local(path)


def connect(address: str, workers: int = 2):
    """A (client, cluster) pair: ``local`` starts a LocalCluster of worker processes."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:  # pragma: no cover
        raise SpeechLSTMError("--dask needs dask.distributed: pip install 'speechlstm[dask]'") from None
    if address == "local":
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        return Client(cluster), cluster
    try:
        return Client(address, timeout="20s"), None
    except (OSError, TimeoutError) as exc:
        raise SpeechLSTMError(f"{address}: cannot reach the Dask scheduler ({exc})") from None


def dask_spot_files(job: SpotJob, inputs: Sequence[str], out_csv: str, *, address: str = "local", workers: int = 2,
                    resume: bool = False, progress: bool = True, client=None) -> dict:
    """Like :func:`speechlstm.batch.spot_files`, with the files spread over a Dask cluster."""
    from dask.distributed import as_completed

    own = client is None
    cluster = None
    if own:
        client, cluster = connect(address, workers)

    def executor(job_, paths):
        if not paths:
            return
        jf = client.scatter(job_, broadcast=True)
        futures = client.map(_task, paths, job=jf, pure=False)
        for fut in as_completed(futures):
            yield fut.result()

    try:
        return spot_files(job, inputs, out_csv, resume=resume, progress=progress, executor=executor)
    finally:
        if own:
            client.close()
            if cluster is not None:
                cluster.close()
