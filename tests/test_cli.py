"""The user's surface: speechlstm transcribe / spot / info / evaluate, bad inputs, formats."""
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from speechlstm.cli import main

from conftest import MKL_FROM_TEST_EXTRA, tone
from samples import SAMPLES

HERE = os.path.dirname(os.path.abspath(__file__))


def run_cli(*args, timeout=300):
    """The installed command in a subprocess: real exit codes and real stderr."""
    return subprocess.run([sys.executable, "-m", "speechlstm", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    """name -> (path, expected error fragment or None when the file must work)."""
    d = tmp_path_factory.mktemp("inputs")
    f = {}
    f["missing"] = (str(d / "missing.wav"), "no such file")
    (d / "folder.wav").mkdir()
    f["directory"] = (str(d / "folder.wav"), "is a directory")
    (d / "empty.wav").write_bytes(b"")
    f["empty file"] = (str(d / "empty.wav"), "empty file")
    sf.write(str(d / "zero.wav"), np.zeros(0, np.float32), 16000, subtype="PCM_16")
    f["0-sample WAV"] = (str(d / "zero.wav"), "no audio samples")
    good = d / "good.wav"
    sf.write(str(good), tone(0.5), 16000, subtype="PCM_16")
    (d / "truncated.wav").write_bytes(good.read_bytes()[:30])
    f["truncated WAV"] = (str(d / "truncated.wav"), "not a readable audio file|no audio samples")
    (d / "random.wav").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    f["random bytes"] = (str(d / "random.wav"), "not a readable audio file")
    (d / "notes.txt").write_text("hello world\n" * 50)
    f["text file"] = (str(d / "notes.txt"), "not a readable audio file")
    y = tone(0.5)
    y[10] = np.nan
    sf.write(str(d / "nan.wav"), y, 16000, subtype="FLOAT")
    f["NaN samples"] = (str(d / "nan.wav"), "NaN or infinite")
    sf.write(str(d / "one.wav"), np.array([0.1], np.float32), 16000)
    f["1 sample"] = (str(d / "one.wav"), None)
    sf.write(str(d / "multi.wav"), np.stack([tone(0.5, sr=96000)] * 8, axis=1), 96000, subtype="PCM_24")
    f["8 channels at 96 kHz"] = (str(d / "multi.wav"), None)
    sp = d / "a name with spaces – ünïcødé 声.wav"
    sf.write(str(sp), tone(0.5), 16000)
    f["spaces and non-ASCII"] = (str(sp), None)
    return f


@pytest.mark.parametrize("case", ["missing", "directory", "empty file", "0-sample WAV", "truncated WAV",
                                  "random bytes", "text file", "NaN samples", "1 sample", "8 channels at 96 kHz",
                                  "spaces and non-ASCII"])
def test_transcribe_bad_and_odd_inputs(bad_inputs, case):
    import re

    path, err = bad_inputs[case]
    r = run_cli("transcribe", path)
    if err is None:
        assert r.returncode == 0, r.stderr
        assert "Traceback" not in r.stderr
    else:
        assert r.returncode == 1
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1, r.stderr
        assert lines[0].startswith(f"speechlstm: error: {path}: ")
        assert re.search(err, lines[0])


def test_unreadable_file_cli(tmp_path):
    os.chmod(tmp_path, 0o755)
    p = tmp_path / "locked.wav"
    sf.write(str(p), tone(0.3), 16000)
    os.chmod(p, 0)
    cmd = [sys.executable, "-m", "speechlstm", "transcribe", str(p)]
    if os.geteuid() == 0:  # root reads everything: drop the capabilities that bypass permissions
        cmd = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] + cmd
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stderr.strip() == f"speechlstm: error: {p}: permission denied"


def test_batch_goes_on_after_a_bad_file(bad_inputs):
    good = bad_inputs["1 sample"][0]
    r = run_cli("transcribe", bad_inputs["random bytes"][0], good, bad_inputs["missing"][0])
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()) == 2
    assert good in r.stdout  # the good file in the middle was transcribed


