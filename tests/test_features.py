import numpy as np
import pytest

import naive
from speechlstm import FeatureConfig, ParameterError, extract_features
from speechlstm.features import (FeatureStats, FeatureStream, base_features, compute_stats,
                                 file_features, iter_file_features)

from conftest import chirp, tone


def test_default_sizes():
    cfg = FeatureConfig()
    assert (cfg.win_length, cfg.hop_length) == (400, 160)
    assert (cfg.base_dim, cfg.dim) == (39, 117)
    assert cfg.frame_rate == pytest.approx(100 / 3)
    assert float(cfg.frame_period) == 0.03


@pytest.mark.parametrize("n", [1, 399, 400, 401, 559, 560, 16000, 16001, 48123])
def test_frame_count_formula(n):
    cfg = FeatureConfig()
    n_base = 1 + (max(n, 400) - 400) // 160
    assert cfg.n_base_frames(n) == n_base
    assert cfg.n_frames(n) == -(-n_base // 3)
    y = tone(n / 16000) if n > 1 else np.array([0.1], np.float32)
    assert base_features(y, cfg).shape == (n_base, 39)
    assert extract_features(y, cfg).shape == (cfg.n_frames(n), 117)


def test_seconds_frames_conversion_exact():
    cfg = FeatureConfig()
    frames = np.arange(0, 10000)
    secs = cfg.frames_to_seconds(frames)
    assert np.array_equal(cfg.seconds_to_frames(secs), frames)
    assert cfg.frames_to_seconds(100) == pytest.approx(3.0)


def test_config_round_trip_and_validation():
    cfg = FeatureConfig(n_mfcc=20, n_mels=64, stack=4, subsample=2, cmvn="global", delta_order=1)
    assert FeatureConfig.from_dict(cfg.to_dict()) == cfg
    d = {k: np.asarray(v)[()] if not isinstance(v, str) else v for k, v in cfg.to_dict().items()}
    assert FeatureConfig.from_dict(d) == cfg  # numpy scalars, as read back from a model file
    assert cfg.dim == 20 * 2 * 4
    with pytest.raises(ParameterError, match="n_mfcc=50"):
        FeatureConfig(n_mfcc=50)
    with pytest.raises(ParameterError, match="cmvn='bogus'"):
        FeatureConfig(cmvn="bogus")
    with pytest.raises(ParameterError, match="unknown FeatureConfig keys: \\['colour'\\]"):
        FeatureConfig.from_dict({"colour": 1})
    with pytest.raises(ParameterError, match="hop_ms"):
        FeatureConfig(hop_ms=30)
    for name, bad in (("win_ms", float("inf")), ("hop_ms", float("nan")), ("fmin", "20"), ("fmax", float("inf"))):
        with pytest.raises(ParameterError, match=f"FeatureConfig.{name}={bad!r}: must be a finite number"):
            FeatureConfig(**{name: bad})
    y = np.sin(np.linspace(0, 800, 8000)).astype(np.float32)  # fmax None, like 0, is the Nyquist frequency
    np.testing.assert_array_equal(base_features(y, FeatureConfig(fmax=None)), base_features(y, FeatureConfig(fmax=0.0)))


def test_stacking_layout():
    cfg = FeatureConfig(cmvn="none")
    y = chirp(0.5)
    base = base_features(y, cfg)
    x = extract_features(y, cfg)
    n = base.shape[0]
    for j in range(x.shape[0]):
        rows = [min(3 * j + k, n - 1) for k in range(3)]
        assert np.array_equal(x[j], np.concatenate([base[r] for r in rows]))


def test_gain_moves_only_c0():
    """Known answer: gain g adds 20 log10 g dB to every mel band, i.e. to c0 only (ortho DCT)."""
    cfg = FeatureConfig(cmvn="none", delta_order=0, stack=1, subsample=1)
    y = (0.1 * np.random.default_rng(0).standard_normal(8000)).astype(np.float32)  # all bands lit
    a, b = base_features(y, cfg), base_features(4 * y, cfg)
    shift = 20 * np.log10(4) * np.sqrt(cfg.n_mels)
    assert np.allclose(b[:, 0] - a[:, 0], shift, atol=1e-3)
    assert np.allclose(b[:, 1:], a[:, 1:], atol=1e-3)


def test_deltas_of_linear_ramp():
    """Regression delta of a ramp is its slope; delta-delta is zero (away from the edges)."""
    from speechlstm.features import _delta

    c = np.arange(20, dtype=np.float32)[:, None] * np.array([[1.0, -2.0]], np.float32)
    d = _delta(c, 2)
    assert np.allclose(d[2:-2], [[1.0, -2.0]])
    assert np.allclose(_delta(d, 2)[4:-4], 0)


def test_utterance_cmvn_is_zero_mean_unit_var():
    x = extract_features(tone(2.0) + chirp(2.0), FeatureConfig(stack=1, subsample=1))
    assert np.allclose(x.mean(0), 0, atol=1e-4)
    assert np.allclose(x.std(0), 1, atol=1e-3)


def test_global_cmvn_needs_stats():
    cfg = FeatureConfig(cmvn="global")
    with pytest.raises(ParameterError, match="needs stats"):
        extract_features(tone(0.5), cfg)
    st = compute_stats([base_features(tone(0.5), cfg), base_features(chirp(0.5), cfg)])
    x = extract_features(tone(0.5), cfg, stats=st)
    assert x.shape == (cfg.n_frames(8000), 117)
    with pytest.raises(ParameterError, match="features"):
        extract_features(tone(0.5), cfg, stats=FeatureStats(np.zeros(3), np.ones(3)))


@pytest.mark.parametrize("cmvn", ["none", "global"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stream_equals_whole(cmvn, seed):
    cfg = FeatureConfig(cmvn=cmvn)
    rng = np.random.default_rng(seed)
    y = (tone(2.7, seed=seed) + chirp(2.7)) * 0.5
    st = compute_stats([base_features(y, cfg)]) if cmvn == "global" else None
    whole = extract_features(y, cfg, stats=st)
    s = FeatureStream(cfg, stats=st)
    parts, i = [], 0
    while i < y.size:
        k = int(rng.integers(1, 3000)) if seed else 1 + (i % 7)  # seed 0: tiny chunks
        parts.append(s.accept(y[i : i + k]))
        i += k
    parts.append(s.finish())
    streamed = np.concatenate(parts)
    assert streamed.shape == whole.shape
    assert np.allclose(streamed, whole, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("n", [10, 399, 500, 1000])
def test_stream_short_inputs(n):
    cfg = FeatureConfig(cmvn="none")
    y = tone(n / 16000)
    s = FeatureStream(cfg)
    out = np.concatenate([s.accept(y), s.finish()])
    assert np.allclose(out, extract_features(y, cfg), atol=1e-4)


def test_stream_refuses_utterance_cmvn_and_misuse():
    with pytest.raises(ParameterError, match="utterance"):
        FeatureStream(FeatureConfig(cmvn="utterance"))
    s = FeatureStream(FeatureConfig(cmvn="none"))
    with pytest.raises(ParameterError, match="no samples"):
        s.finish()


@pytest.mark.parametrize("cmvn", ["utterance", "none"])
def test_file_features_chunked_equals_whole(wav_factory, tmp_path, cmvn):
    cfg = FeatureConfig(cmvn=cmvn)
    y = (tone(7.3) + chirp(7.3)) * 0.4
    p = wav_factory("long.wav", y, subtype="FLOAT")
    whole = extract_features(y, cfg)
    parts = list(iter_file_features(p, cfg, block_seconds=0.77))
    assert len(parts) > 5
    assert np.allclose(np.concatenate(parts), whole, atol=2e-4, rtol=1e-4)
    out = file_features(p, cfg, out=str(tmp_path / "f.npy"))
    arr = np.load(out)
    assert arr.shape == whole.shape and np.allclose(arr, whole, atol=2e-4, rtol=1e-4)


def test_features_cli(wav_factory, tmp_path):
    from click.testing import CliRunner

    from speechlstm.cli import main

    p = wav_factory("a b ü.wav", tone(1.0))
    out = tmp_path / "f.npy"
    r = CliRunner().invoke(main, ["features", p, "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert np.load(out).shape == (FeatureConfig().n_frames(16000), 117)
    r = CliRunner().invoke(main, ["features", str(tmp_path / "nope.wav"), "--out", str(out)])
    assert r.exit_code == 1
    assert r.output.strip() == f"speechlstm: error: {tmp_path / 'nope.wav'}: no such file"


@pytest.mark.parametrize("cfg", [FeatureConfig(), FeatureConfig(sample_rate=8000, n_mels=23, fmin=0.0, win_ms=32)])
def test_mfcc_equals_librosa(cfg):
    """The front end is librosa's MFCC, computed without importing librosa at run time."""
    import librosa

    from speechlstm.features import _mfcc

    y = (chirp(1.0, sr=cfg.sample_rate, f1=cfg.sample_rate / 2.5) + 0.05 * tone(1.0, sr=cfg.sample_rate)).astype(np.float32)
    S = librosa.feature.melspectrogram(y=y, sr=cfg.sample_rate, n_fft=cfg.win_length, hop_length=cfg.hop_length,
                                       win_length=cfg.win_length, window="hann", center=False, power=2.0,
                                       n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax or cfg.sample_rate / 2)
    ref = librosa.feature.mfcc(S=librosa.power_to_db(S, ref=1.0, amin=1e-10, top_db=None), n_mfcc=cfg.n_mfcc).T
    ours = _mfcc(y, cfg)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=2e-3, rtol=1e-4)


# ------------------------------------------------------------------------------------------------
# vocal-tract-length perturbation (frequency warp before the mel filterbank)
# ------------------------------------------------------------------------------------------------
def _peak_bin(power):
    return int(np.argmax(power))


def test_warp_moves_a_tone_to_alpha_times_its_frequency():
    from speechlstm.features import WARP_BOUNDARY

    n_bins = 201  # a 400-sample window
    for alpha in (0.85, 0.9, 1.0, 1.1, 1.2):
        for src in (20, 50, 100):
            power = np.zeros(n_bins)
            power[src] = 1.0
            warped = power @ naive.warp_matrix(alpha, n_bins, WARP_BOUNDARY)
            # below the boundary the warp is a pure scaling: the energy lands within one bin of alpha*f
            assert abs(_peak_bin(warped) - alpha * src) <= 1.0, (alpha, src)
    for alpha in (0.8, 1.0, 1.25):
        M = naive.warp_matrix(alpha, n_bins, WARP_BOUNDARY)
        np.testing.assert_allclose(M.sum(axis=0), 1.0)  # each target bin interpolates two sources
        flat = np.ones(n_bins) @ M
        np.testing.assert_allclose(flat, 1.0)  # a flat spectrum stays flat: nothing leaves the band
        top = np.zeros(n_bins)
        top[-1] = 1.0
        assert _peak_bin(top @ M) == n_bins - 1  # the Nyquist frequency stays in place
    np.testing.assert_array_equal(naive.warp_matrix(1.0, n_bins, WARP_BOUNDARY), np.eye(n_bins))
    assert 0 < WARP_BOUNDARY < 1


def test_base_features_warp():
    cfg = FeatureConfig()
    t = np.arange(cfg.sample_rate) / cfg.sample_rate
    y = (0.3 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32)
    plain = base_features(y, cfg)
    np.testing.assert_array_equal(base_features(y, cfg, warp=1.0), plain)
    up, down = base_features(y, cfg, warp=1.1), base_features(y, cfg, warp=0.9)
    assert up.shape == plain.shape == down.shape and up.dtype == np.float32
    assert not np.allclose(up, plain) and not np.allclose(down, plain)
    from speechlstm.features import WARP_BOUNDARY, _mel_basis, _warped_mel_basis

    fb = _mel_basis(cfg).astype(np.float64)
    for a in (0.87, 1.0, 1.13):  # the scattered filterbank is the dense warp's fb @ M.T
        np.testing.assert_allclose(_warped_mel_basis(cfg, a), fb @ naive.warp_matrix(a, fb.shape[1], WARP_BOUNDARY).T,
                                   atol=1e-7)
    # through the warped filterbank the tone's mel band moves up for warp > 1 and down for < 1
    win = cfg.win_length
    spec = np.abs(np.fft.rfft(y[:win] * np.hanning(win))) ** 2
    bands = {a: int(np.argmax(_warped_mel_basis(cfg, a) @ spec)) for a in (0.9, 1.0, 1.1)}
    assert bands[0.9] < bands[1.0] < bands[1.1], bands
    for bad in (0.4, 2.5, float("nan"), "1.1", None, True):
        with pytest.raises(ParameterError, match="warp must be a number in \\[0.5, 2\\]"):
            base_features(y, cfg, warp=bad)
