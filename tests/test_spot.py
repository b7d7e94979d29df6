"""speechlstm spot: results schema, bad files, workers, --resume after SIGKILL, Dask."""
import csv
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from speechlstm.batch import COLUMNS, SpotJob, expand_inputs, spot_files
from speechlstm.model import _resolve

from samples import SAMPLES

HERE = os.path.dirname(os.path.abspath(__file__))
KEYWORDS = "yes,stop,go,left,seven,marvin"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """39 copies of the sample clips in nested folders, plus one bad file."""
    d = tmp_path_factory.mktemp("spotdata")
    wavs = sorted(f for f in os.listdir(SAMPLES) if f.endswith(".wav"))
    for rep in range(3):
        sub = d / f"part{rep}" / "inner"
        sub.mkdir(parents=True)
        for w in wavs:
            shutil.copy(os.path.join(SAMPLES, w), sub / f"{rep}_{w}")
    (d / "part0" / "broken.wav").write_bytes(b"RIFF\x00\x00garbage")
    return d


def read_rows(path):
    with open(path, newline="") as f:
        r = csv.DictReader(f)
        assert r.fieldnames == COLUMNS
        return list(r)


def by_file(rows):
    out = {}
    for r in rows:
        out.setdefault(r["path"], []).append(tuple(r[c] for c in COLUMNS))
    return out


def spot_cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "speechlstm", "spot", *args, "--quiet"], capture_output=True,
                          text=True, timeout=timeout)


def test_expand_inputs(corpus, tmp_path):
    files = expand_inputs([str(corpus)])
    assert len(files) == 40 and files == sorted(files)
    assert len(expand_inputs([str(corpus / "part1" / "**" / "*.wav")])) == 13
    m = tmp_path / "m.jsonl"
    m.write_text('{"path": "%s", "text": ""}\n' % files[0])
    assert expand_inputs([str(m), files[0], str(tmp_path / "nope.wav")]) == [files[0], str(tmp_path / "nope.wav")]


def test_expand_inputs_reads_path_lists_without_transcripts(corpus, tmp_path):
    """A CSV list used to be read with csv.DictReader unchecked: no 'path' column was a KeyError traceback,
    a non-UTF-8 list a UnicodeDecodeError; a JSONL list needed a 'text' it never used."""
    from speechlstm import DataError

    files = expand_inputs([str(corpus / "part1")])
    (tmp_path / "a.csv").write_text("path\n" + "".join(os.path.relpath(f, tmp_path) + "\n" for f in files[:2]))
    (tmp_path / "b.jsonl").write_text("".join('{"path": "%s"}\n' % f for f in files[2:4]))
    assert expand_inputs([str(tmp_path / "a.csv"), str(tmp_path / "b.jsonl")]) == files[:4]
    for name, data, message in [
        ("h.csv", b"file,words\na.wav,yes\n", "h.csv: needs a header with a 'path' column"),
        ("l.csv", "path,text\na.wav,caf\xe9\n".encode("latin-1"), "l.csv: not UTF-8 text"),
        ("e.csv", b"path\na.wav\n\"\"\n", "e.csv:3: the 'path' column is empty"),
        ("n.jsonl", b'{"path": "a.wav"}\n{"file": "b.wav"}\n', "n.jsonl:2: each line needs a 'path'"),
    ]:
        (tmp_path / name).write_bytes(data)
        with pytest.raises(DataError, match=message):
            expand_inputs([str(tmp_path / name)])
        r = spot_cli(str(tmp_path / name), "--keywords", "yes", "--out", str(tmp_path / "r.csv"))
        assert r.returncode == 1 and r.stderr.strip().startswith(f"speechlstm: error: {tmp_path / name}"), r.stderr


def test_resume_refuses_other_settings(corpus, tmp_path):
    """--resume with other keywords, threshold or model used to append answers to another question to the
    finished rows; the job's settings are now kept beside the CSV and a mismatch refused before any file."""
    out = tmp_path / "r.csv"
    part = str(corpus / "part2")
    assert spot_cli(part, "--keywords", "yes,stop", "--out", str(out)).returncode == 0
    before = out.read_bytes()
    for args, what in [(["--keywords", "yes"], "keywords ['yes', 'stop'], now ['yes']"),
                       (["--keywords", "yes,stop", "--threshold", "0.6"], "threshold 0.5, now 0.6"),
                       (["--keywords", "yes,stop", "--model", "commands-distilled"], "model_sha256 ")]:
        r = spot_cli(part, *args, "--out", str(out), "--resume")
        assert r.returncode == 1 and r.stderr.strip().splitlines()[0].startswith(
            f"speechlstm: error: {out}: started with {what}"), r.stderr
        assert out.read_bytes() == before
    r = spot_cli(part, "--keywords", "yes,stop", "--out", str(out), "--resume")
    assert r.returncode == 0 and '"skipped_done": 13' in r.stderr and out.read_bytes() == before


