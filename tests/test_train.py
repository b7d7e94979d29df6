import hashlib
import json
import os

import numba
import numpy as np
import pytest

from speechlstm import DataError, ModelError, ParameterError
from speechlstm.data import write_manifest
from speechlstm.model import load_model, read_model_file
from speechlstm.synth import synthesize, voice_pool
from speechlstm.train import TrainConfig, Trainer, load_config


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    voices = voice_pool(rng, 6, flite_share=0.3)
    texts = ["yes", "no", "go", "stop", "yes no", "go stop"] * 5
    rows = synthesize(texts, str(d / "wav"), voices=voices, seed=1, workers=2, progress=False)
    train = write_manifest(rows[:24], str(d / "train.jsonl"))
    dev = write_manifest(rows[24:], str(d / "dev.jsonl"))
    return d, train, dev


def _cfg(d, train, dev, out, **kw):
    base = dict(train=[train], dev=[dev], out_dir=str(out), cache_dir=str(d / "cache"), hidden_size=16,
                num_layers=1, epochs=2, batch_size=8, lr=5e-3, warmup_steps=2, workers=1, progress=False,
                vocabulary=["yes", "no", "go", "stop"], augment_copies=1)
    base.update(kw)
    return TrainConfig(**base)


def test_training_learns_and_writes_everything(tiny_corpus, tmp_path):
    d, train, dev = tiny_corpus
    state = Trainer(_cfg(d, train, dev, tmp_path / "run", epochs=4)).run()
    hist = state["history"]
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    for f in ("model.npz", "checkpoint.npz", "log.jsonl", "curve.png"):
        assert os.path.exists(tmp_path / "run" / f)
    log = [json.loads(l) for l in open(tmp_path / "run" / "log.jsonl")]
    assert [r["epoch"] for r in log] == [1, 2, 3, 4] and "dev_wer" in log[0] and log[0]["frames_per_second"] > 0
    m = load_model(str(tmp_path / "run" / "model.npz"))
    assert m.vocabulary == ["yes", "no", "go", "stop"] and m.meta["training"]["parameters"] > 0
    env = m.meta["training"]["environment"]  # what the run ran on: runs repeat bit for bit only on the same
    assert env["numpy"] == np.__version__ and env["numba"] == numba.__version__ and env["blas"] in ("mkl", "openblas")
    import llvmlite.binding

    assert env["numba_target_cpu"] == llvmlite.binding.get_host_cpu_name() and env["threads"] == numba.get_num_threads()
    from click.testing import CliRunner

    from speechlstm.cli import main

    r = CliRunner().invoke(main, ["info", str(tmp_path / "run" / "model.npz")])
    line = next(l for l in r.stdout.splitlines() if l.startswith("trained on:"))
    assert f"numpy {np.__version__}" in line and f"numba_target_cpu {env['numba_target_cpu']}" in line


def test_resume_is_bit_identical(tiny_corpus, tmp_path):
    d, train, dev = tiny_corpus
    Trainer(_cfg(d, train, dev, tmp_path / "a", epochs=2)).run()
    Trainer(_cfg(d, train, dev, tmp_path / "b", epochs=1)).run()
    Trainer(_cfg(d, train, dev, tmp_path / "b", epochs=2)).run(resume=True)
    with np.load(tmp_path / "a" / "checkpoint.npz") as za, np.load(tmp_path / "b" / "checkpoint.npz") as zb:
        assert sorted(za.files) == sorted(zb.files)
        for k in za.files:
            if k != "state":
                assert np.array_equal(za[k], zb[k]), k
    la = [json.loads(l)["train_loss"] for l in open(tmp_path / "a" / "log.jsonl")]
    lb = [json.loads(l)["train_loss"] for l in open(tmp_path / "b" / "log.jsonl")]
    assert la == lb


def test_global_cmvn_model_streams(tiny_corpus, tmp_path):
    d, train, dev = tiny_corpus
    Trainer(_cfg(d, train, dev, tmp_path / "u", epochs=1, bidirectional=False, features={"cmvn": "global"})).run()
    m = load_model(str(tmp_path / "u" / "model.npz"))
    assert m.stats is not None and m.streaming
    from speechlstm import load_audio
    from speechlstm.data import read_manifest

    y = load_audio(read_manifest(dev)[0]["path"])
    s = m.stream()
    for i in range(0, y.size, 1600):
        part = s.feed(y[i:i + 1600])
        assert part["final"] is False
    fin = s.finish()
    lp_whole, _ = m.log_probs(y)
    assert fin["text"] == m.transcribe(y)["text"]
    assert lp_whole.shape[0] == m.features.n_frames(y.size)


def test_config_file_and_errors(tiny_corpus, tmp_path):
    d, train, dev = tiny_corpus
    p = tmp_path / "c.toml"
    p.write_text(f'[data]\ntrain = ["{train}"]\ndev = "{dev}"\nout_dir = "out"\n[model]\nhidden_size = 8\n'
                 f'[train]\nepochs = 1\n[features]\ncmvn = "none"\n')
    cfg = load_config(str(p))
    assert cfg.hidden_size == 8 and cfg.dev == [dev] and cfg.out_dir == str(tmp_path / "out")
    assert cfg.features == {"cmvn": "none"}
    p.write_text(f'train = ["{train}"]\n[augment]\np_vtlp = 0.5\nvtlp = [0.9, 1.1]\n')
    assert load_config(str(p)).augment == {"p_vtlp": 0.5, "vtlp": [0.9, 1.1]}
    src = f'train = ["{train}"]\n'
    for text, message in [
        ("[train]\nepochz = 3\n", r"c.toml: unknown training config keys: \['epochz'\]"),
        ("not = [toml\n", "TOML"),
        (src + 'device = "tpu"\n', r"c.toml: device must be 'cpu', 'cuda' or 'auto', got 'tpu'"),
        (src + "[model]\ndropout = 1.5\n", r"c.toml: dropout must be a number in \[0, 1\), got 1.5"),
        (src + "[augment]\np_vtlpp = 0.5\n", r"c.toml: unknown augment fields: \['p_vtlpp'\]"),
        (src + "[augment]\nvtlp = [1.2, 0.9]\n", r"c.toml: vtlp must be a \(low, high\) range"),
        (src + "[augment]\nspeed = [0.3, 1.2]\n", r"c.toml: speed must be a \(low, high\) range within \[0.5, 2\]"),
        (src + '[augment]\np_noise = "often"\n', r"c.toml: p_noise must be a number in \[0, 1\], got 'often'"),
    ]:
        p.write_text(text)
        with pytest.raises(DataError, match=message):
            load_config(str(p))


