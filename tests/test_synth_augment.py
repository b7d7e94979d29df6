import os
import re

import numpy as np
import pytest

from speechlstm import DataError, ParameterError
from speechlstm import augment as A
from speechlstm.synth import Voice, render, synthesize, voice_pool


def test_espeak_and_flite_render_and_are_deterministic(tmp_path):
    rng = np.random.default_rng(0)
    voices = voice_pool(rng, 8)
    assert {v.engine for v in voices} == {"espeak-ng", "flite"}
    rows = synthesize(["go left", "seven"] * 3, str(tmp_path / "a"), voices=voices, seed=3, workers=2, progress=False)
    rows2 = synthesize(["go left", "seven"] * 3, str(tmp_path / "b"), voices=voices, seed=3, workers=2, progress=False)
    assert [r["speaker"] for r in rows] == [r["speaker"] for r in rows2]
    from speechlstm import load_audio

    for r, r2 in zip(rows, rows2):
        assert r["duration"] > 0.2
        assert np.array_equal(load_audio(r["path"]), load_audio(r2["path"]))
    for v in [Voice("espeak-ng", "en-gb-scotland", "f3", 1.2, 0.8), Voice("flite", "slt", "", 0.9, 1.2)]:
        p = render("stop", v, str(tmp_path / f"{v.engine}.wav"))
        assert load_audio(p).size > 1000


def test_waveform_augmentations():
    rng = np.random.default_rng(0)
    y = (0.3 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)).astype(np.float32)
    noisy = A.add_noise(y, A.white_noise(8000, rng), 10.0, rng)
    snr = 10 * np.log10(np.mean(y ** 2) / np.mean((noisy - y) ** 2))
    assert snr == pytest.approx(10.0, abs=0.5)
    p = A.pink_noise(1 << 14, rng)
    spec = np.abs(np.fft.rfft(p)) ** 2
    assert spec[10:100].mean() > 5 * spec[1000:4000].mean()  # falls with frequency
    assert A.speed_perturb(y, 1.25).size == pytest.approx(16000 / 1.25, abs=2)
    for bad in (0.4, 2.5, float("nan"), True):
        with pytest.raises(ParameterError, match=r"^speed factor must be a number in \[0.5, 2\], got "):
            A.speed_perturb(y, bad)
    tel = A.telephone(y)
    assert tel.size == y.size
    t = np.fft.rfft(A.telephone(A.white_noise(16000, rng)))
    f = np.fft.rfftfreq(16000, 1 / 16000)
    assert np.abs(t[f > 4500]).mean() < 0.05 * np.abs(t[(f > 500) & (f < 3000)]).mean()
    r = A.reverb(y, rng)
    assert r.shape == y.shape and np.all(np.isfinite(r))
    assert np.allclose(A.gain(y, -6.0), y * 10 ** (-6 / 20), atol=1e-6)


def test_augmenter_and_spec_augment_deterministic():
    y = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    aug = A.Augmenter(noise_clips=[np.ones(100, np.float32) * 0.01])
    a = aug(y, np.random.default_rng(5))
    b = aug(y, np.random.default_rng(5))
    assert np.array_equal(a, b)
    x = np.ones((50, 117), np.float32)
    m = A.spec_augment(x, np.random.default_rng(1), time_masks=2, max_time=5, feature_masks=2, max_features=3, n_cepstra=13)
    assert np.array_equal(m, A.spec_augment(x, np.random.default_rng(1), time_masks=2, max_time=5, feature_masks=2,
                                            max_features=3, n_cepstra=13))
    zero_cols = np.where((m == 0).all(axis=0))[0]
    assert zero_cols.size % 9 == 0  # same band in each of 3 stacked copies x 3 delta groups
    assert (m == 0).any() and x.all()  # input untouched


