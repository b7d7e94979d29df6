import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from speechlstm.cli import main
from speechlstm.metrics import (bootstrap_rate_interval, cer, command_class, confusion_matrix, edit_distance,
                                mcnemar_exact, paired_bootstrap_difference, wer, wilson_interval)

from samples import SAMPLES


def test_error_rates():
    assert edit_distance("kitten".split(), "kitten".split()) == 0
    assert edit_distance(list("kitten"), list("sitting")) == 3
    assert wer(["a b c d"], ["a x c"]) == pytest.approx(2 / 4)
    assert cer(["abc"], ["abd"]) == pytest.approx(1 / 3)
    assert wer(["go left", "stop"], ["go left", "stop"]) == 0.0


def test_wilson_interval_against_scipy():
    from scipy.stats import binomtest

    for k, n in ((81, 100), (216, 249), (0, 10), (10, 10), (1, 3), (464, 500)):
        ref = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert wilson_interval(k, n) == pytest.approx((ref.low, ref.high), abs=1e-6), (k, n)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    lo, hi = wilson_interval(217, 249)  # the shipped model on the v0.01 sample: 87.1 %, about +-4 points
    assert 0.82 < lo < 217 / 249 < hi < 0.91


def test_bootstrap_rate_interval():
    rng = np.random.default_rng(1)
    lengths = rng.integers(2, 7, size=300)
    errors = (rng.random(300) < 0.15).astype(int)  # ~4 % of the words wrong, one word per bad sequence
    rate = errors.sum() / lengths.sum()
    lo, hi = bootstrap_rate_interval(errors, lengths)
    assert lo < rate < hi and hi - lo < 0.05
    assert bootstrap_rate_interval(errors, lengths) == (lo, hi)  # deterministic for a seed
    assert bootstrap_rate_interval(errors, lengths, seed=1) != (lo, hi)
    lo4, hi4 = bootstrap_rate_interval(np.tile(errors, 4), np.tile(lengths, 4))
    assert 0.35 < (hi4 - lo4) / (hi - lo) < 0.65  # four times the data: about half the width
    lo99, hi99 = bootstrap_rate_interval(errors, lengths, level=0.99)
    assert lo99 <= lo and hi99 >= hi
    assert bootstrap_rate_interval([1, 1, 1], [4, 4, 4]) == pytest.approx((0.25, 0.25))  # no spread, no width
    assert bootstrap_rate_interval([], []) == (0.0, 0.0)


def test_mcnemar_and_paired_difference():
    from scipy.stats import binomtest

    for a, b in ((3, 10), (0, 5), (20, 20), (7, 1), (100, 130), (0, 0)):
        ref = binomtest(min(a, b), a + b, 0.5).pvalue if a + b else 1.0
        assert mcnemar_exact(a, b) == pytest.approx(ref, rel=1e-9), (a, b)
    assert mcnemar_exact(0, 9) < 0.01 < mcnemar_exact(2, 9)
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 3)
    rng = np.random.default_rng(0)
    base = (rng.random(400) < 0.10).astype(float)  # a 10 % error rate
    better = base * (rng.random(400) < 0.5)  # the same items, half its errors mended
    d, lo, hi = paired_bootstrap_difference(better, base, np.ones(400))
    assert d == pytest.approx((better.sum() - base.sum()) / 400) and lo < d < hi < 0  # paired: clearly better
    assert paired_bootstrap_difference(base, base, np.ones(400)) == (0.0, 0.0, 0.0)  # identical: no spread
    other = (rng.random(400) < 0.10).astype(float)  # as good, different items: the interval holds 0
    d, lo, hi = paired_bootstrap_difference(other, base, np.ones(400))
    assert lo < 0 < hi
    with pytest.raises(ValueError):
        paired_bootstrap_difference([1, 0], [1], [1, 1])


def test_command_classes_and_confusion():
    classes = "yes no up down left right on off stop go".split()
    assert command_class("", classes) == "_silence_"
    assert command_class("yes", classes) == "yes"
    assert command_class("marvin", classes) == "_unknown_"
    cm = confusion_matrix(["a", "b", "b"], ["a", "a", "b"], ["a", "b"])
    assert cm.tolist() == [[1, 0], [1, 1]]