def test_train_cli_cuda_without_gpu_is_a_clear_error(tiny_corpus, tmp_path, monkeypatch):
    from click.testing import CliRunner

    import speechlstm.device as dev
    from speechlstm.cli import main

    d, train, dev_m = tiny_corpus
    monkeypatch.setattr(dev, "cuda_available", lambda: False)
    p = tmp_path / "c.toml"
    p.write_text(f'train = ["{train}"]\nout_dir = "out"\n')
    r = CliRunner().invoke(main, ["train", "--config", str(p), "--device", "cuda"])
    assert r.exit_code == 1 and "no CUDA GPU is available" in r.output
    assert not (tmp_path / "out").exists()  # refused before any work


def test_model_file_tamper_and_truncation(tiny_corpus, tmp_path):
    d, train, dev = tiny_corpus
    Trainer(_cfg(d, train, dev, tmp_path / "m", epochs=1)).run()
    path = str(tmp_path / "m" / "model.npz")
    meta, params, _ = read_model_file(path)
    assert meta["format"] == "speechlstm-model" and "lstm.weight_ih_l0" in params
    data = open(path, "rb").read()
    # flip one byte inside a stored weight array
    i = data.index(b"NUMPY", 200) + 300
    bad = tmp_path / "tampered.npz"
    bad.write_bytes(data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:])
    with pytest.raises(ModelError, match="tampered.npz"):
        load_model(str(bad))
    cut = tmp_path / "truncated.npz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="truncated.npz: not a readable model file"):
        load_model(str(cut))
    with pytest.raises(ModelError, match="no such model"):
        load_model("no-such-model-name")
    txt = tmp_path / "x.npz"
    txt.write_text("hello")
    with pytest.raises(ModelError, match=r"x.npz: not a model file \(speechlstm models are .npz archives") as e:
        load_model(str(txt))
    assert "pickle" not in str(e.value)  # not numpy's wording for a non-archive
    (tmp_path / "pk.npz").write_bytes(b"PK, but not a zip archive")  # np.load checks the whole signature
    with pytest.raises(ModelError, match="pk.npz: not a model file"):
        load_model(str(tmp_path / "pk.npz"))
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    with pytest.raises(ModelError, match="empty.npz: empty file, not a model file"):
        load_model(str(empty))


def test_tune_writes_ranked_tables(tiny_corpus, tmp_path):
    from speechlstm.tune import parse_grid, run_search

    d, train, dev = tiny_corpus
    rows = run_search(_cfg(d, train, dev, tmp_path / "t"), parse_grid(["hidden_size=8,16"]), str(tmp_path / "t"),
                      epochs=1)
    assert len(rows) == 2 and all(r["parameters"] > 0 and r["cpu_s_per_audio_s"] > 0 for r in rows)
    md = open(tmp_path / "t" / "results.md").read()
    assert "dev_wer" in md and "cpu_s_per_audio_s" in md
    assert open(tmp_path / "t" / "results.csv").readline().startswith("rank,trial,hidden_size")
    with pytest.raises(ParameterError, match="cannot tune"):
        parse_grid(["colour=1,2"])


def test_tune_checks_every_trial_before_the_first_trains(tiny_corpus, tmp_path):
    from speechlstm.tune import parse_grid, run_search

    d, train, dev = tiny_corpus
    with pytest.raises(ParameterError, match=r"batch_size must be an integer >= 1, got 0"):
        run_search(_cfg(d, train, dev, tmp_path / "t"), parse_grid(["batch_size=8,0"]), str(tmp_path / "t"), epochs=1)
    assert not (tmp_path / "t").exists()  # the good first trial did not train either
    for kw, message in (({"epochs": 0}, "epochs must be an integer >= 1, got 0"),
                        ({"n_random": -1}, "n_random must be an integer >= 0, got -1"),
                        ({"seed": -1, "n_random": 1}, "seed must be an integer >= 0, got -1")):
        with pytest.raises(ParameterError, match=message):
            run_search(_cfg(d, train, dev, tmp_path / "t"), parse_grid(["hidden_size=8"]), str(tmp_path / "t"), **kw)
        assert not (tmp_path / "t").exists()


def test_resume_refuses_another_config(tiny_corpus, tmp_path):
    d, train, dev = tiny_corpus
    Trainer(_cfg(d, train, dev, tmp_path / "r", epochs=1)).run()
    with pytest.raises(DataError, match="another configuration"):
        Trainer(_cfg(d, train, dev, tmp_path / "r", epochs=2, hidden_size=12)).run(resume=True)


def _mean_kl(lt, ls):
    """Mean per-frame KL(teacher ‖ student) from each file's log-posteriors [T, C] of the two models."""
    return sum(float((np.exp(a) * (a - b)).sum()) for a, b in zip(lt, ls)) / sum(a.shape[0] for a in lt)


