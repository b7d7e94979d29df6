"""The build pipeline's split helpers (pure functions; no corpus needed)."""
import importlib.util
import os

import click
import pytest

_PATH = os.path.join(os.path.dirname(__file__), os.pardir, "pipelines", "build_default_model.py")


@pytest.fixture(scope="module")
def build():
    spec = importlib.util.spec_from_file_location("build_default_model", _PATH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


SPEAKERS = ["george", "jackson", "lucas", "nicolas"]


def fake_fsdd():
    return [{"path": f"/x/{d}_{s}_{t}.wav", "speaker": s, "text": str(d)}
            for s in SPEAKERS for d in range(2) for t in (0, 44, 45, 49)]


def test_train_speakers_default_is_all_but_the_test_speaker(build):
    assert build.fsdd_train_speakers_option("", SPEAKERS, "george") == ["jackson", "lucas", "nicolas"]
    assert build.fsdd_train_speakers_option(" ", SPEAKERS, "lucas") == ["george", "jackson", "nicolas"]
    assert build.fsdd_train_speakers_option("none", SPEAKERS, "george") == []
    assert build.fsdd_train_speakers_option("nicolas, jackson", SPEAKERS, "george") == ["jackson", "nicolas"]


@pytest.mark.parametrize("value, message", [
    ("george", "'george' is the test speaker"),
    ("zed", "'zed' is not an FSDD speaker here"),
    ("none,jackson", "'none' is not an FSDD speaker here"),
    ("jackson,jackson", "a speaker is repeated: 'jackson,jackson'"),
    ("jackson,", "'' is not an FSDD speaker here"),
])
def test_bad_train_speakers_are_one_line(build, value, message):
    with pytest.raises(click.BadParameter) as err:
        build.fsdd_train_speakers_option(value, SPEAKERS, "george")
    text = err.value.format_message()
    assert message in text and "--fsdd-train-speakers" in text and "\n" not in text


def test_fsdd_split_roles(build):
    rows = fake_fsdd()
    test, dev, train = build.fsdd_split(rows, "george", ["jackson", "lucas", "nicolas"])
    assert {r["speaker"] for r in test} == {"george"} and len(test) == 8
    assert all(int(r["path"][:-4].rsplit("_", 1)[1]) >= 45 for r in dev) and len(dev) == 12
    assert all(int(r["path"][:-4].rsplit("_", 1)[1]) < 45 for r in train) and len(train) == 12
    assert not {r["path"] for r in dev} & {r["path"] for r in train}
    assert [r for r in rows if r in dev or r in train] == [r for r in rows if r["speaker"] != "george"]  # order kept
    test, dev, train = build.fsdd_split(rows, "george", ["lucas"])
    assert {r["speaker"] for r in dev + train} == {"lucas"} and len(test) == 8
    test, dev, train = build.fsdd_split(rows, "george", [])
    assert dev == [] and train == [] and len(test) == 8


@pytest.mark.parametrize("script", ["build_default_model.py", "evaluate.py"])
def test_missing_corpus_is_one_line(tmp_path, script):
    """A --data folder without the corpora: one line naming the missing folder, exit 1, no traceback."""
    import subprocess
    import sys

    pipelines = os.path.join(os.path.dirname(__file__), os.pardir, "pipelines")
    r = subprocess.run([sys.executable, os.path.join(pipelines, script), "--data", str(tmp_path / "data"),
                        "--work", str(tmp_path / "work")], capture_output=True, text=True)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{script}: error: {tmp_path / 'data'}/")
    assert lines[0].endswith(": no such directory")