def test_spec_augment_mel_band_masks_match_the_naive_envelope_reference():
    from naive import mel_band_mask, spec_augment_draws

    rng = np.random.default_rng(4)
    x = rng.standard_normal((30, 117)).astype(np.float32)
    before = x.copy()
    scale = rng.uniform(0.5, 4.0, 117)
    masked = 0
    for seed in range(12):
        m = A.spec_augment(x, np.random.default_rng(seed), time_masks=0, feature_masks=2, max_features=8,
                           n_cepstra=13, mel_bands=40, scale=scale)
        _, band = spec_augment_draws(seed, 30, time_masks=0, max_time=5, feature_masks=2, max_features=8, mel_bands=40)
        assert m.dtype == np.float32 and m.shape == x.shape
        np.testing.assert_allclose(m, mel_band_mask(x, band, 13, 40, scale), rtol=1e-4, atol=1e-4)
        if band.any():
            masked += 1
            assert (np.abs(m - x) > 1e-3).mean() > 0.5  # a mel band moves most cepstra, not a few indices
        else:
            assert np.array_equal(m, x)
    assert masked >= 8 and np.array_equal(x, before)


def test_spec_augment_mel_masks_refuse_a_layout_they_cannot_read():
    x = np.zeros((10, 39), np.float32)
    rng = np.random.default_rng(0)
    with pytest.raises(ParameterError, match=r"need n_cepstra in \[1, mel_bands=40\] dividing the 39 features, got n_cepstra=None"):
        A.spec_augment(x, rng, mel_bands=40)
    with pytest.raises(ParameterError, match=r"got n_cepstra=10$"):
        A.spec_augment(x, rng, mel_bands=40, n_cepstra=10)
    with pytest.raises(ParameterError, match=r"got n_cepstra=13$"):
        A.spec_augment(x, rng, mel_bands=8, n_cepstra=13)
    with pytest.raises(ParameterError, match=r"^scale must have one value per feature, shape \(39,\), got \(13,\)$"):
        A.spec_augment(x, rng, mel_bands=40, n_cepstra=13, scale=np.ones(13))


def test_spec_augment_mel_masks_with_time_masks_and_no_scale():
    from naive import mel_band_mask, spec_augment_draws

    x = np.random.default_rng(7).standard_normal((60, 39)).astype(np.float32)
    kw = dict(time_masks=2, max_time=5, feature_masks=2, max_features=8)
    for seed in range(8):
        m = A.spec_augment(x, np.random.default_rng(seed), n_cepstra=13, mel_bands=40, **kw)
        assert np.array_equal(m, A.spec_augment(x, np.random.default_rng(seed), n_cepstra=13, mel_bands=40, **kw))
        rows, band = spec_augment_draws(seed, 60, mel_bands=40, **kw)
        ref = mel_band_mask(x, band, 13, 40)
        ref[rows] = 0.0
        np.testing.assert_allclose(m, ref, rtol=1e-4, atol=1e-4)


def test_augmenter_draws_vtlp_warp_factors():
    off = A.Augmenter()
    rng = np.random.default_rng(3)
    state = rng.bit_generator.state
    assert off.draw_warp(rng) == 1.0
    assert rng.bit_generator.state == state  # off: draws nothing, so features cached before stay valid
    on = A.Augmenter(p_vtlp=1.0, vtlp=(0.9, 1.1))
    warps = [on.draw_warp(np.random.default_rng(s)) for s in range(200)]
    assert all(0.9 <= w <= 1.1 for w in warps) and np.std(warps) > 0.04
    assert warps == [on.draw_warp(np.random.default_rng(s)) for s in range(200)]
    half = A.Augmenter(p_vtlp=0.5)
    share = np.mean([half.draw_warp(np.random.default_rng(s)) != 1.0 for s in range(400)])
    assert 0.4 < share < 0.6