def test_distillation_pulls_the_network_towards_its_teacher(tiny_corpus, tmp_path):
    """teacher=MODEL: the network learns the teacher's frame posteriors beside CTC. The teacher here
    hears an 'x' in every frame (its output bias raised), a letter no transcript has: CTC alone drives
    'x' towards zero, so only the teacher's term can teach it. Against the same run (same seed)
    without a teacher, the taught network's posteriors end far closer to the teacher's. The term is
    logged, its posteriors are cached, the resumed run stays bit-identical, and another teacher is
    refused on resume.

    (A teacher trained on this tiny corpus alone emits blanks only, so "closer to it" would hinge on
    how blank-heavy an untaught three-epoch network happens to be: flaky across machines.)"""
    d, train, dev = tiny_corpus
    Trainer(_cfg(d, train, dev, tmp_path / "t", epochs=1, seed=7)).run()
    t = load_model(str(tmp_path / "t" / "model.npz"))
    x = t.alphabet.encode("x")[0]
    t.acoustic.params["fc.bias"][x] += 4.0
    teacher_path = t.save(str(tmp_path / "teacher.npz"))
    teacher = load_model(teacher_path)
    plain = Trainer(_cfg(d, train, dev, tmp_path / "plain", epochs=3, lr=1e-2))
    plain.run()
    kd_cfg = dict(epochs=3, teacher=teacher_path, distill_weight=10.0, lr=1e-2)
    state = Trainer(_cfg(d, train, dev, tmp_path / "kd", **kd_cfg)).run()
    hist = state["history"]
    assert all("train_distill" in h for h in hist) and hist[-1]["train_distill"] < hist[0]["train_distill"]
    assert load_model(str(tmp_path / "kd" / "model.npz")).meta["training"]["teacher_sha256"] == \
        hashlib.sha256(open(teacher_path, "rb").read()).hexdigest()
    paths = [json.loads(l)["path"] for l in open(train)][:12]
    models = {"teacher": teacher, **{k: load_model(str(tmp_path / k / "model.npz")) for k in ("plain", "kd")}}
    lp = {k: [m.log_probs(p)[0] for p in paths] for k, m in models.items()}  # each file's [T, C], once per model
    p_x = {k: np.mean([np.exp(a[:, x]).mean() for a in v]) for k, v in lp.items()}
    assert p_x["teacher"] > 0.5 and p_x["plain"] < 0.05 and p_x["kd"] > 0.25, p_x
    kl = {k: _mean_kl(lp["teacher"], lp[k]) for k in ("plain", "kd")}
    assert kl["kd"] < 0.2 * kl["plain"], kl
    assert any(f.startswith("teacher-") for f in os.listdir(d / "cache"))
    # exact resume with the cached posteriors
    Trainer(_cfg(d, train, dev, tmp_path / "kd2", **dict(kd_cfg, epochs=1))).run()
    Trainer(_cfg(d, train, dev, tmp_path / "kd2", **kd_cfg)).run(resume=True)
    with np.load(tmp_path / "kd" / "checkpoint.npz") as za, np.load(tmp_path / "kd2" / "checkpoint.npz") as zb:
        for k in za.files:
            if k != "state":
                assert np.array_equal(za[k], zb[k]), k
    with pytest.raises(DataError, match="another configuration"):  # the teacher is part of the run
        Trainer(_cfg(d, train, dev, tmp_path / "kd2", **dict(kd_cfg, epochs=4,
                                                             teacher=str(tmp_path / "plain" / "model.npz")))).run(resume=True)


def test_distillation_temperature_softens_the_cached_teacher_and_is_part_of_the_run(tiny_corpus, tmp_path):
    """distill_temperature = τ: the teacher's cached posteriors are softmax(log p / τ) of its plain
    ones (cached apart from them), and a run cannot be resumed at another τ."""
    d, train, dev = tiny_corpus
    Trainer(_cfg(d, train, dev, tmp_path / "t", epochs=1, seed=3)).run()
    t = load_model(str(tmp_path / "t" / "model.npz"))  # a one-epoch network is near uniform: make it sure of an 'x'
    t.acoustic.params["fc.bias"][t.alphabet.encode("x")[0]] += 4.0
    teacher, cache = t.save(str(tmp_path / "teacher.npz")), tmp_path / "kdcache"
    probs = {}
    for tau in (1.0, 2.0):
        tr = Trainer(_cfg(d, train, dev, tmp_path / f"kd{tau:g}", epochs=1, teacher=teacher, cache_dir=str(cache),
                          distill_temperature=tau))
        hist = tr.run()["history"]
        assert np.isfinite(hist[-1]["train_distill"]) and hist[-1]["train_distill"] > 0
        probs[tau] = tr.teacher_probs
    assert len([f for f in os.listdir(cache) if f.startswith("teacher-")]) == 2
    entropy = {tau: np.mean([-(p * np.log(np.maximum(p, 1e-30))).sum(axis=1).mean() for p in
                             (x.astype(np.float64) for x in v)]) for tau, v in probs.items()}
    assert entropy[2.0] > entropy[1.0] + 0.05, entropy
    for p1, p2 in zip(probs[1.0], probs[2.0]):
        p1 = p1.astype(np.float64)
        want = np.sqrt(p1) / np.sqrt(p1).sum(axis=1, keepdims=True)  # softmax(log p / 2), from the float16 p
        np.testing.assert_allclose(p2.astype(np.float64), want, atol=3e-3)
    with pytest.raises(DataError, match="another configuration"):
        Trainer(_cfg(d, train, dev, tmp_path / "kd1", epochs=2, teacher=teacher, cache_dir=str(cache),
                     distill_temperature=2.0)).run(resume=True)
    for bad in (0.0, -2.0, 101.0):
        with pytest.raises(ParameterError, match="distill_temperature"):
            _cfg(d, train, dev, tmp_path / "s", teacher=teacher, distill_temperature=bad)


def test_distillation_refuses_a_teacher_that_does_not_fit(tiny_corpus, tmp_path):
    d, train, dev = tiny_corpus
    Trainer(_cfg(d, train, dev, tmp_path / "t13", epochs=1, features={"n_mfcc": 12})).run()
    with pytest.raises(ParameterError, match=r"feature settings differ from this run's in \['n_mfcc'\]"):
        Trainer(_cfg(d, train, dev, tmp_path / "s", epochs=1, teacher=str(tmp_path / "t13" / "model.npz"))).run()
    with pytest.raises(ModelError, match="no such model"):
        Trainer(_cfg(d, train, dev, tmp_path / "s2", epochs=1, teacher="not-a-model")).run()
    with pytest.raises(ParameterError, match="distill_weight"):
        _cfg(d, train, dev, tmp_path / "s3", teacher="commands", distill_weight=-1.0)
    # in a config file, a teacher path is relative to the file; a shipped name stays a name
    (tmp_path / "a.toml").write_text(f'train = ["{train}"]\nteacher = "t13/model.npz"\n')
    assert load_config(str(tmp_path / "a.toml")).teacher == str(tmp_path / "t13" / "model.npz")
    (tmp_path / "b.toml").write_text(f'train = ["{train}"]\nteacher = "commands-ensemble"\n')
    assert load_config(str(tmp_path / "b.toml")).teacher == "commands-ensemble"