def test_spot_cli_schema_and_failures(corpus, tmp_path):
    out = tmp_path / "r.csv"
    r = spot_cli(str(corpus), "--keywords", KEYWORDS, "--out", str(out), "--workers", "2")
    assert r.returncode == 1  # one file failed
    err = [l for l in r.stderr.splitlines() if l.startswith("speechlstm: error:")]
    assert len(err) == 1 and "broken.wav" in err[0]
    rows = read_rows(out)
    files = by_file(rows)
    assert len(files) == 40
    bad = files[str(corpus / "part0" / "broken.wav")]
    assert len(bad) == 1 and bad[0][1] == "failed" and "broken.wav" in bad[0][6]
    for path, rs in files.items():
        if path.endswith("broken.wav"):
            continue
        assert all(x[1] == "ok" for x in rs)
        if len(rs) == 1 and rs[0][2] == "":
            continue
        for x in rs:
            assert x[2] in KEYWORDS.split(",") and 0 <= float(x[3]) < float(x[4]) and 0 <= float(x[5]) <= 1
    good = spot_cli(str(corpus / "part1"), "--keywords", KEYWORDS, "--out", str(tmp_path / "g.csv"))
    assert good.returncode == 0, good.stderr


def test_resume_after_sigkill_loses_and_duplicates_nothing(corpus, tmp_path):
    ref = tmp_path / "ref.csv"
    spot_cli(str(corpus), "--keywords", KEYWORDS, "--out", str(ref))
    out = tmp_path / "killed.csv"
    p = subprocess.Popen([sys.executable, "-m", "speechlstm", "spot", str(corpus), "--keywords", KEYWORDS,
                          "--out", str(out), "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline:
        if out.exists() and len(by_file(read_rows(out))) >= 8:
            break
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    done_before = len(by_file(read_rows(out)))
    assert 8 <= done_before < 40
    with open(out, "a") as f:  # a torn, half-written line as a crash could leave
        f.write("/some/file.wav,ok,ye")
    r = spot_cli(str(corpus), "--keywords", KEYWORDS, "--out", str(out), "--resume")
    assert r.returncode == 1  # the broken file is still a failure
    assert by_file(read_rows(out)) == by_file(read_rows(ref))
    assert sorted(read_rows(out), key=str) == sorted(read_rows(ref), key=str)


def test_library_spot_files_summary(corpus, tmp_path):
    job = SpotJob(_resolve(None), KEYWORDS.split(","), 0.5)
    s = spot_files(job, [str(corpus / "part2")], str(tmp_path / "x.csv"), workers=1, progress=False)
    assert s["processed"] == 13 and s["failed"] == 0 and s["audio_seconds"] > 5
    assert set(s["per_keyword"]) >= set(KEYWORDS.split(","))
    s2 = spot_files(job, [str(corpus / "part2")], str(tmp_path / "x.csv"), resume=True, progress=False)
    assert s2["skipped_done"] == 13 and s2["processed"] == 0


def test_kws_batch_pipeline_summary(corpus, tmp_path):
    r = subprocess.run([sys.executable, os.path.join(os.path.dirname(HERE), "pipelines", "kws_batch.py"),
                        str(corpus / "part1"), "--keywords", KEYWORDS, "--out-dir", str(tmp_path / "job")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    import json

    summary = json.load(open(tmp_path / "job" / "summary.json"))
    assert summary["processed"] == 13 and summary["failed"] == 0
    assert os.path.exists(tmp_path / "job" / "results.csv") and os.path.exists(tmp_path / "job" / "summary.md")


@pytest.mark.parametrize("keywords, threshold, model, message", [
    ([], 0.5, None, "no keywords given"),
    (["left", "!!"], 0.5, None, "keyword '!!' has no letters"),
    (["left"], float("nan"), None, r"threshold must be a number in \[0, 1\], got nan"),
    (["left"], 1.5, None, r"threshold must be a number in \[0, 1\], got 1.5"),
    (["left"], 0.5, "no-such-model", "no-such-model: no such model"),
])
def test_a_bad_spot_job_fails_once_before_any_file(keywords, threshold, model, message):
    from speechlstm.errors import SpeechLSTMError

    with pytest.raises(SpeechLSTMError, match=message):
        SpotJob(model or _resolve(None), keywords, threshold).check()


@pytest.mark.parametrize("args, message", [
    (["--keywords", ","], "kws_batch.py: error: no keywords given"),
    (["--keywords", "left", "--model", "no-such-model"], "kws_batch.py: error: no-such-model: no such model"),
    (["--keywords", "left", "--threshold", "nan"], "'nan' is not a finite number"),
    (["--keywords", "left", "--workers", "0"], "0 is not in the range 1<=x<=256"),
])
def test_kws_batch_refuses_a_bad_job_in_one_line_and_writes_nothing(args, message, tmp_path):
    r = subprocess.run([sys.executable, os.path.join(os.path.dirname(HERE), "pipelines", "kws_batch.py"),
                        os.path.join(SAMPLES, "sc_left.wav"), "--out-dir", str(tmp_path / "job"), *args],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode in (1, 2) and message in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert not (tmp_path / "job").exists()


def test_spot_cli_refuses_a_nan_threshold_before_any_file(tmp_path):
    r = spot_cli(os.path.join(SAMPLES, "sc_left.wav"), "--keywords", "left", "--threshold", "nan",
                 "--out", str(tmp_path / "r.csv"))
    assert r.returncode == 2 and "'nan' is not a finite number" in r.stderr
    assert not (tmp_path / "r.csv").exists()