@pytest.mark.parametrize("field, bad", [
    ("p_noise", 1.5), ("p_gain", -0.1), ("p_speed", "0.4"), ("p_telephone", True), ("p_reverb", float("nan")),
    ("p_trim", 2), ("p_hum", None), ("p_trim_end", 1.01), ("trim_end_s", (0.05, 0.0)),
    ("p_trim_vowel", 1.2), ("trim_vowel_s", (-0.01, 0.02)), ("trim_vowel_db", 3.0), ("trim_vowel_db", "-10"),
    ("snr_db", (30.0, 5.0)), ("gain_db", (-12.0,)), ("speed", (0.3, 1.2)), ("speed", (0.9, 3.0)),
    ("trim_s", (-0.1, 0.08)), ("hum_snr_db", (10.0, float("inf"))), ("snr_db", "5-30"),
    ("p_vtlp", -0.1), ("p_vtlp", 1.5), ("p_vtlp", "0.5"),
    ("vtlp", (1.1, 0.9)), ("vtlp", (0.3, 1.0)), ("vtlp", (0.9,)), ("vtlp", "0.9-1.1"), ("vtlp", (0.9, "1.1")),
])
def test_augmenter_refuses_every_bad_setting(field, bad):
    """Each setting is checked at construction (a config file's typo fails before training, not in
    a feature worker mid-epoch), with a message naming the setting and quoting the value."""
    what = (r"a number in \[0, 1\]" if field.startswith("p_") else r"a number in \[-60, 0\]" if field == "trim_vowel_db"
            else r"a \(low, high\) range.*")
    with pytest.raises(ParameterError, match=rf"^{field} must be {what}, got {re.escape(repr(bad))}$"):
        A.Augmenter(**{field: bad})


def test_trim_onset_cuts_into_the_speech():
    sr = 16000
    silence = np.zeros(4000, np.float32)  # 250 ms before the "word"
    word = (0.3 * np.sin(2 * np.pi * 300 * np.arange(8000) / sr)).astype(np.float32)
    y = np.concatenate([silence, word])
    assert A.trim_onset(y, 0.0, sr).size == word.size  # the leading silence goes
    assert A.trim_onset(y, 0.05, sr).size == word.size - 800  # and 50 ms of the word
    short = y[:4000 + 1000]
    assert A.trim_onset(short, 0.05, sr) is short  # too little left: unchanged
    aug = A.Augmenter(p_trim=1.0, p_noise=0, p_gain=0, p_speed=0, p_reverb=0, p_telephone=0)
    out = aug(y, np.random.default_rng(0))
    assert word.size - 0.08 * sr <= out.size <= word.size


def test_trim_end_cuts_the_silence_after_the_speech():
    sr = 16000
    silence = np.zeros(4000, np.float32)  # 250 ms after the "word"
    word = (0.3 * np.sin(2 * np.pi * 300 * np.arange(8000) / sr)).astype(np.float32)
    y = np.concatenate([silence, word, silence])
    assert A.trim_end(y, 0.0, sr).size == silence.size + word.size  # the trailing silence goes
    assert A.trim_end(y, 0.02, sr).size == silence.size + word.size + 320  # but 20 ms of it
    assert A.trim_end(y, 1.0, sr) is y  # keeping more than there is: unchanged
    tiny = np.concatenate([word[:800], silence])
    assert A.trim_end(tiny, 0.0, sr) is tiny  # under 100 ms would be left: unchanged
    both = A.Augmenter(p_trim=1.0, trim_s=(0.0, 0.0), p_trim_end=1.0, trim_end_s=(0.0, 0.0), p_noise=0, p_gain=0,
                       p_speed=0, p_reverb=0, p_telephone=0)
    assert np.array_equal(both(y, np.random.default_rng(0)), word)  # cut tightly at both ends


def test_trim_end_off_draws_nothing():
    """p_trim_end = 0 leaves the random stream as it was, so features cached before the option
    existed keep their keys and contents."""
    y = (0.1 * np.random.default_rng(1).standard_normal(16000)).astype(np.float32)
    a = A.Augmenter(p_trim=0.5)(y, np.random.default_rng(7))
    b = A.Augmenter(p_trim=0.5, p_trim_end=0.0)(y, np.random.default_rng(7))
    assert np.array_equal(a, b)


