"""Batch jobs over many files: input expansion, worker pools, resumable result CSVs.

Result CSV columns are exactly ``path,status,keyword,start,end,score,error``.  Each finished file
contributes its detection rows (status ``ok``), or one ``ok`` row with an empty keyword when nothing
was found, or one ``failed`` row carrying the error.  A file's rows are written in a single
``write`` followed by flush and fsync, so after a crash (even SIGKILL) ``--resume`` finds every
finished file complete, drops a torn last line if any, and skips those files: no row is lost or
duplicated.  Beside the CSV, ``<results>.job.json`` records what the job asks (the model file's SHA-256,
the keywords, the threshold); ``--resume`` with anything else asked is refused before any file, since
the finished rows would then answer another question than the new ones.
"""
from __future__ import annotations

import csv
import glob
import hashlib
import io
import json
import os
import time
from typing import Callable, Iterable, List, Optional, Sequence, Tuple

from .config import AUDIO_EXTENSIONS
from .errors import SpeechLSTMError, error_line

__all__ = ["expand_inputs", "ResultWriter", "spot_files", "COLUMNS", "SpotJob"]

COLUMNS = ["path", "status", "keyword", "start", "end", "score", "error"]


def expand_inputs(inputs: Sequence[str]) -> List[str]:
    """Files, folders (walked recursively for audio), glob patterns and manifests (.jsonl/.csv)
    → a sorted, de-duplicated list of paths.  A path that does not exist is kept as is, so the job
    reports it as a failed file instead of dropping it silently."""
    out: List[str] = []
    for item in inputs:
        if os.path.isdir(item):
            for root, dirs, files in os.walk(item):
                dirs.sort()
                out.extend(os.path.join(root, f) for f in sorted(files) if f.lower().endswith(AUDIO_EXTENSIONS))
        elif os.path.isfile(item) and item.lower().endswith((".jsonl", ".csv")):
            from .data import read_paths

            out.extend(read_paths(item))
        elif os.path.exists(item):
            out.append(item)
        elif any(ch in item for ch in "*?["):
            out.extend(sorted(p for p in glob.glob(item, recursive=True) if os.path.isfile(p)))
        else:
            out.append(item)
    seen, uniq = set(), []
    for p in out:
        if p not in seen:
            seen.add(p)
            uniq.append(p)
    return uniq


