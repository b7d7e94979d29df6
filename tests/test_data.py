import os

import pytest
import soundfile as sf

from speechlstm import DataError
from speechlstm.data import (read_any, read_csv, read_fsdd, read_kaldi, read_librispeech, read_manifest,
                             read_speech_commands, read_text_pairs, split_by_speaker, write_manifest)

from conftest import tone


def _wav(p, seconds=0.3, sr=16000):
    os.makedirs(os.path.dirname(p), exist_ok=True)
    sf.write(p, tone(seconds, sr=sr), sr)
    return p


def test_speech_commands_layout(tmp_path):
    _wav(str(tmp_path / "yes" / "abc123_nohash_0.wav"))
    _wav(str(tmp_path / "_unknown_" / "backward_def456_nohash_1.wav"))
    _wav(str(tmp_path / "_silence_" / "0007.wav"), 1.0)
    rows = read_speech_commands(str(tmp_path))
    by_label = {r["label"]: r for r in rows}
    assert by_label["yes"]["text"] == "yes" and by_label["yes"]["speaker"] == "abc123"
    assert by_label["_unknown_"]["text"] == "backward" and by_label["_unknown_"]["speaker"] == "def456"
    assert by_label["_silence_"]["text"] == "" and by_label["_silence_"]["duration"] == pytest.approx(1.0)
    assert read_any(str(tmp_path)) == rows


def test_fsdd_and_text_pairs_and_csv(tmp_path):
    _wav(str(tmp_path / "fsdd" / "7_jackson_3.wav"), sr=8000)
    rows = read_fsdd(str(tmp_path / "fsdd"))
    assert rows[0]["text"] == "seven" and rows[0]["speaker"] == "jackson"
    _wav(str(tmp_path / "arctic" / "a1.flac"))
    (tmp_path / "arctic" / "a1.txt").write_text("Author of the danger trail, Philip Steels, etc.\n")
    rows = read_text_pairs(str(tmp_path / "arctic"), speaker="cathy")
    assert rows[0]["text"] == "author of the danger trail philip steels etc" and rows[0]["speaker"] == "cathy"
    (tmp_path / "m.csv").write_text("path,text,speaker\narctic/a1.flac,Go 2!,s1\n")
    rows = read_csv(str(tmp_path / "m.csv"))
    assert rows[0]["text"] == "go two" and rows[0]["path"].endswith("a1.flac")
    (tmp_path / "bad.csv").write_text("file,words\n")
    with pytest.raises(DataError, match="'path' and 'text'"):
        read_csv(str(tmp_path / "bad.csv"))


def test_librispeech_and_kaldi(tmp_path):
    d = tmp_path / "libri" / "19" / "198"
    _wav(str(d / "19-198-0001.flac"))
    (d / "19-198.trans.txt").write_text("19-198-0001 NORTHANGER ABBEY\n")
    rows = read_librispeech(str(tmp_path / "libri"))
    assert rows[0]["text"] == "northanger abbey" and rows[0]["speaker"] == "19"
    k = tmp_path / "kaldi"
    k.mkdir()
    _wav(str(k / "u1.wav"))
    (k / "wav.scp").write_text(f"spk1-u1 {k / 'u1.wav'}\n")
    (k / "text").write_text("spk1-u1 HELLO THERE\n")
    (k / "utt2spk").write_text("spk1-u1 spk1\n")
    rows = read_kaldi(str(k))
    assert rows[0]["text"] == "hello there" and rows[0]["speaker"] == "spk1"
    (k / "wav.scp").write_text("spk1-u1 sox x.wav -t wav - |\n")
    with pytest.raises(DataError, match="pipe"):
        read_kaldi(str(k))


def test_manifest_round_trip_relative_paths(tmp_path):
    _wav(str(tmp_path / "a.wav"))
    p = str(tmp_path / "m.jsonl")
    write_manifest([{"path": "a.wav", "text": "yes", "speaker": "x", "duration": 0.3}], p)
    rows = read_manifest(p)
    assert rows[0]["path"] == str(tmp_path / "a.wav")
    (tmp_path / "broken.jsonl").write_text("{not json\n")
    with pytest.raises(DataError, match="broken.jsonl:1"):
        read_manifest(str(tmp_path / "broken.jsonl"))
    with pytest.raises(DataError, match="no such directory"):
        read_fsdd(str(tmp_path / "nope"))