def test_synthesize_renders_repeated_pairs_once_and_skips_failures(tmp_path, capsys, monkeypatch):
    """One voice and the same text many times over four threads: one file, every row kept (two
    threads rendering one path used to collide on its temporary file). A voice the engine refuses
    is reported in one line and left out; only all renders failing is an error."""
    from speechlstm import DataError

    v = Voice("espeak-ng", "en-us", "", 1.0, 1.0)
    rows = synthesize(["go"] * 12, str(tmp_path / "a"), voices=[v], workers=4, progress=False)
    assert len(rows) == 12 and len({r["path"] for r in rows}) == 1
    assert [f for f in os.listdir(tmp_path / "a")] == [os.path.basename(rows[0]["path"])]
    import speechlstm.synth as S

    bad = Voice("espeak-ng", "en-us", "", 0.5, 0.5)  # both engines fall back on unknown voices: a render
    real = S.render                                   # that fails is simulated for this one

    def render(text, voice, path, **kw):
        if voice == bad:
            raise DataError(f"espeak-ng failed for {text!r} with voice {voice.speaker}: simulated")
        return real(text, voice, path, **kw)

    monkeypatch.setattr(S, "render", render)
    with pytest.raises(DataError, match="every synthesis failed"):
        synthesize(["yes", "no"], str(tmp_path / "b"), voices=[bad], workers=2, progress=False)
    err = capsys.readouterr().err
    assert err.count("speechlstm: warning:") == 2 and "skipped" in err
    mixed = synthesize(["yes", "no", "up"], str(tmp_path / "c"), voices=[v, bad], seed=1, workers=2, progress=False)
    speakers = {r["speaker"] for r in mixed}
    assert speakers <= {v.speaker} and 0 < len(mixed) <= 3


@pytest.mark.parametrize("kw, message", [
    ({"seed": -1}, "seed must be an integer >= 0, got -1"),
    ({"n_voices": 0}, "n_voices must be an integer >= 1, got 0"),
    ({"workers": 0}, "workers must be an integer >= 1, got 0"),
    ({"texts": "yes"}, "texts must be a list of strings, got 'yes'"),
])
def test_synthesize_checks_its_arguments_before_rendering(tmp_path, kw, message):
    texts = kw.pop("texts", ["yes"])
    with pytest.raises(ParameterError, match=message):
        synthesize(texts, str(tmp_path / "s"), progress=False, **kw)
    assert not (tmp_path / "s").exists()
    with pytest.raises(ParameterError, match="n must be an integer >= 0, got -2"):
        voice_pool(np.random.default_rng(0), -2)


def test_trim_vowel_drops_the_first_consonant_whole():
    """Cut at the vowel: a quiet fricative (20 dB under the vowel) survives the onset cut of
    trim_onset at -35 dB but not the one at -10 dB, which starts where the vowel does."""
    sr = 16000
    rng = np.random.default_rng(3)
    silence = np.zeros(1600, np.float32)
    fric = (0.03 * rng.standard_normal(2400)).astype(np.float32)  # 150 ms of "f", ~-20 dB
    vowel = (0.3 * np.sin(2 * np.pi * 200 * np.arange(6400) / sr)).astype(np.float32)
    y = np.concatenate([silence, fric, vowel])
    assert A.trim_onset(y, 0.0, sr).size == fric.size + vowel.size  # -35 dB: the fricative stays
    assert A.trim_to_vowel(y, 0.0, sr).size == vowel.size  # cut at the vowel: it goes
    assert A.trim_to_vowel(y, 0.01, sr).size == vowel.size - 160
    quiet_word = np.concatenate([silence, 0.05 * vowel[:4800], silence[:800], vowel])  # "four SIX": a quiet first word
    assert A.trim_to_vowel(quiet_word, 0.0, sr) is quiet_word  # more than a consonant before the vowel: unchanged
    no_pause = np.concatenate([silence, 0.05 * vowel[:4800], vowel])
    assert A.trim_to_vowel(no_pause, 0.0, sr) is no_pause  # the same without a pause between the words
    short = np.concatenate([silence, fric, vowel[:800]])
    assert A.trim_to_vowel(short, 0.0, sr) is short  # under 100 ms would be left: unchanged
    aug = A.Augmenter(p_trim_vowel=1.0, trim_vowel_s=(0.0, 0.02), p_noise=0, p_gain=0, p_speed=0, p_reverb=0,
                      p_telephone=0)
    sizes = [aug(y, np.random.default_rng(s)).size for s in range(20)]
    assert all(vowel.size - 0.02 * sr <= n <= vowel.size for n in sizes) and len(set(sizes)) > 1
    assert sizes == [aug(y, np.random.default_rng(s)).size for s in range(20)]  # deterministic for a seed


