import os

import numpy as np
import pytest
import soundfile as sf

from speechlstm import AudioError, ParameterError, load_audio
from speechlstm.audio import audio_info, stream_audio, to_float32_mono

from conftest import tone


def test_int16_wav_round_trip(wav_factory):
    y = tone(0.5)
    p = wav_factory("a.wav", y, subtype="PCM_16")
    z = load_audio(p)
    assert z.dtype == np.float32 and z.shape == y.shape
    assert np.abs(z - y).max() < 1.0 / 32768 + 1e-6


@pytest.mark.parametrize("fmt,subtype", [("x.flac", "PCM_24"), ("x.ogg", "VORBIS"), ("x.aiff", "PCM_16"),
                                         ("x.wav", "PCM_U8"), ("x.wav", "PCM_32"), ("x.wav", "DOUBLE")])
def test_formats_and_sample_types(wav_factory, fmt, subtype):
    y = tone(0.5)
    z = load_audio(wav_factory(fmt, y, subtype=subtype))
    assert z.dtype == np.float32 and abs(z.size - y.size) <= 2
    tol = 0.05 if subtype in ("VORBIS", "PCM_U8") else 1e-3
    n = min(z.size, y.size)
    assert np.sqrt(np.mean((z[:n] - y[:n]) ** 2)) < tol


def test_resample_and_downmix(wav_factory):
    sr = 44100
    left = tone(1.0, sr=sr, freq=300)
    stereo = np.stack([left, -left * 0 + left], axis=1)
    z = load_audio(wav_factory("s.wav", stereo, sr=sr, subtype="FLOAT"))
    assert z.shape == (16000,)
    # the tone survives resampling: peak of the spectrum at 300 Hz
    spec = np.abs(np.fft.rfft(z))
    assert abs(np.argmax(spec) * 16000 / z.size - 300) < 2


def test_eight_channels_96k(wav_factory):
    y = tone(0.25, sr=96000)
    data = np.stack([y * (k % 2) for k in range(8)], axis=1)
    z = load_audio(wav_factory("m.wav", data, sr=96000, subtype="PCM_16"))
    assert z.shape == (4000,)
    assert np.abs(z).max() == pytest.approx(0.5 * np.abs(y).max(), rel=0.05)


def test_array_sources():
    i16 = np.array([0, 16384, -32768, 32767], np.int16)
    assert np.allclose(load_audio(i16), [0, 0.5, -1, 32767 / 32768])
    u8 = np.array([128, 255, 0], np.uint8)
    assert np.allclose(load_audio(u8), [0, 127 / 128, -1])
    f = np.array([[0.5, -0.5], [1.5, 1.5]], np.float64)  # (n, channels), clipped to [-1, 1]
    assert np.allclose(load_audio(f), [0, 1])
    z = load_audio(tone(1.0, sr=8000), orig_sr=8000)
    assert z.shape == (16000,)


@pytest.mark.parametrize("bad", [np.zeros(0, np.float32), np.array([np.nan], np.float32),
                                 np.zeros((2, 2, 2), np.float32), np.array(["a"])])
def test_bad_arrays(bad):
    with pytest.raises(AudioError):
        load_audio(bad)


def test_bad_parameters():
    with pytest.raises(ParameterError, match="sr=0"):
        load_audio(np.zeros(10, np.float32), sr=0)
    with pytest.raises(ParameterError, match="list"):
        load_audio([0.0, 1.0])


@pytest.mark.parametrize("kind,pattern", [
    ("missing", "no such file"), ("directory", "directory"), ("empty", "empty file"),
    ("random_bytes", "not a readable audio file"), ("text", "not a readable audio file"),
    ("truncated_header", "not a readable audio file|no audio samples"),
    ("zero_samples", "no audio samples"), ("nan", "NaN or infinite"), ("inf", "NaN or infinite"),
])
def test_bad_files_name_the_file(bad_audio_files, kind, pattern):
    path = bad_audio_files[kind]
    with pytest.raises(AudioError, match=pattern) as info:
        load_audio(path)
    assert str(info.value).startswith(path)
    assert "\n" not in str(info.value)
    with pytest.raises(AudioError):
        list(stream_audio(path))


def test_stream_equals_load_same_rate(wav_factory):
    y = tone(3.3)
    p = wav_factory("a.wav", y, subtype="FLOAT")
    blocks = list(stream_audio(p, block_seconds=0.37))
    assert len(blocks) > 5
    assert np.array_equal(np.concatenate(blocks), load_audio(p))


@pytest.mark.parametrize("bad", [0, -0.5, float("inf"), float("nan"), "1", True])
def test_stream_refuses_a_bad_block_length(wav_factory, bad):
    p = wav_factory("a.wav", tone(0.5), subtype="FLOAT")
    with pytest.raises(ParameterError, match=r"block_seconds must be a number in \(0, inf\), got"):
        next(stream_audio(p, block_seconds=bad))


def test_stream_resampled_close_to_load(wav_factory):
    y = tone(3.0, sr=8000, freq=500)
    p = wav_factory("a.wav", y, sr=8000, subtype="FLOAT")
    s = np.concatenate(list(stream_audio(p, block_seconds=0.5)))
    w = load_audio(p)
    assert abs(s.size - w.size) <= 2
    n = min(s.size, w.size)
    assert np.sqrt(np.mean((s[100:n - 100] - w[100:n - 100]) ** 2)) < 1e-3


def test_audio_info(wav_factory):
    p = wav_factory("a.wav", tone(0.5, sr=22050), sr=22050)
    info = audio_info(p)
    assert (info.sample_rate, info.channels, info.frames) == (22050, 1, 11025)
    assert info.duration == pytest.approx(0.5)


def test_to_float32_mono_name_in_message():
    with pytest.raises(AudioError, match="^clip.wav: "):
        to_float32_mono(np.array([np.inf]), name="clip.wav")


def test_unreadable_file(tmp_path):
    """A file without read permission; as root, the check runs without the capabilities that bypass permissions."""
    import subprocess
    import sys

    d = tmp_path / "perm"
    d.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(d, 0o755)
    p = d / "locked.wav"
    sf.write(str(p), tone(0.2), 16000)
    os.chmod(p, 0)
    code = ("import sys\nfrom speechlstm import load_audio, AudioError\n"
            "try:\n    load_audio(sys.argv[1])\nexcept AudioError as e:\n    print(e)\n")
    cmd = [sys.executable, "-c", code, str(p)]
    if os.geteuid() == 0:
        cmd = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] + cmd
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert out.stdout.strip() == f"{p}: permission denied", out.stderr