def test_ema_weights_are_evaluated_exported_and_resumed(tiny_corpus, tmp_path):
    """ema=0.9: the checkpoint keeps the running average beside the raw weights, the exported model
    holds the average (not the raw weights), and a resumed run is still bit-identical."""
    d, train, dev = tiny_corpus
    Trainer(_cfg(d, train, dev, tmp_path / "a", epochs=2, ema=0.9)).run()
    Trainer(_cfg(d, train, dev, tmp_path / "b", epochs=1, ema=0.9)).run()
    Trainer(_cfg(d, train, dev, tmp_path / "b", epochs=2, ema=0.9)).run(resume=True)
    with np.load(tmp_path / "a" / "checkpoint.npz") as za, np.load(tmp_path / "b" / "checkpoint.npz") as zb:
        assert sorted(za.files) == sorted(zb.files) and any(k.startswith("ema/") for k in za.files)
        for k in za.files:
            if k != "state":
                assert np.array_equal(za[k], zb[k]), k
        ema = {k[4:]: za[k] for k in za.files if k.startswith("ema/")}
        raw = {k[6:]: za[k] for k in za.files if k.startswith("param/")}
    assert set(ema) == set(raw) and any(not np.array_equal(ema[k], raw[k]) for k in raw)
    Trainer(_cfg(d, train, dev, tmp_path / "one", epochs=1, ema=0.9)).run()  # epoch 1 is always the best
    with np.load(tmp_path / "one" / "checkpoint.npz") as z:
        ema1 = {k[4:]: z[k] for k in z.files if k.startswith("ema/")}
        raw1 = {k[6:]: z[k] for k in z.files if k.startswith("param/")}
    w = load_model(str(tmp_path / "one" / "model.npz")).acoustic.params
    assert set(w) == set(ema1)
    assert all(np.array_equal(w[k], ema1[k]) for k in ema1) and not all(np.array_equal(w[k], raw1[k]) for k in raw1)
    with pytest.raises(ParameterError, match="ema"):
        Trainer(_cfg(d, train, dev, tmp_path / "c", ema=1.0)).run()


def test_manifest_copies_field_overrides_augment_copies(tiny_corpus, tmp_path):
    from speechlstm.data import read_manifest
    from speechlstm.features import FeatureConfig
    from speechlstm.train import FeatureCache

    d, train, _ = tiny_corpus
    rows = read_manifest(train)[:4]
    cache = FeatureCache(str(tmp_path / "cache"), FeatureConfig(), workers=1, progress=False)
    plain, _, plain_rows = cache.get(rows, 1)
    assert len(plain) == 8
    rows[0] = dict(rows[0], copies=3)  # three augmented copies of this clip, none of the others
    rows[2] = dict(rows[2], copies=0)
    feats, texts, got = cache.get(rows, 1)
    per_path = {r["path"]: sum(g["path"] == r["path"] for g in got) for r in rows}
    assert [per_path[r["path"]] for r in rows] == [4, 2, 1, 2]
    # the clean clip and the first copy of a row are the ones computed without the field
    first = [f for f, g in zip(feats, got) if g["path"] == rows[0]["path"]]
    before = [f for f, g in zip(plain, plain_rows) if g["path"] == rows[0]["path"]]
    np.testing.assert_array_equal(first[0], before[0])
    np.testing.assert_array_equal(first[1], before[1])
    assert not np.array_equal(first[1], first[2])  # further copies draw other augmentations
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(DataError, match="'copies' must be a non-negative integer"):
            cache.get([dict(rows[1], copies=bad)], 1)


def test_feature_cache_reports_an_unreadable_clip_once_and_goes_on(tiny_corpus, tmp_path, capsys):
    from speechlstm.data import read_manifest
    from speechlstm.features import FeatureConfig
    from speechlstm.train import FeatureCache

    d, train, _ = tiny_corpus
    rows = read_manifest(train)[:3]
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio")
    rows.append(dict(rows[0], path=str(bad)))
    cache = FeatureCache(str(tmp_path / "cache"), FeatureConfig(), workers=1, progress=False)
    feats, _, got = cache.get(rows, 2)  # the clean clip and two copies of each: the bad one named once
    assert len(feats) == 9 and str(bad) not in [g["path"] for g in got]
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"speechlstm: warning: {bad}: not a readable audio file (Format not recognised.) (skipped)"]
    many = [dict(rows[0], path=str(tmp_path / f"gone{i}.wav")) for i in range(12)]
    with pytest.raises(DataError, match="no usable clips"):
        FeatureCache(str(tmp_path / "cache2"), FeatureConfig(), workers=1, progress=False).get(many, 0)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 11 and err[0] == f"speechlstm: warning: {tmp_path / 'gone0.wav'}: no such file (skipped)"
    assert err[-1] == "speechlstm: warning: 2 more clips skipped"


def test_dropout_run_resumes_bit_identically_and_differs_from_no_dropout(tiny_corpus, tmp_path):
    d, train, dev = tiny_corpus
    kw = dict(num_layers=2, dropout=0.3)
    Trainer(_cfg(d, train, dev, tmp_path / "a", epochs=2, **kw)).run()
    Trainer(_cfg(d, train, dev, tmp_path / "b", epochs=1, **kw)).run()
    Trainer(_cfg(d, train, dev, tmp_path / "b", epochs=2, **kw)).run(resume=True)
    Trainer(_cfg(d, train, dev, tmp_path / "c", epochs=2, num_layers=2)).run()
    with np.load(tmp_path / "a" / "checkpoint.npz") as za, np.load(tmp_path / "b" / "checkpoint.npz") as zb, \
            np.load(tmp_path / "c" / "checkpoint.npz") as zc:
        params = [k for k in za.files if k.startswith("param/")]
        assert params and all(np.array_equal(za[k], zb[k]) for k in za.files if k != "state")
        assert not all(np.array_equal(za[k], zc[k]) for k in params)
    assert load_model(str(tmp_path / "a" / "model.npz")).meta["training"]["config"]["dropout"] == 0.3


