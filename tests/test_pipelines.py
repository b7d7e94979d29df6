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


def test_with_copies_sets_only_the_given_clips(build):
    """--sc-copies / --fsdd-copies: the chosen clips get their own copy count, every other row (and
    the rows given) is left as it was, and the order is kept."""
    rows = fake_fsdd() + [{"path": "/s/syn.wav", "speaker": "espeak-ng:en-us", "text": "go", "copies": 1}]
    test, dev, train = build.fsdd_split(rows[:-1], "george", ["jackson", "lucas"])
    before = [dict(r) for r in rows]
    out = build.with_copies(rows, train + dev, 6)
    assert [r["path"] for r in out] == [r["path"] for r in rows] and rows == before
    chosen = {r["path"] for r in train + dev}
    assert len(chosen) == 16
    for r, o in zip(rows, out):
        assert o == (dict(r, copies=6) if r["path"] in chosen else r)
    assert build.with_copies(rows, [], 6) == rows


def _run_pipeline(script, *args):
    import subprocess
    import sys

    pipelines = os.path.join(os.path.dirname(__file__), os.pardir, "pipelines")
    return subprocess.run([sys.executable, os.path.join(pipelines, script), *map(str, args)],
                          capture_output=True, text=True)


@pytest.mark.parametrize("script", ["build_default_model.py", "evaluate.py"])
def test_missing_corpus_is_one_line(tmp_path, script):
    """A --data folder without the corpora: one line naming the missing folder, exit 1, no traceback."""
    r = _run_pipeline(script, "--data", tmp_path / "data", "--work", tmp_path / "work")
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{script}: error: {tmp_path / 'data'}/")
    assert lines[0].endswith(": no such directory")
    if script == "evaluate.py":  # reads the corpora before making its work folder
        assert not (tmp_path / "work").exists()


def test_evaluate_pipeline_refuses_a_bad_model_before_reading_the_corpora(tmp_path):
    """It used to read the corpora and render 300 synthetic sequences before finding the model missing."""
    r = _run_pipeline("evaluate.py", "--data", tmp_path / "data", "--work", tmp_path / "work", "--model", "nope")
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == ["evaluate.py: error: nope: no such model (shipped models: commands, "
                                             "commands-distilled, commands-ensemble, commands-stream)"]
    assert not (tmp_path / "work").exists()


def test_streaming_model_refuses_per_clip_cmvn(tmp_path):
    """Checked before any corpus is read: a unidirectional model cannot normalise by the whole clip."""
    r = _run_pipeline("build_default_model.py", "--unidirectional", "--cmvn", "utterance",
                      "--data", tmp_path / "data", "--work", tmp_path / "work")
    assert r.returncode == 2 and "Invalid value for --cmvn" in r.stderr and "--cmvn global" in r.stderr
    assert not (tmp_path / "work" / "synth").exists()


def test_trimmed_set_cuts_words_keeps_silence_and_reports_bad_files(tmp_path):
    import json

    import numpy as np
    import soundfile as sf

    sr = 16000
    t = np.arange(int(0.4 * sr)) / sr
    word = 0.5 * np.sin(2 * np.pi * 220 * t) * np.hanning(t.size) ** 0.1
    quiet = np.zeros(int(0.3 * sr))
    sf.write(tmp_path / "word.wav", np.concatenate([quiet, word, quiet]), sr)
    sf.write(tmp_path / "noise.wav", 0.01 * np.random.default_rng(0).standard_normal(sr), sr)
    rows = [{"path": str(tmp_path / "word.wav"), "text": "go", "speaker": "a"},
            {"path": str(tmp_path / "noise.wav"), "text": "", "speaker": "b", "label": "_silence_"},
            {"path": str(tmp_path / "gone.wav"), "text": "no", "speaker": "c"}]
    manifest = tmp_path / "in.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = _run_pipeline("trimmed_set.py", manifest, "--out", tmp_path / "out")
    assert r.returncode == 1  # one file failed, the others were written
    errors = r.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith(f"{tmp_path / 'gone.wav'}: ") and errors[0].endswith(" (skipped)")
    assert errors[0].count(str(tmp_path / "gone.wav")) == 1
    out = [json.loads(line) for line in (tmp_path / "out" / "trimmed.jsonl").read_text().splitlines()]
    assert [o["text"] for o in out] == ["go", ""]
    assert out[1] == rows[1]  # no speech: copied as it is
    y, got_sr = sf.read(out[0]["path"])
    assert got_sr == sr and abs(y.size / sr - 0.4) < 0.05 and out[0]["duration"] == round(y.size / sr, 3)
    (tmp_path / "empty.jsonl").write_text("")
    r = _run_pipeline("trimmed_set.py", tmp_path / "empty.jsonl", "--out", tmp_path / "out2")
    assert r.returncode == 1 and r.stderr.strip() == f"trimmed_set.py: error: {tmp_path / 'empty.jsonl'}: the manifest holds no clips"