def test_trim_vowel_off_draws_nothing():
    """p_trim_vowel = 0 leaves the random stream as it was (old feature caches stay valid)."""
    y = (0.1 * np.random.default_rng(1).standard_normal(16000)).astype(np.float32)
    a = A.Augmenter(p_trim=0.5, p_trim_end=0.3)(y, np.random.default_rng(7))
    b = A.Augmenter(p_trim=0.5, p_trim_end=0.3, p_trim_vowel=0.0)(y, np.random.default_rng(7))
    assert np.array_equal(a, b)


def _said_whole(lang, phonemes):
    """Whether espeak-ng's ``lang`` voice says every phoneme of ``phonemes`` (one it lacks cuts the rest
    of the word, so the ``a`` after it goes missing)."""
    import subprocess

    out = subprocess.run(["espeak-ng", "-q", "-x", "-v", lang, f"[[m{phonemes}a]]"], capture_output=True,
                         text=True).stdout
    out = re.sub(r"[\s',;#]", "", out)
    return out.endswith("a")


def test_l1_voices_are_espeak_ngs_foreign_english_languages():
    from speechlstm.synth import L1_ACCENTS, l1_voices

    assert l1_voices() == L1_ACCENTS  # the README's install command installs espeak-ng with all nine


@pytest.mark.parametrize("lang", ["de", "el", "ro", "nl", "fr", "hu", "sv", "af", "pl"])
def test_accented_phonemes_are_all_said_by_the_l1_voice(lang):
    from speechlstm.data import SPEECH_COMMANDS_WORDS
    from speechlstm.synth import accented_phonemes

    for word in SPEECH_COMMANDS_WORDS:
        ph = accented_phonemes(word, lang)
        assert ph and " " not in ph, (word, ph)
        assert _said_whole(lang, ph), f"{lang} voice cuts {word!r} short: {ph!r}"


def test_accented_phonemes_take_the_nearest_phoneme_only_where_the_voice_lacks_one():
    import subprocess

    from speechlstm.synth import accented_phonemes

    raw = subprocess.run(["espeak-ng", "-q", "-x", "-v", "en-us", "bird"], capture_output=True, text=True).stdout.strip()
    assert raw == "b'3:d" and not _said_whole("el", raw)  # the en-us phonemes as they are: Greek cuts "bird"
    assert accented_phonemes("bird", "el") == "b'Erd"  # Greek has no /3:/: "E r"
    assert accented_phonemes("six", "el") == "s'iks"  # ... and no /I/: "i"
    assert accented_phonemes("bird", "de") == "b'3:d"  # German's voice has /3:/: kept
    assert accented_phonemes("six eight", "el") == "s'iks 'eIt"  # words stay words


def test_voice_pool_draws_foreign_accents_only_when_asked():
    from speechlstm.synth import L1_ACCENTS

    plain = voice_pool(np.random.default_rng(5), 20)
    assert voice_pool(np.random.default_rng(5), 20, l1_share=0.0) == plain  # pools drawn before it: unchanged
    assert all(v.engine != "espeak-ng-l1" for v in plain)
    l1 = voice_pool(np.random.default_rng(5), 30, espeak_accents=[], flite_names=[], l1_share=1.0)
    assert {v.engine for v in l1} == {"espeak-ng-l1"} and {v.voice for v in l1} <= set(L1_ACCENTS)
    mixed = voice_pool(np.random.default_rng(5), 200, flite_names=[], l1_share=0.5)
    assert 60 < sum(v.engine == "espeak-ng-l1" for v in mixed) < 140
    with pytest.raises(ParameterError, match="1.5"):
        voice_pool(np.random.default_rng(5), 3, l1_share=1.5)
    with pytest.raises(DataError, match=r"l1_share=0\.5.*none of the languages de, el"):
        voice_pool(np.random.default_rng(5), 3, l1_share=0.5, l1_accents=[])  # not silently all native voices