def test_feature_cache_vtlp_warps_augmented_copies_only(tiny_corpus, tmp_path):
    from speechlstm.data import read_manifest
    from speechlstm.features import FeatureConfig
    from speechlstm.train import FeatureCache

    d, train, _ = tiny_corpus
    rows = read_manifest(train)[:3]
    plain = FeatureCache(str(tmp_path / "a"), FeatureConfig(), workers=1, progress=False,
                         augment={"p_vtlp": 0.0}).get(rows, 1)[0]
    default = FeatureCache(str(tmp_path / "b"), FeatureConfig(), workers=1, progress=False).get(rows, 1)[0]
    warped = FeatureCache(str(tmp_path / "c"), FeatureConfig(), workers=1, progress=False,
                          augment={"p_vtlp": 1.0, "vtlp": [0.9, 1.1]}).get(rows, 1)[0]
    for a, b in zip(plain, default):  # p_vtlp 0 computes exactly what the cache computed before it existed
        np.testing.assert_array_equal(a, b)
    assert len(plain) == len(warped) == 2 * len(rows)
    for i, (a, b) in enumerate(zip(plain, warped)):
        assert a.shape == b.shape
        if i < len(rows):  # the clean clips (all first) are never warped
            np.testing.assert_array_equal(a, b)
        else:  # its augmented copy: same waveform augmentation, then a frequency warp
            assert not np.allclose(a, b)


def test_training_runs_in_the_training_blas(tiny_corpus, tmp_path, monkeypatch):
    """Trainer.run trains inside linalg.training_blas (so "auto" trains on MKL where it is installed,
    even on a CPU whose inference runs on OpenBLAS) and leaves the inference choice as it was."""
    import contextlib

    from speechlstm import linalg

    seen = []

    @contextlib.contextmanager
    def spy():
        seen.append("enter")
        yield
        seen.append("exit")

    monkeypatch.setattr(linalg, "training_blas", spy)
    d, train, dev = tiny_corpus
    before = linalg.blas_backend()
    Trainer(_cfg(d, train, dev, tmp_path / "t", epochs=1)).run()
    assert seen == ["enter", "exit"] and linalg.blas_backend() == before


def test_average_best_keeps_epochs_and_averages_the_lowest_dev_loss(tiny_corpus, tmp_path):
    """average_best=2: every epoch's weights are kept, model-avg.npz is the element-wise mean of the
    two epochs with the lowest dev loss (checked against the log and a NumPy mean), training itself
    is unchanged (same checkpoint as a run without it), and a resumed run writes the same average."""
    d, train, dev = tiny_corpus
    run = tmp_path / "avg"
    state = Trainer(_cfg(d, train, dev, run, epochs=4, average_best=2)).run()
    log = [json.loads(l) for l in open(run / "log.jsonl")]
    want = sorted(r["epoch"] for r in sorted(log, key=lambda r: (r["dev_loss"], r["epoch"]))[:2])
    assert state["averaged_epochs"] == want
    assert sorted(os.listdir(run / "epochs")) == [f"epoch-{e:03d}.npz" for e in (1, 2, 3, 4)]
    snaps = [load_model(str(run / "epochs" / f"epoch-{e:03d}.npz")).acoustic.params for e in want]
    avg = load_model(str(run / "model-avg.npz"))
    assert avg.meta["training"]["averaged_epochs"] == want and avg.meta["metrics"] == {}
    for k, v in avg.acoustic.params.items():
        np.testing.assert_allclose(v, (snaps[0][k].astype(np.float64) + snaps[1][k]) / 2, rtol=0, atol=1e-7)
    best = load_model(str(run / "model.npz")).acoustic.params  # the best epoch's snapshot is model.npz
    best_snap = load_model(str(run / "epochs" / f"epoch-{state['best_epoch']:03d}.npz")).acoustic.params
    assert all(np.array_equal(best[k], best_snap[k]) for k in best)
    Trainer(_cfg(d, train, dev, tmp_path / "plain", epochs=4)).run()
    with np.load(run / "checkpoint.npz") as za, np.load(tmp_path / "plain" / "checkpoint.npz") as zb:
        assert all(np.array_equal(za[k], zb[k]) for k in za.files if k != "state")
    Trainer(_cfg(d, train, dev, tmp_path / "res", epochs=2, average_best=2)).run()
    Trainer(_cfg(d, train, dev, tmp_path / "res", epochs=4, average_best=2)).run(resume=True)
    again = load_model(str(tmp_path / "res" / "model-avg.npz")).acoustic.params
    assert all(np.array_equal(again[k], avg.acoustic.params[k]) for k in again)
    for bad in (1, -1, 2.5, "3"):
        with pytest.raises(ParameterError, match="average_best"):
            _cfg(d, train, dev, tmp_path / "x", average_best=bad)


def test_average_best_refuses_a_resume_without_snapshots(tiny_corpus, tmp_path):
    d, train, dev = tiny_corpus
    Trainer(_cfg(d, train, dev, tmp_path / "r", epochs=2)).run()
    with pytest.raises(DataError, match=r"epoch-00\d\.npz: no weights saved"):
        Trainer(_cfg(d, train, dev, tmp_path / "r", epochs=3, average_best=3)).run(resume=True)


@pytest.mark.parametrize("bad", [-0.01, 1.5, float("nan"), True, "0.1"])
def test_weight_decay_is_checked_when_the_config_is_made(bad):
    from speechlstm.train import TrainConfig

    with pytest.raises(ParameterError, match=r"weight_decay must be a number in \[0, 1\], got"):
        TrainConfig(weight_decay=bad)
    assert TrainConfig(weight_decay=0.01).weight_decay == 0.01