def test_bench_models_times_each_model_against_the_first():
    """One round over two shipped models: a table row each, the baseline's ratios 1.00, its stored accuracies."""
    r = _run_pipeline("bench_models.py", "--model", "commands", "--model", "commands-stream", "--rounds", "1")
    assert r.returncode == 0, r.stderr
    rows = [line for line in r.stdout.splitlines() if line.startswith("| commands")]
    assert [row.split(" | ")[0] for row in rows] == ["| commands", "| commands-stream"]
    base = rows[0].split(" | ")
    assert base[1:3] == ["1", "655,645"] and all(c.endswith("(1.00)") for c in base[3:6])
    assert rows[1].split(" | ")[2] == "262,301"  # the stream network: 2 x unidirectional LSTM(128)
    assert base[6] == "92.8 %"  # FSDD closed-set digits, as stored in the shipped default


def test_bench_models_names_model_files_by_their_paths(tmp_path):
    """Models a build wrote all carry the name "commands": rows named by path tell them apart."""
    from speechlstm import load_model

    a = load_model().save(str(tmp_path / "a.npz"))
    b = load_model().save(str(tmp_path / "b.npz"))
    r = _run_pipeline("bench_models.py", "--model", a, "--model", b, "--rounds", "1")
    assert r.returncode == 0, r.stderr
    assert f"(model / {a})" in r.stdout
    rows = [line.split(" | ")[0] for line in r.stdout.splitlines() if line.startswith("| /")]
    assert rows == [f"| {a}", f"| {b}"]


def test_bench_models_bad_model_is_one_line(tmp_path):
    bad = tmp_path / "m.npz"
    bad.write_bytes(b"not a model")
    r = _run_pipeline("bench_models.py", "--model", "commands", "--model", bad, "--rounds", "1")
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [f"Error: {bad}: not a model file (speechlstm models are .npz archives; this is not one)"]


def _speaker_in(bucket_lo, bucket_hi, prefix):
    from speechlstm.data import speaker_bucket

    return next(f"{prefix}{i:04x}" for i in range(10000) if bucket_lo <= speaker_bucket(f"{prefix}{i:04x}") < bucket_hi)


def _fake_corpora(root):
    """A Speech Commands folder with a dev speaker (bucket in [0.25, 0.35), as the build's split puts it)
    and a training speaker, and an FSDD folder with nicolas and george, from the real clips of audio_samples."""
    import shutil

    samples = os.path.join(os.path.dirname(__file__), os.pardir, "audio_samples")
    dev_spk, train_spk = _speaker_in(0.25, 0.35, "d"), _speaker_in(0.35, 1.0, "t")
    sc = root / "speech_commands_v2_half"
    for label, src in (("left", "sc_left.wav"), ("stop", "sc_stop.wav"), ("yes", "sc_yes.wav")):
        (sc / label).mkdir(parents=True)
        for spk in (dev_spk, train_spk):
            shutil.copy(os.path.join(samples, src), sc / label / f"{spk}_nohash_0.wav")
    (sc / "_unknown_").mkdir()
    shutil.copy(os.path.join(samples, "sc_backward.wav"), sc / "_unknown_" / f"backward_{dev_spk}_nohash_0.wav")
    (sc / "_silence_").mkdir()
    silence_spk = _speaker_in(0.25, 0.35, "silence-n")  # a _silence_ clip's speaker is "silence-<name>"
    shutil.copy(os.path.join(samples, "sc_background_noise.wav"),
                sc / "_silence_" / f"{silence_spk[len('silence-'):]}_nohash_0.wav")
    fsdd = root / "fsdd"
    fsdd.mkdir()
    for spk in ("nicolas", "george"):
        shutil.copy(os.path.join(samples, "fsdd_seven_george.wav"), fsdd / f"7_{spk}_0.wav")
        shutil.copy(os.path.join(samples, "fsdd_three_george.wav"), fsdd / f"3_{spk}_0.wav")
    return dev_spk