@pytest.mark.parametrize("task", ["transcribe", "classify", "kws"])
def test_evaluate_cli_writes_reports(task, tmp_path):
    out = tmp_path / task
    args = ["evaluate", "--data", os.path.join(SAMPLES, "manifest.jsonl"), "--task", task, "--report", str(out)]
    if task == "kws":
        args += ["--keywords", "yes,stop,left,seven,go"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    rep = json.load(open(out / "report.json"))
    assert rep["utterances"] == 13
    md = open(out / "report.md").read()
    if task == "transcribe":
        assert 0 <= rep["wer"] <= 1 and rep["rtf"] > 0 and "wer" in md
        assert rep["wer_ci95"][0] <= rep["wer"] <= rep["wer_ci95"][1]
        k = round(rep["sentence_accuracy"] * 13)
        assert rep["sentence_accuracy_ci95"] == pytest.approx(list(wilson_interval(k, 13)))
    elif task == "classify":
        cm = np.array(rep["confusion"])
        assert cm.shape == (12, 12) and cm.sum() == 13 and os.path.exists(out / "confusion.png")
        assert rep["accuracy_ci95"] == pytest.approx(list(wilson_interval(int(np.trace(cm)), 13)))
        assert f"**accuracy**: {rep['accuracy']:.4f} (95 % interval {rep['accuracy_ci95'][0]:.4f}–" in md
    else:
        assert rep["positives"] >= 5 and os.path.exists(out / "det.png")
        assert 0 <= rep["miss_rate_at_0.5_fa_per_hour"] <= 1
        assert all(0 <= c["miss_rate"] <= 1 for c in rep["curve"])


def test_model_suite_reports_every_set(tmp_path):
    """The held-out suite of the build pipeline: headline metrics per set, digits decoded both with
    the model's vocabulary and with a digits-only word list, a report folder per set."""
    from speechlstm.data import read_any, write_manifest
    from speechlstm.evaluate import DIGIT_WORDS, evaluate_model_suite
    from speechlstm.model import MODELS_DIR, load_model

    rows = read_any(os.path.join(os.path.dirname(__file__), "..", "audio_samples", "manifest.jsonl"))
    digits = [r for r in rows if set(r["text"].split()) <= {"one", "two", "three", "four"}]
    words = [r for r in rows if len(r["text"].split()) == 1]
    assert digits and words
    m = {"test_fsdd": write_manifest(digits, str(tmp_path / "d.jsonl")),
         "test_sc": write_manifest(words, str(tmp_path / "w.jsonl"))}
    out = evaluate_model_suite(os.path.join(MODELS_DIR, "commands.npz"), m, str(tmp_path / "eval"))
    model = load_model()
    for key, kw in (("fsdd_digit_accuracy", {}), ("fsdd_digit_accuracy_digit_words", {"words": DIGIT_WORDS})):
        expect = np.mean([model.transcribe(r["path"], **kw)["text"] == r["text"] for r in digits])
        assert out[key] == pytest.approx(expect), key
    single = [r for r in digits if r["text"] in DIGIT_WORDS]  # closed-set classification: one-digit clips only
    labels = [model.classify(r["path"], DIGIT_WORDS, no_speech=False)["label"] for r in single]
    assert len(single) < len(digits) and out["test_fsdd_classify_utterances"] == len(single)
    assert out["fsdd_digit_accuracy_classify"] == pytest.approx(np.mean([lab == r["text"] for lab, r in zip(labels, single)]))
    n_right = sum(lab == r["text"] for lab, r in zip(labels, single))
    assert out["fsdd_digit_accuracy_classify_ci95"] == pytest.approx(list(wilson_interval(n_right, len(single))), abs=1e-4)
    from speechlstm.data import COMMAND_CLASSES
    from speechlstm.metrics import command_class

    sc = [command_class(model.classify(r["path"])["label"].replace("_silence_", ""), COMMAND_CLASSES[:10]) for r in words]
    assert out["sc_v2_12class_accuracy"] == pytest.approx(
        np.mean([p == command_class(r["text"], COMMAND_CLASSES[:10]) for p, r in zip(sc, words)]))
    assert out["test_fsdd_utterances"] == len(digits)
    assert "sc_sample_12class_accuracy" not in out  # sets not given are skipped
    for d in ("test_fsdd", "test_fsdd_digits", "test_fsdd_classify", "test_sc"):
        assert os.path.exists(tmp_path / "eval" / d / "report.md")


def test_closed_set_classify_with_words(tmp_path):
    """--task classify --words: the candidates are the classes, each row's text its truth; a text
    outside the candidates is an error, not a silent miss."""
    from click.testing import CliRunner

    from speechlstm.cli import main
    from speechlstm.data import read_any, write_manifest

    rows = [r for r in read_any(os.path.join(SAMPLES, "manifest.jsonl")) if r["text"] in ("yes", "left", "stop", "seven")]
    man = write_manifest(rows, str(tmp_path / "m.jsonl"))
    r = CliRunner().invoke(main, ["evaluate", "--data", man, "--task", "classify", "--words", "yes,left,stop,seven,no",
                                  "--no-silence", "--report", str(tmp_path / "rep")])
    assert r.exit_code == 0, r.output
    rep = json.load(open(tmp_path / "rep" / "report.json"))
    assert rep["classes"] == ["yes", "left", "stop", "seven", "no"]
    cm = np.array(rep["confusion"])
    assert cm.sum() == len(rows) and rep["accuracy"] == pytest.approx(np.trace(cm) / len(rows))
    assert rep["accuracy"] == 1.0  # real clips of four distinct words
    r = CliRunner().invoke(main, ["evaluate", "--data", man, "--task", "classify", "--words", "yes,no",
                                  "--report", str(tmp_path / "rep2")])
    assert r.exit_code != 0 and "outside the candidate words" in r.output


def test_evaluate_against_a_baseline(tmp_path):
    """--baseline scores a second model on the same utterances and compares them pairwise; the counts
    agree with the two reports' own per-utterance results."""
    from speechlstm.errors import ParameterError
    from speechlstm.evaluate import compare

    out = tmp_path / "cmp"
    args = ["evaluate", "--data", os.path.join(SAMPLES, "manifest.jsonl"), "--task", "classify", "--report", str(out),
            "--model", "commands-distilled", "--baseline", "commands"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    rep = json.load(open(out / "report.json"))
    base = json.load(open(out / "baseline" / "report.json"))
    c = rep["comparison"]
    assert c["baseline"] == "commands" and c["model"] == "commands-distilled" and c["utterances"] == 13
    assert c["value"] == pytest.approx(rep["accuracy"]) and c["baseline_value"] == pytest.approx(base["accuracy"])
    wrong_a = {u["path"]: u["errors"] for u in rep["per_utterance"]}
    wrong_b = {u["path"]: u["errors"] for u in base["per_utterance"]}
    assert c["only_model_right"] == sum(1 for p in wrong_a if wrong_a[p] == 0 < wrong_b[p])
    assert c["only_baseline_right"] == sum(1 for p in wrong_a if wrong_b[p] == 0 < wrong_a[p])
    assert c["error_rate_difference"] == pytest.approx(base["accuracy"] - rep["accuracy"])
    lo, hi = c["error_rate_difference_ci95"]
    assert lo <= c["error_rate_difference"] <= hi
    assert "Against the baseline `commands`" in open(out / "report.md").read()
    assert json.loads(r.output.splitlines()[1])["mcnemar_p"] == c["mcnemar_p"]
    # transcribe results compare by word errors; a model against itself differs nowhere
    r = CliRunner().invoke(main, ["evaluate", "--data", os.path.join(SAMPLES, "manifest.jsonl"), "--task", "transcribe",
                                  "--report", str(tmp_path / "t"), "--baseline", "commands"])
    assert r.exit_code == 0, r.output
    same = json.load(open(tmp_path / "t" / "report.json"))["comparison"]
    assert same["metric"] == "wer" and same["error_rate_difference"] == 0.0 and same["mcnemar_p"] == 1.0
    assert same["value"] == pytest.approx(json.load(open(tmp_path / "t" / "report.json"))["wer"])
    # two files that carry one name (a retrained "commands") are told apart by their paths
    one = {"task": "classify", "model": "commands", "per_utterance": [{"path": "a.wav", "ref": "go", "hyp": "go",
                                                                       "errors": 0, "length": 1}]}
    c = compare(dict(one, model_path="runs/x/model.npz"), dict(one, model_path="/pkg/commands.npz"))
    assert (c["model"], c["baseline"]) == ("runs/x/model.npz", "/pkg/commands.npz")
    with pytest.raises(ParameterError, match="share no utterance"):
        compare(one, dict(one, per_utterance=[dict(one["per_utterance"][0], path="b.wav")]))
    with pytest.raises(ParameterError, match="a.wav: the two results hold different references"):
        compare(one, dict(one, per_utterance=[dict(one["per_utterance"][0], ref="no")]))
    with pytest.raises(ParameterError, match="two transcribe or two classify"):
        compare(rep, {"task": "kws"})
    r = CliRunner().invoke(main, ["evaluate", "--data", os.path.join(SAMPLES, "manifest.jsonl"), "--task", "kws",
                                  "--report", str(tmp_path / "k"), "--baseline", "commands"])
    assert r.exit_code == 1 and "--baseline compares transcribe or classify results, not kws" in r.output


@pytest.mark.parametrize("task", ["classify", "kws"])
def test_evaluate_reports_bad_files_and_goes_on(task, tmp_path):
    """A non-audio file and a missing one: one line each on stderr, the good file still evaluated and
    the report written, then exit status 1 (kws used to skip bad files without a word)."""
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    rows = [{"path": str(bad), "text": "yes"}, {"path": str(tmp_path / "missing.wav"), "text": "no"},
            {"path": os.path.join(SAMPLES, "sc_yes.wav"), "text": "yes"}]
    man = tmp_path / "m.jsonl"
    man.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["evaluate", "--data", str(man), "--task", task, "--report", str(tmp_path / "rep")]
    args += ["--keywords", "yes,no"] if task == "kws" else ["--baseline", "commands-distilled"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1
    errors = r.stderr.strip().splitlines()
    assert len(errors) == 2 and errors[0].startswith(f"speechlstm: error: {bad}: ") and "missing.wav" in errors[1], errors
    rep = json.load(open(tmp_path / "rep" / "report.json"))
    assert [f["path"] for f in rep["failures"]] == [str(bad), str(tmp_path / "missing.wav")]
    if task == "classify":
        assert rep["accuracy"] == 1.0 and rep["comparison"]["utterances"] == 1  # the good clip, in both models
    else:
        assert rep["positives"] == 1  # only the good clip's "yes" counted
    md = open(tmp_path / "rep" / "report.md").read()
    assert f"- {bad}: not a readable audio file" in md and f"{bad}: {bad}" not in md


def test_evaluate_a_csv_with_a_bad_clip_goes_on(tmp_path):
    """``--data list.csv`` with an unreadable clip used to stop in the CSV reader (which opened every clip
    for its duration) before any clip was evaluated; now the good clip is scored and the bad one named."""
    bad = tmp_path / "empty.wav"
    bad.write_bytes(b"")
    (tmp_path / "l.csv").write_text(f"path,text\n{bad},no\n{os.path.join(SAMPLES, 'sc_yes.wav')},yes\n")
    r = CliRunner().invoke(main, ["evaluate", "--data", str(tmp_path / "l.csv"), "--task", "classify",
                                  "--report", str(tmp_path / "rep")])
    assert r.exit_code == 1, r.output
    errors = r.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith(f"speechlstm: error: {bad}: "), errors
    rep = json.load(open(tmp_path / "rep" / "report.json"))
    assert [f["path"] for f in rep["failures"]] == [str(bad)] and rep["accuracy"] == 1.0  # scored on the good clip
