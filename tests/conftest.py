import glob
import os
import platform
import sys

# No GPU here: numba.cuda runs on its simulator, so tests/test_gpu_*.py run everywhere (CI included).
# This must happen before anything imports numba.cuda.
if not glob.glob("/dev/nvidia[0-9]*") and "NUMBA_ENABLE_CUDASIM" not in os.environ:
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"

import numpy as np
import pytest
import soundfile as sf

if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
    # two sequences per block of the persistent LSTM kernel (a compile-time size, so set before
    # speechlstm.gpu_lstm is imported): the small test batches then span several blocks
    from speechlstm import config as _config

    _config.CUDA_SEQS_PER_BLOCK = 2


def tone(seconds=1.0, sr=16000, freq=440.0, amp=0.5, seed=0):
    """A sine tone with a little noise, float32."""
    t = np.arange(int(round(seconds * sr))) / sr
    rng = np.random.default_rng(seed)
    return (amp * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def chirp(seconds=1.0, sr=16000, f0=100.0, f1=4000.0, amp=0.5):
    t = np.arange(int(round(seconds * sr))) / sr
    k = (f1 - f0) / seconds
    return (amp * np.sin(2 * np.pi * (f0 * t + 0.5 * k * t * t))).astype(np.float32)


@pytest.fixture
def wav_factory(tmp_path):
    def make(name, data, sr=16000, subtype=None):
        p = tmp_path / name
        sf.write(str(p), data, sr, subtype=subtype)
        return str(p)

    return make


@pytest.fixture
def bad_audio_files(tmp_path):
    """Every kind of bad input the loader must refuse, name -> path."""
    files = {}
    files["missing"] = str(tmp_path / "does_not_exist.wav")
    d = tmp_path / "a_directory.wav"
    d.mkdir()
    files["directory"] = str(d)
    p = tmp_path / "empty.wav"
    p.write_bytes(b"")
    files["empty"] = str(p)
    p = tmp_path / "random.wav"
    p.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    files["random_bytes"] = str(p)
    p = tmp_path / "notes.wav"
    p.write_text("this is a text file, not audio\n" * 20)
    files["text"] = str(p)
    good = tmp_path / "good.wav"
    sf.write(str(good), tone(0.5), 16000, subtype="PCM_16")
    p = tmp_path / "truncated.wav"
    p.write_bytes(good.read_bytes()[:30])
    files["truncated_header"] = str(p)
    p = tmp_path / "zero_samples.wav"
    sf.write(str(p), np.zeros((0,), np.float32), 16000, subtype="PCM_16")
    files["zero_samples"] = str(p)
    p = tmp_path / "nan.wav"
    y = tone(0.5)
    y[100] = np.nan
    sf.write(str(p), y, 16000, subtype="FLOAT")
    files["nan"] = str(p)
    p = tmp_path / "inf.wav"
    y = tone(0.5)
    y[7] = np.inf
    sf.write(str(p), y, 16000, subtype="FLOAT")
    files["inf"] = str(p)
    return files


# MKL's wheel exists for Linux x86-64 only (the test extra installs it there)
MKL_FROM_TEST_EXTRA = sys.platform == "linux" and platform.machine() == "x86_64"


@pytest.fixture(params=["openblas"] + (["mkl"] if MKL_FROM_TEST_EXTRA else []))
def blas(request):
    """Run the test once with each BLAS of the CPU kernels (where the test extra installs MKL, the
    ``mkl`` case fails, not skips, if it is missing); the previous choice comes back after."""
    from speechlstm import linalg

    before = linalg.blas_choice()  # the name asked for: "auto" stays "auto", as the trainer reads it
    linalg.set_blas(request.param)
    yield request.param
    linalg.set_blas(before)