def test_debug_shows_traceback(bad_inputs):
    r = run_cli("--debug", "transcribe", bad_inputs["random bytes"][0])
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_two_hour_file_in_bounded_memory(tmp_path):
    """A 2-hour file is transcribed segment by segment; peak memory stays far below the file."""
    p = tmp_path / "two_hours.wav"
    sr = 16000
    rng = np.random.default_rng(0)
    with sf.SoundFile(str(p), "w", sr, 1, "PCM_16") as f:
        for _ in range(240):  # 240 x 30 s
            f.write((0.003 * rng.standard_normal(sr * 30)).astype(np.float32))
    r = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-m", "speechlstm", "transcribe", str(p),
                        "--format", "json"], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    import json

    res = json.loads(r.stdout)
    assert res["duration"] == pytest.approx(7200, abs=0.1)
    rss_kb = int([l for l in r.stderr.splitlines() if "Maximum resident" in l][0].split()[-1])
    assert rss_kb < 1_000_000, rss_kb  # the audio alone would be 460 MB as float32


def test_info_and_formats(tmp_path):
    r = CliRunner().invoke(main, ["info"])
    assert r.exit_code == 0 and "parameters" in r.output and "vocabulary" in r.output
    from speechlstm.linalg import auto_prefers_mkl

    # auto takes MKL where the test extra installed it, on an Intel CPU; elsewhere info says why not
    if MKL_FROM_TEST_EXTRA and auto_prefers_mkl():
        assert "CPU BLAS:     MKL (" in r.output
    elif MKL_FROM_TEST_EXTRA:
        assert "CPU BLAS:     OpenBLAS (SciPy's); MKL is installed but 'auto' takes it on Intel CPUs only" in r.output
    else:
        assert "CPU BLAS:     OpenBLAS" in r.output
    wav = os.path.join(SAMPLES, "go_left_stop.wav")
    out = tmp_path / "out"
    for fmt in ("txt", "json", "srt", "vtt", "tsv"):
        r = CliRunner().invoke(main, ["transcribe", wav, "--format", fmt, "--output-dir", str(out)])
        assert r.exit_code == 0, r.output
    import srt
    import webvtt

    subs = list(srt.parse(open(out / "go_left_stop.srt").read()))
    vtt = list(webvtt.read(str(out / "go_left_stop.vtt")))
    text = open(out / "go_left_stop.txt").read().strip()
    assert " ".join(s.content for s in subs) == text == " ".join(c.text for c in vtt)
    if text:
        assert subs[0].start.total_seconds() >= 0 and subs[-1].end > subs[0].start
    assert open(out / "go_left_stop.tsv").readline() == "start\tend\ttext\n"