def test_manifest_paths_may_be_path_objects(tmp_path):
    _wav(str(tmp_path / "a.wav"))
    out = write_manifest([{"path": "a.wav", "text": "yes"}], tmp_path / "m.jsonl")
    assert out == str(tmp_path / "m.jsonl") and isinstance(out, str)
    assert read_manifest(tmp_path / "m.jsonl")[0]["path"] == str(tmp_path / "a.wav")


def test_split_by_speaker_is_disjoint_and_stable():
    rows = [{"path": f"{i}.wav", "text": "", "speaker": f"s{i % 50}"} for i in range(500)]
    a = split_by_speaker(rows, test=0.2, dev=0.1)
    b = split_by_speaker(rows, test=0.2, dev=0.1)
    assert a == b
    spk = {k: {r["speaker"] for r in v} for k, v in a.items()}
    assert not (spk["train"] & spk["test"]) and not (spk["train"] & spk["dev"]) and not (spk["dev"] & spk["test"])
    assert 0.05 < len(a["test"]) / 500 < 0.4
    c = split_by_speaker(rows, test_speakers=["s3"])
    assert {r["speaker"] for r in c["test"]} == {"s3"}


MALFORMED = [  # (file, its bytes, reader, the error's match): each names the file and, where there is one, the line
    ("dur.csv", b"path,text,duration\na.wav,yes,abc\n", read_csv,
     r"dur.csv:2: duration must be a number of seconds >= 0, got 'abc'"),
    ("neg.csv", b"path,text,duration\na.wav,yes,0.3\na.wav,no,-1\n", read_csv, r"neg.csv:3: duration"),
    ("nopath.csv", b'path,text\n"",yes\n', read_csv, r"nopath.csv:2: the 'path' column is empty"),
    ("latin1.csv", "path,text\na.wav,caf\xe9\n".encode("latin-1"), read_csv, r"latin1.csv: not UTF-8 text"),
    ("m.jsonl", b'{"path": "a.wav", "text": "yes"}\n{"path": 3, "text": "no"}\n', read_manifest,
     r"m.jsonl:2: 'path' must be a non-empty string, got 3"),
    ("t.jsonl", b'{"path": "a.wav", "text": 7}\n', read_manifest, r"t.jsonl:1: 'text' must be a string"),
    ("d.jsonl", b'{"path": "a.wav", "text": "yes", "duration": NaN}\n', read_manifest, r"d.jsonl:1: duration"),
]


@pytest.mark.parametrize("name, content, reader, match", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_corpus_files_are_one_line_data_errors(tmp_path, name, content, reader, match):
    """A malformed entry is a DataError naming file and line, not a ValueError/TypeError traceback."""
    _wav(str(tmp_path / "a.wav"))
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError, match=match):
        reader(str(tmp_path / name))


def test_a_transcript_that_is_not_utf8_is_named(tmp_path):
    _wav(str(tmp_path / "pairs" / "x.wav"))
    (tmp_path / "pairs" / "x.txt").write_bytes(b"\xff\xfe hello")
    with pytest.raises(DataError, match=r"x.txt: not UTF-8 text"):
        read_text_pairs(str(tmp_path / "pairs"))


def test_manifest_text_may_hold_any_unicode_line_separator(tmp_path):
    _wav(str(tmp_path / "a.wav"))
    write_manifest([{"path": "a.wav", "text": "yes\u2028no", "duration": 1}], tmp_path / "m.jsonl")
    rows = read_manifest(str(tmp_path / "m.jsonl"))
    assert len(rows) == 1 and rows[0]["text"] == "yes\u2028no" and rows[0]["duration"] == 1


