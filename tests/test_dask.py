"""Keyword spotting on a real dask.distributed LocalCluster (2 worker processes)."""
import csv
import os
import shutil
import signal
import threading
import time

import pytest

from speechlstm.batch import SpotJob, spot_files
from speechlstm.distributed import dask_spot_files
from speechlstm.model import _resolve

from test_spot import KEYWORDS, SAMPLES, by_file, read_rows


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("daskdata")
    wavs = sorted(f for f in os.listdir(SAMPLES) if f.endswith(".wav"))
    for rep in range(4):
        for w in wavs:
            shutil.copy(os.path.join(SAMPLES, w), d / f"{rep}_{w}")
    (d / "zz_bad.wav").write_text("not audio")
    return d


@pytest.fixture(scope="module")
def client():
    from dask.distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    c = Client(cluster)
    yield c
    c.close()
    cluster.close()


@pytest.fixture(scope="module")
def local_reference(files, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "local.csv"
    job = SpotJob(_resolve(None), KEYWORDS.split(","), 0.5)
    spot_files(job, [str(files)], str(out), workers=1, progress=False)
    return by_file(read_rows(out))


def test_distributed_equals_local(files, client, local_reference, tmp_path):
    job = SpotJob(_resolve(None), KEYWORDS.split(","), 0.5)
    s = dask_spot_files(job, [str(files)], str(tmp_path / "d.csv"), client=client, progress=False)
    assert s["processed"] == 53 and s["failed"] == 1  # the bad file is reported, the job goes on
    assert by_file(read_rows(tmp_path / "d.csv")) == local_reference
    pids = client.run(os.getpid)
    assert len(set(pids.values())) == 2 and os.getpid() not in pids.values()


def test_killed_worker_loses_and_duplicates_nothing(files, client, local_reference, tmp_path):
    out = tmp_path / "k.csv"
    job = SpotJob(_resolve(None), KEYWORDS.split(","), 0.5)
    killed = []

    def files_written():  # tolerant of a file just created, its header or last row half-written
        try:
            with open(out, newline="") as f:
                return len({row["path"] for row in csv.DictReader(f) if row.get("path")})
        except OSError:
            return 0

    def killer():
        deadline = time.time() + 120
        while time.time() < deadline:
            if files_written() >= 6:
                pid = next(iter(client.run(os.getpid).values()))
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.02)

    t = threading.Thread(target=killer)
    t.start()
    s = dask_spot_files(job, [str(files)], str(out), client=client, progress=False)
    t.join()
    assert killed, "the job finished before a worker could be killed"
    rows = read_rows(out)
    assert by_file(rows) == local_reference
    assert len(rows) == sum(len(v) for v in local_reference.values())  # no duplicated rows
    assert s["processed"] == 53


def test_cli_dask_local(files, tmp_path):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "speechlstm", "spot", str(files), "--keywords", KEYWORDS, "--out",
                        str(tmp_path / "c.csv"), "--dask", "local", "--workers", "2", "--quiet"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 1 and "zz_bad.wav" in r.stderr
    assert len(by_file(read_rows(tmp_path / "c.csv"))) == 53