@pytest.mark.parametrize("field, bad, message", [
    ("batch_size", 0, r"batch_size must be an integer >= 1, got 0"),
    ("batch_size", 16.0, r"batch_size must be an integer >= 1, got 16.0"),
    ("epochs", "ten", r"epochs must be an integer >= 1, got 'ten'"),
    ("patience", 0, r"patience must be an integer >= 1, got 0"),
    ("hidden_size", -8, r"hidden_size must be an integer >= 1, got -8"),
    ("num_layers", True, r"num_layers must be an integer >= 1, got True"),
    ("workers", 0, r"workers must be an integer >= 1, got 0"),
    ("warmup_steps", -1, r"warmup_steps must be an integer >= 0, got -1"),
    ("augment_copies", 1.5, r"augment_copies must be an integer >= 0, got 1.5"),
    ("seed", -3, r"seed must be an integer >= 0, got -3"),
    ("lr", 0.0, r"lr must be a number in \(0, inf\), got 0.0"),
    ("lr", "2e-3", r"lr must be a number in \(0, inf\), got '2e-3'"),
    ("lr_decay", 1.2, r"lr_decay must be a number in \(0, 1\], got 1.2"),
    ("min_lr", -1e-5, r"min_lr must be a number in \[0, inf\), got -1e-05"),
    ("clip", float("nan"), r"clip must be a number in \[0, inf\), got nan"),
    ("bidirectional", "yes", r"bidirectional must be true or false, got 'yes'"),
    ("spec_augment", 1, r"spec_augment must be true or false, got 1"),
])
def test_optimiser_and_loop_settings_are_checked_when_the_config_is_made(field, bad, message):
    """A TOML typo in a number (``batch_size = 0``, ``epochs = "ten"``) is refused when the config is
    made, naming the key and the value — not by a traceback after the features are computed."""
    from speechlstm.train import TrainConfig

    with pytest.raises(ParameterError, match=message):
        TrainConfig(**{field: bad})


def test_a_bad_number_in_a_config_file_names_the_file_before_any_work(tiny_corpus, tmp_path):
    from click.testing import CliRunner

    from speechlstm.cli import main

    d, train, dev = tiny_corpus
    p = tmp_path / "c.toml"
    p.write_text(f'train = ["{train}"]\nout_dir = "out"\nbatch_size = 0\n')
    r = CliRunner().invoke(main, ["train", "--config", str(p)])
    assert r.exit_code == 1 and r.output.strip().endswith("c.toml: batch_size must be an integer >= 1, got 0")
    assert not (tmp_path / "out").exists()  # refused before the features

def test_load_teacher_checks_front_end_and_alphabet():
    """The check the trainer and the build pipeline share: the shipped default fits its own front
    end and alphabet, and is refused, naming the difference, for another of either."""
    from speechlstm.alphabet import Alphabet
    from speechlstm.model import load_model
    from speechlstm.train import load_teacher

    own = load_model("commands").features
    assert load_teacher("commands", own, Alphabet()).name == "commands"
    assert load_teacher("commands", own.replace(cmvn="global"), Alphabet()).name == "commands"  # its own CMVN
    with pytest.raises(ParameterError, match=r"differ from this run's in \['n_mfcc'\]"):
        load_teacher("commands", own.replace(n_mfcc=20), Alphabet())
    with pytest.raises(ParameterError, match="alphabet"):
        load_teacher("commands", own, Alphabet(" abc"))
    with pytest.raises(ModelError, match="teacher: .*no-such"):
        load_teacher("no-such.npz", own, Alphabet())


# dev figures per epoch, scripted so that the two rules disagree: by loss epoch 2 is best; by WER
# epochs 3 and 4 tie (0.5) and epoch 4's lower loss breaks the tie
_SCRIPTED_DEV = [(3.0, 0.9), (2.0, 0.8), (2.5, 0.5), (2.4, 0.5), (2.7, 0.6), (2.8, 0.7)]


def _scripted_trainer(cfg, start=0):
    """A Trainer whose per-epoch dev evaluation returns _SCRIPTED_DEV[epoch] (training itself is real)."""
    t = Trainer(cfg)
    epochs = iter(range(start, len(_SCRIPTED_DEV)))

    def evaluate(*args, **kw):
        loss, w = _SCRIPTED_DEV[next(epochs)]
        return {"loss": loss, "wer": w, "accuracy": 1.0 - w}

    t.evaluate = evaluate
    return t


def test_select_by_wer_keeps_and_stops_by_dev_wer(tiny_corpus, tmp_path):
    """select_by="wer": early stopping and model.npz go by dev WER, ties broken by the dev loss;
    average_best ranks the same way; a resumed run ends where a straight one does, and a checkpoint
    made under one rule is refused under the other."""
    d, train, dev = tiny_corpus
    by_loss = _scripted_trainer(_cfg(d, train, dev, tmp_path / "loss", epochs=6, patience=2, average_best=2)).run()
    assert by_loss["best_epoch"] == 2 and len(by_loss["history"]) == 4  # epochs 3, 4 worse: stopped
    assert by_loss["averaged_epochs"] == [2, 4]
    run = tmp_path / "wer"
    by_wer = _scripted_trainer(_cfg(d, train, dev, run, epochs=6, patience=2, average_best=2, select_by="wer")).run()
    assert by_wer["best_epoch"] == 4 and len(by_wer["history"]) == 6  # epochs 5, 6 worse: stopped
    assert by_wer["averaged_epochs"] == [3, 4]
    kept = load_model(str(run / "model.npz"))
    assert kept.meta["training"]["best_epoch"] == 4 and kept.meta["training"]["dev"]["dev_wer"] == 0.5
    assert load_model(str(run / "model-avg.npz")).meta["training"]["averaged_by"] == "dev_wer"
    snap = load_model(str(run / "epochs" / "epoch-004.npz")).acoustic.params
    assert all(np.array_equal(kept.acoustic.params[k], snap[k]) for k in snap)

    res = tmp_path / "res"
    _scripted_trainer(_cfg(d, train, dev, res, epochs=3, patience=2, select_by="wer")).run()
    again = _scripted_trainer(_cfg(d, train, dev, res, epochs=6, patience=2, select_by="wer"), start=3).run(resume=True)
    assert again["best_epoch"] == 4 and again["best"] == by_wer["best"] == [0.5, 2.4]
    with pytest.raises(DataError, match="another configuration"):
        Trainer(_cfg(d, train, dev, res, epochs=7, patience=2)).run(resume=True)