def test_yardstick_counts_each_part_and_refuses_models_that_heard_it(tmp_path):
    import json

    from speechlstm import load_model
    from speechlstm.data import write_manifest

    data = tmp_path / "data"
    _fake_corpora(data)
    shipped = load_model()
    # a copy of the shipped network whose training manifest lists one of nicolas's clips
    heard = write_manifest([{"path": str(data / "fsdd" / "7_nicolas_0.wav"), "text": "seven"}], tmp_path / "train.jsonl")
    training = dict(shipped.meta["training"], config=dict(shipped.meta["training"]["config"], train=[heard]))
    leaky = shipped.save(str(tmp_path / "leaky.npz"), training=training)
    # and one whose training manifest holds a clip of a held-out synthetic voice
    voiced = write_manifest([{"path": str(data / "fsdd" / "3_george_0.wav"), "text": "three",
                              "speaker": "espeak-ng:en-029+f3:r1.00:p1.00"}], tmp_path / "voiced.jsonl")
    training = dict(shipped.meta["training"], config=dict(shipped.meta["training"]["config"], train=[voiced]))
    accented = shipped.save(str(tmp_path / "accented.npz"), training=training)
    # and one that heard nicolas only inside a joined recording (--real-sequences)
    joined = write_manifest([{"path": str(tmp_path / "seq_00000.wav"), "text": "seven three", "speaker": "nicolas",
                              "joined": [str(data / "fsdd" / "7_nicolas_0.wav"), str(data / "fsdd" / "3_nicolas_0.wav")]}],
                            tmp_path / "joined.jsonl")
    training = dict(shipped.meta["training"], config=dict(shipped.meta["training"]["config"], train=[joined]))
    rejoined = shipped.save(str(tmp_path / "rejoined.npz"), training=training)
    (tmp_path / "bad.npz").write_text("not a model")
    r = _run_pipeline("yardstick.py", "commands", leaky, accented, rejoined, tmp_path / "bad.npz", "--baseline",
                      "commands-stream", "--data", data, "--work", tmp_path / "work", "--synth-dev", "5", "--real-dev", "4")
    assert r.returncode == 1, r.stderr  # four models skipped, the shipped one scored
    err = [line for line in r.stderr.strip().splitlines() if line.startswith("yardstick.py: error: ")]  # not the progress bars
    assert len(err) == 4
    assert err[0].startswith(f"yardstick.py: error: {leaky}: its training manifest {heard} holds 1 of the yardstick's clips")
    assert err[1].startswith(f"yardstick.py: error: {accented}: its training manifest {voiced} holds 1 clip(s) of "
                             "the held-out synthetic voices")
    assert err[2].startswith(f"yardstick.py: error: {rejoined}: its training manifest {joined} holds 2 of the yardstick's clips")
    assert err[3].startswith(f"yardstick.py: error: {tmp_path / 'bad.npz'}: ") and err[3].endswith(" (skipped)")
    summary = json.loads((tmp_path / "work" / "yardstick.json").read_text())
    assert summary["sizes"] == {"dev": 5, "devtrim": 5, "fsdd": 2, "synth": 5, "real": 4}
    (row,) = summary["models"]
    assert row["model"] == "commands" and row["Y"] == sum(row["parts"].values())
    # each part counted against the plain classify of every clip (the reference)
    from speechlstm.data import COMMAND_CLASSES
    from speechlstm.metrics import command_class

    def right_12(rows):  # truth: the folder's class (or the word's); guess: classify's word, mapped alike
        truth = [q["label"] if q.get("label") in COMMAND_CLASSES else command_class(q["text"], COMMAND_CLASSES[:10])
                 for q in rows]
        labels = [shipped.classify(q["path"])["label"] for q in rows]
        guess = [command_class("" if w == "_silence_" else w, COMMAND_CLASSES[:10]) for w in labels]
        return sum(t == g for t, g in zip(truth, guess))

    dev_rows = [json.loads(line) for line in (tmp_path / "work" / "devtrim" / "trimmed.jsonl").read_text().splitlines()]
    assert len(dev_rows) == 5 and sum(1 for q in dev_rows if str(tmp_path / "work" / "devtrim") in q["path"]) == 4
    assert row["parts"]["devtrim"] == right_12(dev_rows)
    originals = [dict(q, path=str(data / "speech_commands_v2_half" / q["label"] / os.path.basename(q["path"]).split("_", 1)[1]))
                 if q.get("text") else q for q in dev_rows]
    assert row["parts"]["dev"] == right_12(originals)
    digits = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    fsdd_right = sum(shipped.classify(str(data / "fsdd" / f"{d}_nicolas_0.wav"), digits, no_speech=False)["label"] == w
                     for d, w in ((7, "seven"), (3, "three")))
    assert row["parts"]["fsdd"] == fsdd_right
    assert row["comparison"]["fsdd"]["utterances"] == 2 and row["comparison"]["dev"]["utterances"] == 5
    # the synthetic dev part: held-out voices only, transcribed, outside Y, paired over sequences
    from speechlstm.metrics import error_counts

    synth = [json.loads(line) for line in (tmp_path / "work" / "synth_dev" / "synth_dev.jsonl").read_text().splitlines()]
    assert len(synth) == 5 and all(q["speaker"].split(":")[1].split("+")[0] in ("en-029", "en-us-nyc", "rms") for q in synth)
    hyps = [shipped.transcribe(q["path"])["text"] for q in synth]
    errors = sum(error_counts([q["text"]], [h], "word")[0] for q, h in zip(synth, hyps))
    assert row["synth"]["word_errors"] == errors and row["synth"]["words"] == sum(len(q["text"].split()) for q in synth)
    assert row["synth"]["sequences_right"] == sum(q["text"] == h for q, h in zip(synth, hyps))
    assert row["comparison"]["synth"]["utterances"] == 5
    assert f"synth-dev WER {100 * row['synth']['wer']:.2f} % ({errors}/" in r.stdout
    # the real-voice dev part: two recordings joined from the dev speaker's word clips, two from nicolas's digits
    real = [json.loads(line) for line in (tmp_path / "work" / "real_dev" / "real_dev.jsonl").read_text().splitlines()]
    dev_spk = next(q["speaker"] for q in dev_rows if q.get("text"))
    assert [q["speaker"] for q in real] == [dev_spk] * 2 + ["nicolas"] * 2
    assert all(2 <= len(q["text"].split()) == len(q["joined"]) for q in real)
    hyps = [shipped.transcribe(q["path"])["text"] for q in real]
    assert row["real"]["word_errors"] == sum(error_counts([q["text"]], [h], "word")[0] for q, h in zip(real, hyps))
    assert row["comparison"]["real"]["utterances"] == 4 and "real-dev WER " in r.stdout
    assert f"commands: Y = {row['Y']} | dev {row['parts']['dev']}/5" in r.stdout
    assert "commands-stream (baseline): Y = " in r.stdout
    # --fsdd-speaker none: Y is dev + dev-trim, real-dev is joined from the dev speakers alone (the same first
    # recordings), so models that heard every FSDD speaker but george can be compared
    r = _run_pipeline("yardstick.py", "commands", "--fsdd-speaker", "none", "--data", data, "--work", tmp_path / "w1",
                      "--synth-dev", "0", "--real-dev", "3")
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "w1" / "yardstick.json").read_text())
    assert summary["sizes"] == {"dev": 5, "devtrim": 5, "real": 3}
    (none_row,) = summary["models"]
    assert none_row["parts"] == {"dev": row["parts"]["dev"], "devtrim": row["parts"]["devtrim"]}
    assert none_row["Y"] == row["parts"]["dev"] + row["parts"]["devtrim"]
    real_none = [json.loads(line) for line in (tmp_path / "w1" / "real_dev" / "real_dev.jsonl").read_text().splitlines()]
    assert [q["speaker"] for q in real_none] == [dev_spk] * 3
    assert [q["joined"] for q in real_none[:2]] == [q["joined"] for q in real[:2]]
    assert "Y over 10 clips: dev 5, dev-trim 5 (no FSDD part)" in r.stdout and " fsdd " not in r.stdout
    # the test speaker, and a speaker not in the corpus, are refused before any work
    for spk, msg in (("george", "'george' is the FSDD test speaker"), ("zed", "'zed' is not an FSDD speaker here")):
        r = _run_pipeline("yardstick.py", "commands", "--fsdd-speaker", spk, "--data", data, "--work", tmp_path / "w2")
        assert r.returncode == 2 and msg in r.stderr and "--fsdd-speaker" in r.stderr