def _encode_rows(rows: Iterable[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    for r in rows:
        w.writerow({k: r.get(k, "") for k in COLUMNS})
    return buf.getvalue()


class ResultWriter:
    """Appends each file's rows atomically; on resume, knows which files are already done.

    ``settings`` (a JSON-ready dict: what the job asks) is kept in ``<path>.job.json``; resuming a
    results file whose recorded settings differ raises :class:`~speechlstm.errors.ParameterError`
    naming the first difference, before anything is written.
    """

    def __init__(self, path: str, *, resume: bool = False, settings: Optional[dict] = None):
        self.path = path
        self.done: set = set()
        self.failed_before = 0
        if resume and os.path.exists(path):
            self._check_settings(settings)
            self._recover()
            self.f = open(path, "a", encoding="utf-8", newline="")
        else:
            d = os.path.dirname(os.path.abspath(path))
            os.makedirs(d, exist_ok=True)
            self.f = open(path, "w", encoding="utf-8", newline="")
            self.f.write(",".join(COLUMNS) + "\n")
            self._sync()
        if settings is not None:
            tmp = self.job_path + ".tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(settings, f, indent=1, sort_keys=True)
            os.replace(tmp, self.job_path)

    @property
    def job_path(self) -> str:
        return self.path + ".job.json"

    def _check_settings(self, settings: Optional[dict]) -> None:
        from .errors import ParameterError

        if settings is None or not os.path.exists(self.job_path):  # a results file from before settings were kept
            return
        try:
            with open(self.job_path, encoding="utf-8") as f:
                before = json.load(f)
        except (OSError, ValueError) as exc:
            raise SpeechLSTMError(f"{self.job_path}: unreadable job settings ({exc})") from None
        for key in sorted(set(before) | set(settings)):
            if before.get(key) != settings.get(key):
                raise ParameterError(f"{self.path}: started with {key} {before.get(key)!r}, now {settings.get(key)!r}; "
                                     "resume with the same settings, or write to a new --out")

    def _recover(self):
        with open(self.path, "rb") as f:
            data = f.read()
        if not data.endswith(b"\n"):  # torn last line: cut it off (its file is not done)
            cut = data.rfind(b"\n") + 1
            with open(self.path, "r+b") as f:
                f.truncate(cut)
            data = data[:cut]
        text = data.decode("utf-8")
        reader = csv.DictReader(io.StringIO(text))
        if reader.fieldnames != COLUMNS:
            raise SpeechLSTMError(f"{self.path}: not a results file of this tool (columns {reader.fieldnames})")
        for r in reader:
            self.done.add(r["path"])
            if r["status"] == "failed":
                self.failed_before += 1

    def _sync(self):
        self.f.flush()
        os.fsync(self.f.fileno())

    def write_file(self, rows: List[dict]) -> None:
        """Write all rows of one file in one go."""
        self.f.write(_encode_rows(rows))
        self._sync()
        if rows:
            self.done.add(rows[0]["path"])

    def close(self):
        self.f.close()


class SpotJob:
    """What a worker needs to spot keywords in one file (picklable; loads the model once per process)."""

    def __init__(self, model: str, keywords: Sequence[str], threshold: float, device: str = "cpu"):
        self.model_name, self.keywords, self.threshold, self.device = model, list(keywords), threshold, device
        self._model = None

    def check(self) -> "SpotJob":
        """Load the model and check the keywords and threshold now, in this process (a bad job fails
        once, before any file, instead of once per file); returns the job.

        Raises
        ------
        ModelError
            the model cannot be loaded.
        ParameterError
            no keywords, a keyword without letters or with a character the model cannot spell, or a
            threshold outside [0, 1].
        """
        from .alphabet import normalize_text
        from .errors import ParameterError, check_real
        from .model import load_model

        check_real("threshold", self.threshold, 0.0, 1.0)
        if not self.keywords:
            raise ParameterError("no keywords given")
        self._model = load_model(self.model_name, device=self.device)
        for k in self.keywords:
            if not isinstance(k, str) or not normalize_text(k):
                raise ParameterError(f"keyword {k!r} has no letters")
            self._model.alphabet.encode(k)
        return self

    def settings(self) -> dict:
        """What the job asks, as kept beside a results CSV: the model file's SHA-256 (the same weights
        under any name), the keywords as given, the threshold."""
        from .model import _resolve

        with open(_resolve(self.model_name), "rb") as f:
            sha = hashlib.file_digest(f, "sha256").hexdigest()
        return {"model_sha256": sha, "keywords": list(self.keywords), "threshold": float(self.threshold)}

    def __getstate__(self):
        d = dict(self.__dict__)
        d["_model"] = None
        return d

    def __call__(self, path: str) -> Tuple[str, List[dict], float]:
        """Returns (path, rows, audio seconds)."""
        try:
            if self._model is None:
                from .model import load_model

                self._model = load_model(self.model_name, device=self.device)
            from .audio import audio_info

            dur = audio_info(path).duration
            found = self._model.spot(path, self.keywords, threshold=self.threshold)
        except (SpeechLSTMError, OSError, MemoryError, ValueError) as exc:
            return path, [{"path": path, "status": "failed", "error": error_line(exc, path)}], 0.0
        if not found:
            return path, [{"path": path, "status": "ok"}], dur
        return path, [{"path": path, "status": "ok", "keyword": d["keyword"], "start": f"{d['start']:.3f}",
                       "end": f"{d['end']:.3f}", "score": f"{d['score']:.4f}"} for d in found], dur


_PROC_JOB: Optional[SpotJob] = None


def single_thread_worker() -> None:
    """A worker process is one unit of parallelism: its Numba kernels and BLAS run one thread,
    or N workers x N threads of spinning pools fight over the cores."""
    import numba
    from threadpoolctl import threadpool_limits

    numba.set_num_threads(1)
    threadpool_limits(1)


def _proc_init(job: SpotJob):
    global _PROC_JOB
    single_thread_worker()
    _PROC_JOB = job


def _proc_run(path: str):
    return _PROC_JOB(path)


def _in_process(job, paths):
    """Run in this process as one single-threaded worker (short clips gain nothing from threads);
    the caller's thread settings are restored afterwards."""
    import numba
    from threadpoolctl import threadpool_limits

    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        with threadpool_limits(1):
            for p in paths:
                yield job(p)
    finally:
        numba.set_num_threads(before)


def spot_files(job: SpotJob, inputs: Sequence[str], out_csv: str, *, workers: int = 1, resume: bool = False,
               progress: bool = True, executor: Optional[Callable] = None) -> dict:
    """Run a keyword-spotting job; returns a summary (counts, failures, throughput).

    ``executor`` (used by the Dask backend) maps the job over paths and yields results as they
    finish; by default a pool of ``workers`` processes (or this process when ``workers == 1``).
    """
    from tqdm import tqdm

    paths = expand_inputs(inputs)
    writer = ResultWriter(out_csv, resume=resume, settings=job.settings())
    todo = [p for p in paths if p not in writer.done]
    summary = {"files": len(paths), "skipped_done": len(paths) - len(todo), "processed": 0, "failed": 0,
               "detections": 0, "audio_seconds": 0.0, "per_keyword": {k: 0 for k in job.keywords},
               "failures": []}
    t0 = time.time()
    bar = tqdm(total=len(todo), desc="spot", unit="file", disable=not progress)
    try:
        if executor is not None:
            results = executor(job, todo)
        elif workers <= 1:
            results = _in_process(job, todo)
        else:
            import multiprocessing as mp

            pool = mp.get_context("spawn").Pool(workers, initializer=_proc_init, initargs=(job,))
            results = pool.imap_unordered(_proc_run, todo, chunksize=1)
        for path, rows, dur in results:
            writer.write_file(rows)
            summary["processed"] += 1
            summary["audio_seconds"] += dur
            if rows[0]["status"] == "failed":
                summary["failed"] += 1
                summary["failures"].append({"path": path, "error": rows[0]["error"]})
            else:
                for r in rows:
                    if r.get("keyword"):
                        summary["detections"] += 1
                        summary["per_keyword"][r["keyword"]] = summary["per_keyword"].get(r["keyword"], 0) + 1
            el = max(time.time() - t0, 1e-9)
            bar.set_postfix(files_s=f"{summary['processed'] / el:.1f}",
                            audio_h_s=f"{summary['audio_seconds'] / 3600 / el:.4f}")
            bar.update(1)
        if executor is None and workers > 1:
            pool.close()
            pool.join()
    finally:
        bar.close()
        writer.close()
    wall = time.time() - t0
    summary["wall_seconds"] = round(wall, 3)
    summary["files_per_second"] = summary["processed"] / max(wall, 1e-9)
    summary["audio_hours_per_minute"] = summary["audio_seconds"] / 3600 / max(wall / 60, 1e-9)
    summary["failed_total"] = summary["failed"] + writer.failed_before
    return summary