def test_select_by_is_checked_when_the_config_is_made(tiny_corpus, tmp_path):
    d, train, dev = tiny_corpus
    for bad in ("accuracy", "WER", "", 1):
        with pytest.raises(ParameterError, match="select_by must be one of"):
            _cfg(d, train, dev, tmp_path / "x", select_by=bad)
    with pytest.raises(ParameterError, match="needs a dev set"):
        TrainConfig(train=[train], out_dir=str(tmp_path / "x"), select_by="wer")
    p = tmp_path / "c.toml"
    p.write_text(f'train = ["{train}"]\nselect_by = "wer"\n')
    with pytest.raises(DataError, match=r"c.toml: select_by = 'wer' needs a dev set"):
        load_config(str(p))


def test_train_cli_names_the_kept_epoch(tiny_corpus, tmp_path):
    from click.testing import CliRunner

    from speechlstm.cli import main

    d, train, dev = tiny_corpus
    p = tmp_path / "c.toml"
    common = (f'train = ["{train}"]\ncache_dir = "{d / "cache"}"\nvocabulary = ["yes", "no", "go", "stop"]\n'
              'hidden_size = 8\nnum_layers = 1\nepochs = 2\nbatch_size = 8\nworkers = 1\nprogress = false\n')
    p.write_text(common + f'dev = ["{dev}"]\nout_dir = "w"\nselect_by = "wer"\n')
    r = CliRunner().invoke(main, ["train", "--config", str(p)])
    log = [json.loads(l) for l in open(tmp_path / "w" / "log.jsonl")]
    best = min(log, key=lambda r: (r["dev_wer"], r["dev_loss"], r["epoch"]))
    assert r.exit_code == 0, r.output
    assert (f"best epoch {best['epoch']} by dev WER: dev loss {best['dev_loss']:.4f}, dev WER {best['dev_wer']:.1%}; "
            f"model: {tmp_path / 'w'}/model.npz") in r.output
    p.write_text(common + 'out_dir = "n"\n')
    r = CliRunner().invoke(main, ["train", "--config", str(p)])
    log = [json.loads(l) for l in open(tmp_path / "n" / "log.jsonl")]
    best = min(log, key=lambda r: (r["train_loss"], r["epoch"]))
    assert r.exit_code == 0, r.output
    assert f"best epoch {best['epoch']} by training loss {best['train_loss']:.4f} (no dev set)" in r.output


def test_feature_cache_keys_on_file_bytes_not_modification_time(tiny_corpus, tmp_path):
    """A corpus copied anew (same bytes, same paths, new times) keeps its features; a file whose bytes
    change under the same size and time gets new ones."""
    import os

    from speechlstm.data import read_manifest
    from speechlstm.features import FeatureConfig
    from speechlstm.train import FeatureCache, _FILE_DIGESTS

    import shutil

    d, train, _ = tiny_corpus
    rows = [dict(r, path=shutil.copy(r["path"], tmp_path / f"{i}.wav")) for i, r in enumerate(read_manifest(train)[:3])]
    rows = [dict(r, path=str(r["path"])) for r in rows]  # the corpus is the module's: changed only in copies
    cache = FeatureCache(str(tmp_path / "cache"), FeatureConfig(), workers=1, progress=False)
    key = cache._key(rows, 1)
    cache.get(rows, 1)
    target = rows[0]["path"]
    st = os.stat(target)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10**10))  # "copied anew": ten seconds later
    assert cache._key(rows, 1) == key
    assert len(os.listdir(tmp_path / "cache")) == 1
    cache.get(rows, 1)
    assert len(os.listdir(tmp_path / "cache")) == 1  # found, not computed again
    data = bytearray(open(target, "rb").read())
    data[-2:] = bytes([data[-2] ^ 0x01, data[-1] ^ 0x01])  # one sample changed, same size
    st = os.stat(target)
    with open(target, "wb") as f:
        f.write(bytes(data))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    _FILE_DIGESTS.clear()  # a new process: nothing remembered
    assert cache._key(rows, 1) != key
    missing = [dict(rows[1], path=str(tmp_path / "gone.wav"))]
    assert cache._key(missing, 1) == cache._key(missing, 1)


@pytest.mark.parametrize("cmvn", ["global", "utterance"])
def test_mel_frequency_masks_undo_the_normalisation_scale_and_mark_the_run(tiny_corpus, tmp_path, cmvn):
    from naive import mel_band_mask, spec_augment_draws

    from speechlstm.features import compute_stats

    d, train, dev = tiny_corpus
    feats = dict(cmvn=cmvn)
    t = Trainer(_cfg(d, train, dev, tmp_path / "mel", spec_augment_freq="mel", features=feats))
    t.prepare()
    base, _, _ = t.cache.get(t._rows(t.cfg.train), t.cfg.augment_copies)
    for i in (0, 5):
        stats = t.stats if cmvn == "global" else compute_stats([base[i]])
        assert np.allclose(t.train_scale[i], np.tile(stats.std, 3))
    xs = [t.train_x[0], t.train_x[5]]
    out = t._augment(xs, [0, 5], np.random.default_rng(3))
    rng = np.random.default_rng(3)  # one generator for the batch: each clip draws its time masks, then its mel bands
    for x, i, got in zip(xs, [0, 5], out):
        rows, band = spec_augment_draws(rng, len(x), time_masks=2, max_time=5, feature_masks=2, max_features=8,
                                        mel_bands=40)
        ref = mel_band_mask(x, band, 13, 40, t.train_scale[i])
        ref[rows] = 0.0
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
    plain = Trainer(_cfg(d, train, dev, tmp_path / "plain", features=feats))
    plain.prepare()
    assert plain.train_scale is None and plain._fingerprint() != t._fingerprint()
    with pytest.raises(ParameterError, match=r"spec_augment_freq must be one of \['cepstra', 'mel', 'both', 'none'\], got 'bands'"):
        _cfg(d, train, dev, tmp_path / "x", spec_augment_freq="bands")