def test_a_foreign_accented_voice_renders_deterministically(tmp_path):
    from speechlstm import load_audio

    v = Voice("espeak-ng-l1", "el", "m3", 1.1, 0.9)
    assert v.speaker == "espeak-ng-l1:el+m3:r1.10:p0.90"
    a = load_audio(render("six eight", v, str(tmp_path / "a.wav")))
    b = load_audio(render("six eight", v, str(tmp_path / "b.wav")))
    assert a.size > 4000 and np.array_equal(a, b)
    native = load_audio(render("six eight", Voice("espeak-ng", "en-us", "m3", 1.1, 0.9), str(tmp_path / "n.wav")))
    assert a.size != native.size or not np.array_equal(a, native)


def test_synthesize_says_and_labels_the_normalised_text(tmp_path, capsys, monkeypatch):
    """"Go 42!" used to be rendered as written (espeak-ng says "forty-two") under the label "Go 42!",
    which training normalises to "go four two": sound and transcript disagreed. Now the normalised text
    is both said and written; a text with no words left ("!!!") is reported and left out."""
    import speechlstm.synth as S
    from speechlstm import DataError

    said = []
    real = S.render

    def render(text, voice, path, **kw):
        said.append(text)
        return real(text, voice, path, **kw)

    monkeypatch.setattr(S, "render", render)
    v = Voice("espeak-ng", "en-us", "", 1.0, 1.0)
    rows = synthesize(["Go 42!", "!!!", "Café"], str(tmp_path / "a"), voices=[v], workers=1, progress=False)
    assert [r["text"] for r in rows] == ["go four two", "cafe"] and sorted(said) == ["cafe", "go four two"]
    assert capsys.readouterr().err.strip() == "speechlstm: warning: text '!!!': no words once normalised (skipped)"
    with pytest.raises(DataError, match="every text is empty once normalised"):
        synthesize(["!!!", " - "], str(tmp_path / "b"), voices=[v], progress=False)
    # already-normalised texts (every build's) keep their file names, so earlier renders are reused
    again = synthesize(["go four two"], str(tmp_path / "a"), voices=[v], progress=False)
    assert again[0]["path"] == rows[0]["path"] and len(said) == 2


def test_join_clips_keeps_each_word_in_order_with_its_own_margins():
    """Three one-word clips (a tone burst in 0.4 s of low noise each): one recording holding the three bursts
    in order, each piece cut to its burst plus 30-250 ms of its own clip, the first clip's lead and the last
    clip's tail kept whole; the same for a seed."""
    from speechlstm.augment import join_clips

    sr = 16000
    rng = np.random.default_rng(0)
    t = np.arange(int(0.2 * sr)) / sr
    clips = []
    for f in (300.0, 700.0, 1500.0):
        quiet = lambda: (rng.standard_normal(int(0.4 * sr)) * 1e-3).astype(np.float32)
        clips.append(np.concatenate([quiet(), (0.5 * np.sin(2 * np.pi * f * t)).astype(np.float32), quiet()]))
    y = join_clips(clips, np.random.default_rng(5), sr)
    assert np.array_equal(y, join_clips(clips, np.random.default_rng(5), sr)) and y.dtype == np.float32
    assert not np.array_equal(y, join_clips(clips, np.random.default_rng(6), sr))
    # where each tone is loudest, in 10 ms frames
    hop = sr // 100
    frames = y[: y.size // hop * hop].reshape(-1, hop)
    spec = np.abs(np.fft.rfft(frames, axis=1))
    freqs = np.fft.rfftfreq(hop, 1 / sr)
    loud = np.flatnonzero(np.sqrt(np.mean(frames ** 2, axis=1)) > 0.1)
    order = [freqs[np.argmax(spec[i])] for i in loud]
    firsts = [next(i for i, f in enumerate(order) if abs(f - target) < 150) for target in (300, 700, 1500)]
    assert firsts == sorted(firsts)
    # lead of the first clip (0.4 s) and tail of the last (0.4 s) whole; each join keeps 2 x 30-250 ms
    speech = 3 * 0.2
    assert 0.8 + speech + 4 * 0.03 - 0.03 <= y.size / sr <= 0.8 + speech + 4 * 0.25 + 0.03
    assert np.array_equal(y[: int(0.3 * sr)], clips[0][: int(0.3 * sr)])
    with pytest.raises(ParameterError, match="at least one clip"):
        join_clips([], np.random.default_rng(0), sr)