def test_noise_clips_are_one_set_and_kept(build, tmp_path):
    """The noise-only clips do not depend on the build's seed or on which build came first, and a
    second call leaves the files alone (nothing is rewritten)."""
    a = build.noise_clips(str(tmp_path / "a"), n=4)
    stamps = [os.stat(r["path"]).st_mtime_ns for r in a]
    again = build.noise_clips(str(tmp_path / "a"), n=4)
    assert again == a and [os.stat(r["path"]).st_mtime_ns for r in again] == stamps
    b = build.noise_clips(str(tmp_path / "b"), n=4)
    for ra, rb in zip(a, b):
        assert open(ra["path"], "rb").read() == open(rb["path"], "rb").read()
        assert ra["text"] == "" and ra["duration"] == 1.0
    assert len({open(r["path"], "rb").read() for r in a}) == 4  # four different clips


def test_l1_set_is_foreign_accented_seeded_and_never_a_held_out_voice(build, tmp_path):
    """The --l1-* set: every voice an espeak-ng-l1 voice, the same files for a seed, other texts for
    another seed, and none of its rows is taken for a held-out synthetic voice by the yardstick."""
    from speechlstm.data import SPEECH_COMMANDS_WORDS

    a = build.l1_synthetic_set(str(tmp_path / "a"), 6, 1, 4, 2)
    b = build.l1_synthetic_set(str(tmp_path / "b"), 6, 1, 4, 2)
    c = build.l1_synthetic_set(str(tmp_path / "c"), 7, 1, 4, 2)
    assert len(a) == len(SPEECH_COMMANDS_WORDS) + 4
    assert [r["text"] for r in a[:len(SPEECH_COMMANDS_WORDS)]] == list(SPEECH_COMMANDS_WORDS)
    assert all(r["voice"]["engine"] == "espeak-ng-l1" and r["speaker"].startswith("espeak-ng-l1:") for r in a)
    assert not any(build.held_out_voice(r["speaker"]) for r in a)
    assert [(r["text"], r["speaker"]) for r in a] == [(r["text"], r["speaker"]) for r in b]
    assert all(open(ra["path"], "rb").read() == open(rb["path"], "rb").read() for ra, rb in zip(a, b))
    assert [r["text"] for r in a[-4:]] != [r["text"] for r in c[-4:]]


