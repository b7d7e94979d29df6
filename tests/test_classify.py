"""Closed-set classification by CTC likelihood: kws.classify_scores, Model.classify, the CLI."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import naive
from samples import SAMPLES, known_errors
from speechlstm import ParameterError
from speechlstm.alphabet import Alphabet
from speechlstm.kws import NO_SPEECH, classify_scores

MISTAKES = known_errors("commands")  # the default's documented mistakes: file -> what it hears


def _log_softmax(z):
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


@pytest.mark.parametrize("T", [1, 3, 6])
def test_log_likelihoods_equal_the_sum_over_every_path(T):
    """Each candidate's score is log p(text | clip) summed over every CTC path, as the brute force
    enumeration of all C**T paths gives it; repeated letters need a blank between them."""
    a = Alphabet(" ab")
    z = np.random.default_rng(T).standard_normal((T, len(a)))
    cands = ["a", "b", "aa", "ab", "b a", "abab", NO_SPEECH]
    res = classify_scores(_log_softmax(z), cands, a)
    assert [r["text"] for r in res] == sorted(cands, key=lambda c: -next(r["log_likelihood"] for r in res
                                                                         if r["text"] == c))
    for r in res:
        target = [] if r["text"] == NO_SPEECH else list(a.encode(r["text"]))
        ref = -naive.ctc_loss_bruteforce(z, np.array(target, np.int64))
        if np.isinf(ref):  # longer than the clip allows ("aa" needs 3 frames, "abab" 4)
            assert r["log_likelihood"] == -np.inf and r["probability"] == 0.0
        else:
            assert r["log_likelihood"] == pytest.approx(ref, rel=1e-10, abs=1e-10)
    finite = [r for r in res if np.isfinite(r["log_likelihood"])]
    assert sum(r["probability"] for r in res) == pytest.approx(1.0)
    ll = np.array([r["log_likelihood"] for r in finite])
    post = np.exp(ll - ll.max()) / np.exp(ll - ll.max()).sum()
    assert [r["probability"] for r in finite] == pytest.approx(post.tolist())


def test_classify_scores_picks_the_spoken_word_from_peaked_posteriors():
    """Frames that spell 'no' (with blanks around) make 'no' win over 'on', 'go' and silence."""
    a = Alphabet()
    T = 12
    p = np.full((T, len(a)), 1e-4)
    seq = [0, 0, "n", "n", 0, "o", "o", 0, 0, 0, 0, 0]
    for t, s in enumerate(seq):
        p[t, a.blank if s == 0 else a.encode(s)[0]] = 1.0
    lp = np.log(p / p.sum(1, keepdims=True))
    res = classify_scores(lp, ["on", "go", "no", NO_SPEECH], a)
    assert res[0]["text"] == "no" and res[0]["probability"] > 0.99
    sil = classify_scores(np.log(np.where(np.arange(len(a)) == a.blank, 0.99, 0.01 / (len(a) - 1)))[None]
                          .repeat(T, 0), ["on", "no", NO_SPEECH], a)
    assert sil[0]["text"] == NO_SPEECH


@pytest.mark.parametrize("cands,msg", [([], "non-empty"), ("yes", "non-empty"), (["yes", "Yes!"], "same text"),
                                      (["yes", "?"], "no letters")])
def test_classify_scores_validates_candidates(cands, msg):
    a = Alphabet()
    with pytest.raises(ParameterError, match=msg):
        classify_scores(np.log(np.full((5, len(a)), 1 / len(a))), cands, a)


def test_classify_scores_validates_log_probs():
    a = Alphabet()
    with pytest.raises(ParameterError, match="must be"):
        classify_scores(np.zeros((5, 3)), ["yes"], a)
    with pytest.raises(ParameterError, match="no frames"):
        classify_scores(np.zeros((0, len(a))), ["yes"], a)
    bad = np.log(np.full((5, len(a)), 1 / len(a)))
    bad[2, 3] = np.nan
    with pytest.raises(ParameterError, match="NaN"):
        classify_scores(bad, ["yes"], a)


def test_model_classify_on_real_clips():
    """The shipped model names the word of real single-word clips (all but any mistake documented
    in audio_samples/shipped_model_errors.tsv, which it must still make exactly) and calls
    background noise 'no speech'; candidates can be narrowed, and the scores agree with classify_scores."""
    from speechlstm import load_model

    m = load_model()
    for name, word in (("sc_yes.wav", "yes"), ("sc_left.wav", "left"), ("sc_stop.wav", "stop"),
                       ("sc_backward.wav", "backward"), ("fsdd_seven_george.wav", "seven")):
        res = m.classify(os.path.join(SAMPLES, name))
        assert res["label"] == MISTAKES.get(name, word) and (name not in MISTAKES or word != MISTAKES[name]), (
            name, res["scores"][:3])
        assert len(res["scores"]) == len(m.vocabulary) + 1
        assert sum(s["probability"] for s in res["scores"]) == pytest.approx(1.0, abs=1e-3)
    assert m.classify(os.path.join(SAMPLES, "sc_background_noise.wav"))["label"] == NO_SPEECH
    digits = m.classify(os.path.join(SAMPLES, "fsdd_three_george.wav"), "zero one two three four five six seven "
                        "eight nine", no_speech=False)
    assert digits["label"] == "three" and {s["text"] for s in digits["scores"]} == set(
        "zero one two three four five six seven eight nine".split())
    lp, _ = m.log_probs(os.path.join(SAMPLES, "sc_yes.wav"))
    ref = classify_scores(lp, ["yes", "no"], m.alphabet)
    res = m.classify(os.path.join(SAMPLES, "sc_yes.wav"), ["yes", "no"], no_speech=False)
    assert [s["text"] for s in res["scores"]] == [r["text"] for r in ref]
    assert res["scores"][0]["log_likelihood"] == pytest.approx(ref[0]["log_likelihood"], abs=1e-4)


@pytest.mark.parametrize("words", [[], "", " , "])
def test_model_classify_refuses_an_empty_candidate_list(words):
    """An empty list left "no speech" the only candidate: every clip came back '_silence_' with probability 1."""
    from speechlstm import ParameterError, load_model

    with pytest.raises(ParameterError, match="no candidate words given"):
        load_model().classify(os.path.join(SAMPLES, "sc_yes.wav"), words)


def test_classify_cli_goes_on_after_a_bad_file(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all" * 10)
    yes = os.path.join(SAMPLES, "sc_yes.wav")
    stop = os.path.join(SAMPLES, "sc_stop.wav")
    r = subprocess.run([sys.executable, "-m", "speechlstm", "classify", yes, str(bad), stop],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1
    assert r.stderr.strip() == f"speechlstm: error: {bad}: not a readable audio file (Format not recognised.)"
    lines = [ln.split("\t") for ln in r.stdout.strip().splitlines()]
    assert [(p, lab) for p, lab, _ in lines] == [(yes, "yes"), (stop, "stop")]
    r = subprocess.run([sys.executable, "-m", "speechlstm", "classify", "--words", "yes,no", "--no-silence",
                        "--format", "json", yes], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    obj = json.loads(r.stdout)
    assert obj["path"] == yes and obj["label"] == "yes" and [s["text"] for s in obj["scores"]] == ["yes", "no"]


def test_classify_cli_takes_folders_and_manifests(tmp_path):
    """A folder is walked for audio, a manifest read for paths; a folder with no audio is an error."""
    from click.testing import CliRunner

    from speechlstm.cli import main

    r = CliRunner().invoke(main, ["classify", SAMPLES])
    assert r.exit_code == 0, r.output
    wavs = sorted(f for f in os.listdir(SAMPLES) if f.endswith(".wav"))
    got = [ln.split("\t") for ln in r.output.strip().splitlines()]
    assert [os.path.basename(p) for p, _, _ in got] == wavs
    assert dict((os.path.basename(p), lab) for p, lab, _ in got)["sc_stop.wav"] == "stop"
    r = CliRunner().invoke(main, ["classify", os.path.join(SAMPLES, "manifest.jsonl")])
    assert r.exit_code == 0 and len(r.output.strip().splitlines()) == len(wavs)
    (tmp_path / "empty").mkdir()
    r = CliRunner().invoke(main, ["classify", str(tmp_path / "empty")])
    assert r.exit_code == 1 and f"{tmp_path / 'empty'}: no audio files found" in r.output


def test_model_classify_short_clip_json_ready():
    """A clip too short for some candidates: they get log_likelihood None (valid JSON, no -inf);
    too short for all of them is a clear error."""
    from speechlstm import load_model

    m = load_model()
    y = np.zeros(1600, np.float32)  # 0.1 s: a handful of frames
    n = m.log_probs(y)[0].shape[0]
    long_word = "z" * (n + 1)
    res = m.classify(y, ["no", long_word])
    json.dumps(res, allow_nan=False)
    assert {s["text"]: s["log_likelihood"] for s in res["scores"]}[long_word] is None
    with pytest.raises(ParameterError, match="too short for every candidate"):
        m.classify(y, [long_word], no_speech=False)