@pytest.mark.parametrize("args,message", [
    (["evaluate", "--data", "missing.jsonl", "--task", "transcribe", "--report", "r"], "missing.jsonl: no such file or directory"),
    (["train", "--config", "missing.toml"], "missing.toml: no such config file"),
    (["info", "missing.npz"], "missing.npz: no such model file"),
    (["synth", "--texts", "missing.txt", "--out-dir", "s", "--manifest", "s.jsonl"], "missing.txt: no such file"),
    (["spot", "x.wav", "--keywords", "!!!", "--out", "x.csv"], "keyword '!!!' has no letters"),
])
def test_other_commands_fail_in_one_line(tmp_path, args, message):
    r = subprocess.run([sys.executable, "-m", "speechlstm", *args], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [f"speechlstm: error: {message}"]


@pytest.mark.parametrize("args, message", [
    (["--repeat", "0"], "Invalid value for '--repeat': 0 is not in the range x>=1."),
    (["--voices", "0"], "Invalid value for '--voices': 0 is not in the range x>=1."),
    (["--seed", "-1"], "Invalid value for '--seed': -1 is not in the range x>=0."),
    (["--workers", "0"], "Invalid value for '--workers': 0 is not in the range 1<=x<=256."),
    (["--foreign-accents", "nan"], "Invalid value for '--foreign-accents': 'nan' is not a finite number."),
])
def test_synth_refuses_bad_counts_before_rendering(tmp_path, args, message):
    """--repeat 0 wrote an empty manifest and said nothing; --voices 0 and --seed -1 were NumPy tracebacks."""
    r = CliRunner().invoke(main, ["synth", "--words", "yes", "--out-dir", str(tmp_path / "s"),
                                  "--manifest", str(tmp_path / "s.jsonl"), *args])
    assert r.exit_code == 2 and message in r.output, r.output
    assert not (tmp_path / "s").exists() and not (tmp_path / "s.jsonl").exists()


@pytest.mark.parametrize("command", ["transcribe", "classify"])
def test_a_bad_words_file_is_one_line_naming_it(tmp_path, command):
    """A Latin-1 --words-file was a UnicodeDecodeError traceback; a missing one said "Error: ..." without the
    program's prefix. A good one (commas or spaces between words) still works."""
    (tmp_path / "l1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    clip = os.path.join(SAMPLES, "sc_yes.wav")
    for name, problem in (("l1.txt", "not UTF-8 text (byte 3: invalid continuation byte)"), ("nope.txt", "no such file")):
        r = CliRunner().invoke(main, [command, clip, "--words-file", str(tmp_path / name)])
        assert r.exit_code == 1 and r.stderr.strip() == f"speechlstm: error: {tmp_path / name}: {problem}", r.output
    (tmp_path / "w.txt").write_text("yes, no\nup\n")
    r = CliRunner().invoke(main, [command, clip, "--words-file", str(tmp_path / "w.txt")])
    assert r.exit_code == 0 and "yes" in r.stdout


def test_synth_texts_file_that_is_not_utf8_is_one_line(tmp_path):
    """A Latin-1 --texts file was a UnicodeDecodeError traceback."""
    (tmp_path / "t.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    r = CliRunner().invoke(main, ["synth", "--texts", str(tmp_path / "t.txt"), "--out-dir", str(tmp_path / "s"),
                                  "--manifest", str(tmp_path / "s.jsonl")])
    assert r.exit_code == 1 and r.stderr.strip() == f"speechlstm: error: {tmp_path / 't.txt'}: not UTF-8 text (byte 3: " \
        "invalid continuation byte)", r.output
    assert not (tmp_path / "s.jsonl").exists()


def test_empty_training_config_names_the_file(tmp_path):
    (tmp_path / "empty.toml").write_text("")
    r = CliRunner().invoke(main, ["train", "--config", str(tmp_path / "empty.toml")])
    assert r.exit_code == 1 and f"{tmp_path / 'empty.toml'}: training config needs" in r.output


def test_binary_training_config_is_one_line(tmp_path):
    (tmp_path / "bin.toml").write_bytes(b"train = 1\n\xd0\x00\xff not text")
    r = subprocess.run([sys.executable, "-m", "speechlstm", "train", "--config", "bin.toml"], capture_output=True,
                       text=True, cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == ["speechlstm: error: bin.toml: not valid TOML (not UTF-8 text)"]


@pytest.mark.parametrize("env,message", [
    ({"SPEECHLSTM_BLAS": "fast"}, "speechlstm: error: SPEECHLSTM_BLAS='fast': BLAS must be one of auto, mkl, openblas, got 'fast'"),
    ({"SPEECHLSTM_BLAS": "mkl", "SPEECHLSTM_MKL_LIB": "/nonexistent/libmkl_rt.so.2"},
     "speechlstm: error: SPEECHLSTM_BLAS='mkl': BLAS 'mkl' asked for, but MKL is not usable: libmkl_rt.so.2 not found"),
])
def test_bad_blas_choice_is_one_line_before_any_file(env, message):
    wav = os.path.join(SAMPLES, "sc_yes.wav")
    r = subprocess.run([sys.executable, "-m", "speechlstm", "transcribe", wav, wav], capture_output=True, text=True,
                       timeout=300, env=dict(os.environ, **env))
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith(message) and r.stderr.count("\n") == 1  # once, not once per file


def test_synth_foreign_accents(tmp_path):
    """`speechlstm synth --foreign-accents 1 --engine espeak-ng`: every voice a foreign-accented one;
    with flite alone it is a usage error, not silently ignored."""
    import json

    r = CliRunner().invoke(main, ["synth", "--words", "six,go left", "--repeat", "2", "--engine", "espeak-ng",
                                  "--foreign-accents", "1", "--out-dir", str(tmp_path / "s"),
                                  "--manifest", str(tmp_path / "s.jsonl")])
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in open(tmp_path / "s.jsonl")]
    assert len(rows) == 4 and all(row["speaker"].startswith("espeak-ng-l1:") for row in rows)
    r = CliRunner().invoke(main, ["synth", "--words", "six", "--engine", "flite", "--foreign-accents", "0.5",
                                  "--out-dir", str(tmp_path / "f"), "--manifest", str(tmp_path / "f.jsonl")])
    assert r.exit_code == 2 and "--foreign-accents" in r.output and not (tmp_path / "f.jsonl").exists()


@pytest.mark.parametrize("args, message", [
    (["tune", "--config", "c.toml", "--out", "t", "--random", "-1"], "Invalid value for '--random': -1 is not in the range x>=0."),
    (["tune", "--config", "c.toml", "--out", "t", "--epochs", "0"], "Invalid value for '--epochs': 0 is not in the range x>=1."),
    (["tune", "--config", "c.toml", "--out", "t", "--seed", "-1"], "Invalid value for '--seed': -1 is not in the range x>=0."),
    (["evaluate", "--data", "m.jsonl", "--task", "transcribe", "--report", "t", "--limit", "0"],
     "Invalid value for '--limit': 0 is not in the range x>=1."),
    (["evaluate", "--data", "m.jsonl", "--task", "transcribe", "--report", "t", "--beam-size", "0"],
     "Invalid value for '--beam-size': 0 is not in the range 1<=x<=1024."),
])
def test_counts_out_of_range_are_usage_errors(tmp_path, args, message):
    """--limit 0 evaluated everything and --limit -1 all but the last clip; --random -1 was a NumPy traceback."""
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2 and message in r.output, r.output
    assert not (tmp_path / "t").exists()


def test_a_bad_hot_word_is_one_error_before_any_file(tmp_path):
    wav = os.path.join(SAMPLES, "sc_yes.wav")
    r = subprocess.run([sys.executable, "-m", "speechlstm", "transcribe", "--hotword", "yes:nan", wav, wav],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.strip().splitlines() == ["speechlstm: error: the boost of hot-word 'yes' must be a finite number, got nan"]


def test_transcribe_cuts_at_pauses_unless_told_not_to(tmp_path):
    """One file holding two sequences with 1 s of digital silence between them: the CLI cuts at the pause and
    hears every word; --no-pause-split runs the segment whole, as before, and with a model that never trained on
    real multi-word speech (commands-distilled) drops the word after the pause."""
    from speechlstm import load_audio

    a, b = (load_audio(os.path.join(SAMPLES, f), sr=16000) for f in ("go_left_stop.wav", "one_two_three_four.wav"))
    sf.write(tmp_path / "two.wav", np.concatenate([a, np.zeros(16000, np.float32), b]), 16000)
    r = CliRunner().invoke(main, ["transcribe", str(tmp_path / "two.wav")])
    assert r.exit_code == 0 and r.stdout.strip() == "go left stop one two three four", r.output
    for model in ("commands", "commands-distilled"):
        r = CliRunner().invoke(main, ["transcribe", str(tmp_path / "two.wav"), "--model", model])
        assert r.exit_code == 0 and r.stdout.strip() == "go left stop one two three four", r.output
    r = CliRunner().invoke(main, ["transcribe", str(tmp_path / "two.wav"), "--no-pause-split", "--model",
                                  "commands-distilled"])
    assert r.exit_code == 0 and r.stdout.strip() == "go left one two three four", r.output