def _options_reaching_build_network(build, monkeypatch, tmp_path, *args):
    """The options main() hands build_network for ``args`` (stopped there, before any work)."""
    from click.testing import CliRunner

    seen = {}

    class Stop(Exception):
        pass

    def fake_build_network(**kw):
        seen.update(kw)
        raise Stop

    monkeypatch.setattr(build, "build_network", fake_build_network)
    r = CliRunner().invoke(build.main, ["--work", str(tmp_path), "--export", "", *args])
    assert isinstance(r.exception, Stop), r.output
    return seen


@pytest.mark.parametrize("args, expected", [([], "cepstra"), (["--freq-masks", "mel"], "mel"),
                                           (["--freq-masks", "both"], "both"), (["--freq-masks", "none"], "none")])
def test_freq_masks_option_reaches_the_trainer(build, monkeypatch, tmp_path, args, expected):
    from click.testing import CliRunner

    seen = _options_reaching_build_network(build, monkeypatch, tmp_path, *args)
    assert seen["freq_masks"] == expected and seen["cepstral_mask_max"] == 3
    bad = CliRunner().invoke(build.main, ["--work", str(tmp_path), "--freq-masks", "bands"])
    assert bad.exit_code == 2 and "'bands' is not one of 'cepstra', 'mel', 'both', 'none'" in bad.output


def test_cepstral_mask_max_reaches_the_trainer_and_is_checked(build, monkeypatch, tmp_path):
    from click.testing import CliRunner

    seen = _options_reaching_build_network(build, monkeypatch, tmp_path, "--cepstral-mask-max", "5")
    assert seen["cepstral_mask_max"] == 5
    bad = CliRunner().invoke(build.main, ["--work", str(tmp_path), "--cepstral-mask-max", "-1"])
    assert bad.exit_code == 2 and "--cepstral-mask-max" in bad.output


def test_lr_and_batch_size_reach_the_trainer_and_are_checked(build, monkeypatch, tmp_path):
    from click.testing import CliRunner

    from speechlstm.train import TrainConfig

    seen = _options_reaching_build_network(build, monkeypatch, tmp_path)
    assert (seen["lr"], seen["batch_size"]) == (TrainConfig.lr, TrainConfig.batch_size)  # every earlier build's
    seen = _options_reaching_build_network(build, monkeypatch, tmp_path, "--lr", "1e-3", "--batch-size", "16")
    assert (seen["lr"], seen["batch_size"]) == (1e-3, 16)
    for bad, name in ((["--lr", "0"], "--lr"), (["--batch-size", "0"], "--batch-size")):
        r = CliRunner().invoke(build.main, ["--work", str(tmp_path), *bad])
        assert r.exit_code == 2 and name in r.output