def test_kaldi_dirs_that_cannot_be_read_say_why(tmp_path):
    k = tmp_path / "kaldi"
    k.mkdir()
    _wav(str(k / "rec1.wav"), 1.0)
    (k / "wav.scp").write_text("rec1 rec1.wav\n")
    (k / "text").write_text("rec1-000 HELLO\n")
    (k / "segments").write_text("rec1-000 rec1 0.0 0.5\n")
    with pytest.raises(DataError, match=r"segments: utterances cut from longer recordings are not supported"):
        read_kaldi(str(k))
    (k / "segments").unlink()
    (k / "wav.scp").write_text("")
    with pytest.raises(DataError, match=r"wav.scp: no utterances"):
        read_kaldi(str(k))
    (k / "wav.scp").write_text("rec1\n")
    with pytest.raises(DataError, match=r"wav.scp:1: rec1 has no audio path"):
        read_kaldi(str(k))
    (k / "wav.scp").write_text("rec1 rec1.wav\n")
    (k / "text").write_bytes(b"rec1 caf\xe9\n")
    with pytest.raises(DataError, match=r"text: not UTF-8 text"):
        read_kaldi(str(k))
    (k / "text").write_text("rec1 HELLO\r\n")  # CRLF line ends are read as before
    assert read_kaldi(str(k))[0]["text"] == "hello"


def _unreadable(p):
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(b"not audio")
    return p


def test_one_unreadable_audio_file_does_not_stop_a_reader(tmp_path):
    """Each reader used to open every clip for its duration and raise at the first bad one, so one
    broken file failed the whole list (``speechlstm evaluate --data mix.csv`` stopped before any clip).
    Now the row is listed with duration None; training and evaluation report the file when they read it."""
    sc = tmp_path / "sc"
    _wav(str(sc / "yes" / "a1_nohash_0.wav"))
    _unreadable(str(sc / "yes" / "b2_nohash_0.wav"))
    fsdd = tmp_path / "fsdd"
    _wav(str(fsdd / "1_jackson_0.wav"), sr=8000)
    _unreadable(str(fsdd / "2_jackson_0.wav"))
    pairs = tmp_path / "pairs"
    _wav(str(pairs / "a1.wav"))
    _unreadable(str(pairs / "a2.wav"))
    (pairs / "a1.txt").write_text("one\n")
    (pairs / "a2.txt").write_text("two\n")
    k = tmp_path / "kaldi"
    _wav(str(k / "u1.wav"))
    _unreadable(str(k / "u2.wav"))
    (k / "wav.scp").write_text("s-u1 u1.wav\ns-u2 u2.wav\ns-u3 gone.wav\n")
    (k / "text").write_text("s-u1 ONE\ns-u2 TWO\ns-u3 THREE\n")
    libri = tmp_path / "libri" / "19" / "198"
    _wav(str(libri / "19-198-0001.flac"))
    _unreadable(str(libri / "19-198-0002.flac"))
    (libri / "19-198.trans.txt").write_text("19-198-0001 ONE\n19-198-0002 TWO\n")
    (tmp_path / "m.csv").write_text("path,text\nsc/yes/a1_nohash_0.wav,yes\nsc/yes/b2_nohash_0.wav,yes\n"
                                   "nowhere.wav,no\n")
    got = {
        "speech_commands": read_speech_commands(str(sc)), "fsdd": read_fsdd(str(fsdd)),
        "text_pairs": read_text_pairs(str(pairs)), "kaldi": read_kaldi(str(k)),
        "librispeech": read_librispeech(str(tmp_path / "libri")), "csv": read_csv(str(tmp_path / "m.csv")),
    }
    for kind, rows in got.items():
        durations = [r["duration"] for r in rows]
        assert durations[0] == pytest.approx(0.3) and all(d is None for d in durations[1:]), (kind, durations)
        assert len(rows) == (3 if kind in ("kaldi", "csv") else 2), kind
    # a manifest written from such rows reads back (duration null is allowed)
    back = read_manifest(write_manifest(got["csv"], str(tmp_path / "m.jsonl")))
    assert [r["duration"] for r in back] == [r["duration"] for r in got["csv"]]