def test_mel_frequency_mask_run_trains_and_resumes_bit_identically(tiny_corpus, tmp_path):
    d, train, dev = tiny_corpus
    kw = dict(spec_augment_freq="mel", features=dict(cmvn="global"))
    Trainer(_cfg(d, train, dev, tmp_path / "a", epochs=2, **kw)).run()
    Trainer(_cfg(d, train, dev, tmp_path / "b", epochs=1, **kw)).run()
    Trainer(_cfg(d, train, dev, tmp_path / "b", epochs=2, **kw)).run(resume=True)
    with np.load(tmp_path / "a" / "checkpoint.npz") as za, np.load(tmp_path / "b" / "checkpoint.npz") as zb:
        assert all(np.array_equal(za[k], zb[k]) for k in za.files if k != "state")
    m = load_model(str(tmp_path / "a" / "model.npz"))
    assert m.meta["training"]["config"]["spec_augment_freq"] == "mel"


def test_the_readme_config_example_is_a_valid_config(tmp_path):
    """The README's example TOML, written to a file as a user would, loads into a TrainConfig (every key known,
    every value accepted), so the example cannot drift from the trainer."""
    import re

    readme = open(os.path.join(os.path.dirname(__file__), os.pardir, "README.md"), encoding="utf-8").read()
    blocks = [b for b in re.findall(r"```toml\n(.*?)```", readme, re.S) if "[train]" in b]
    assert len(blocks) == 1
    (tmp_path / "my.toml").write_text(blocks[0])
    cfg = load_config(str(tmp_path / "my.toml"))
    assert cfg.spec_augment_freq == "cepstra" and cfg.hidden_size == 128 and cfg.vocabulary[0] == "lights"
    assert cfg.train[0] == str(tmp_path / "synth.jsonl")


def test_both_frequency_masks_apply_mel_bands_then_time_and_cepstral_masks(tiny_corpus, tmp_path):
    from naive import mel_band_mask, spec_augment_draws

    d, train, dev = tiny_corpus
    t = Trainer(_cfg(d, train, dev, tmp_path / "both", spec_augment_freq="both", features=dict(cmvn="global")))
    t.prepare()
    xs = [t.train_x[1], t.train_x[7]]
    out = t._augment(xs, [1, 7], np.random.default_rng(11))
    rng = np.random.default_rng(11)
    changed = 0
    for x, i, got in zip(xs, [1, 7], out):
        _, band = spec_augment_draws(rng, len(x), time_masks=0, max_time=5, feature_masks=2, max_features=8,
                                     mel_bands=40)
        ref = mel_band_mask(x, band, 13, 40, t.train_scale[i])
        rows, cep = spec_augment_draws(rng, len(x), time_masks=2, max_time=5, feature_masks=2, max_features=3,
                                       mel_bands=13)  # the cepstral masks draw as mel masks over 13 "bands"
        ref[rows] = 0.0
        ref[:, np.tile(cep, 9)] = 0.0
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
        changed += band.any() and cep.any()
    assert changed
    mel_only = Trainer(_cfg(d, train, dev, tmp_path / "mel", spec_augment_freq="mel", features=dict(cmvn="global")))
    mel_only.prepare()
    assert mel_only._fingerprint() != t._fingerprint()


def test_no_frequency_masks_leaves_time_masks_alone(tiny_corpus, tmp_path):
    from naive import spec_augment_draws

    d, train, dev = tiny_corpus
    t = Trainer(_cfg(d, train, dev, tmp_path / "none", spec_augment_freq="none"))
    t.prepare()
    assert t.train_scale is None
    xs = [t.train_x[i] for i in range(8)]
    out = t._augment(xs, list(range(8)), np.random.default_rng(5))
    rng = np.random.default_rng(5)
    masked = 0
    for x, got in zip(xs, out):
        rows, _ = spec_augment_draws(rng, len(x), time_masks=2, max_time=5, feature_masks=0, max_features=3,
                                     mel_bands=13)
        ref = x.copy()
        ref[rows] = 0.0
        assert np.array_equal(got, ref)
        masked += rows.any()
    assert masked
    cep = Trainer(_cfg(d, train, dev, tmp_path / "cep"))
    cep.prepare()
    assert cep._fingerprint() != t._fingerprint()


@pytest.mark.parametrize("width", [3, 5])
def test_cepstral_mask_width_is_a_setting_checked_and_part_of_the_run(tiny_corpus, tmp_path, width):
    """Width 3 is every earlier build's masking (the default), drawn as before; 5 draws wider masks."""
    from naive import spec_augment_draws

    d, train, dev = tiny_corpus
    t = Trainer(_cfg(d, train, dev, tmp_path / "c5", spec_augment_cepstra=width))
    t.prepare()
    xs = [t.train_x[i] for i in range(8)]
    out = t._augment(xs, list(range(8)), np.random.default_rng(2))
    rng = np.random.default_rng(2)  # the replay draws widths up to `width`: another width draws other masks
    for x, got in zip(xs, out):
        rows, cep = spec_augment_draws(rng, len(x), time_masks=2, max_time=5, feature_masks=2, max_features=width,
                                       mel_bands=13)
        ref = x.copy()
        ref[rows] = 0.0
        ref[:, np.tile(cep, 9)] = 0.0
        assert np.array_equal(got, ref)
    plain = Trainer(_cfg(d, train, dev, tmp_path / "c3"))
    plain.prepare()
    assert (plain._fingerprint() == t._fingerprint()) == (width == 3)  # the default keeps older runs' fingerprint
    for bad in (-1, 41, 2.5, True):
        with pytest.raises(ParameterError, match=r"^spec_augment_cepstra must be an integer in \[0, 40\], got "):
            _cfg(d, train, dev, tmp_path / "x", spec_augment_cepstra=bad)