@pytest.mark.parametrize("args, message", [
    (["--lr", "nan"], "'nan' is not a finite number"),
    (["--fmax", "inf"], "'inf' is not a finite number"),
    (["--p-trim", "2"], "p_trim must be a number in [0, 1], got 2.0"),
    (["--p-trim", "0.4", "--trim-max", "-0.1"], "trim_s must be a (low, high) range"),
    (["--ema", "1"], "ema must be a number in [0, 1), got 1.0"),
    (["--dropout", "-0.1"], "dropout must be a number in [0, 1), got -0.1"),
    (["--average-best", "1"], "average_best must be 0 (off) or a number of epochs >= 2, got 1"),
    (["--seeds", "1,-2"], "seed must be an integer >= 0, got -2"),
    (["--layers", "0"], "num_layers must be an integer >= 1, got 0"),
    (["--select-by", "wer"], None),  # a build always has a dev set: accepted
])
def test_build_checks_training_options_before_any_work(build, monkeypatch, tmp_path, args, message):
    """A value the trainer would refuse is refused by the build's first line of work, not after the
    synthesis and features (hours from nothing), and leaves no work folder behind."""
    from click.testing import CliRunner

    if message is None:
        assert _options_reaching_build_network(build, monkeypatch, tmp_path / "w", *args)["select_by"] == "wer"
        return
    monkeypatch.setattr(build, "build_network", lambda **kw: pytest.fail("reached build_network"))
    r = CliRunner().invoke(build.main, ["--work", str(tmp_path / "w"), "--export", "", *args])
    assert r.exit_code == 2 and message in r.output, r.output
    assert not (tmp_path / "w").exists()


def test_real_sequence_set_joins_one_speakers_single_words(build, tmp_path):
    """--real-sequences: each recording is 2..6 one-word clips of one speaker (a speaker with one clip, a
    two-word clip and a no-speech clip take no part), its transcript the words in order; the same bytes for
    a seed, other recordings for another; nothing for n = 0 or when no speaker has two clips."""
    import soundfile as sf

    samples = os.path.join(os.path.dirname(__file__), os.pardir, "audio_samples")
    rows = [{"path": os.path.join(samples, f), "text": t, "speaker": s} for f, t, s in (
        ("sc_yes.wav", "yes", "a"), ("sc_stop.wav", "stop", "a"), ("sc_left.wav", "left", "a"),
        ("fsdd_seven_george.wav", "seven", "b"), ("go_left_stop.wav", "go left stop", "b"),
        ("sc_background_noise.wav", "", "b"))]
    out = build.real_sequence_set(rows, 12, 3, str(tmp_path / "a"))
    assert len(out) == 12 and all(r["speaker"] == "a" for r in out)
    words = {"yes", "stop", "left"}
    for r in out:
        ws = r["text"].split()
        assert 2 <= len(ws) <= 3 and len(set(ws)) == len(ws) and set(ws) <= words
        assert [os.path.basename(p) for p in r["joined"]] == [f"sc_{w}.wav" for w in ws]
        assert sf.info(r["path"]).samplerate == 16000 and abs(sf.info(r["path"]).duration - r["duration"]) < 1e-3
    again = build.real_sequence_set(rows, 12, 3, str(tmp_path / "b"))
    assert [open(r["path"], "rb").read() for r in again] == [open(r["path"], "rb").read() for r in out]
    assert [r["text"] for r in build.real_sequence_set(rows, 12, 4, str(tmp_path / "c"))] != [r["text"] for r in out]
    assert build.real_sequence_set(rows, 0, 3, str(tmp_path / "d")) == []
    assert build.real_sequence_set(rows[3:], 5, 3, str(tmp_path / "e")) == []


def test_real_sequences_option_reaches_build_network(build, monkeypatch, tmp_path):
    from click.testing import CliRunner

    assert _options_reaching_build_network(build, monkeypatch, tmp_path)["real_sequences"] == 0
    assert _options_reaching_build_network(build, monkeypatch, tmp_path, "--real-sequences", "2000")["real_sequences"] == 2000
    bad = CliRunner().invoke(build.main, ["--work", str(tmp_path), "--real-sequences", "-1"])
    assert bad.exit_code == 2 and "-1 is not in the range x>=0" in bad.output
