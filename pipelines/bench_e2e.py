"""End-to-end speed of the shipped model (or ``--model``).

    python pipelines/bench_e2e.py [--model NAME_OR_PATH]

1. ``model.transcribe`` real-time factor on one core (numba threads = 1, BLAS 1 thread), median over
   the audio samples concatenated into a 60 s recording, after a first warm-up call;
2. wall time of ``speechlstm transcribe`` on a 3 s file, first and second run (the second uses
   Numba's on-disk cache of compiled kernels);
3. ``speechlstm spot`` throughput with 1 and 2 worker processes over 200 files, in audio-hours per
   minute.
"""
import glob
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import click
import numpy as np


@click.command()
@click.option("--files", "n_files", default=200, show_default=True, help="Files for the spot benchmark.")
@click.option("--model", "model_name", default=None, help="Model name or .npz path (default: the shipped model).")
def main(n_files, model_name):
    import numba
    import soundfile as sf
    from threadpoolctl import threadpool_limits

    from speechlstm import load_audio, load_model

    here = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "audio_samples")
    wavs = sorted(glob.glob(os.path.join(here, "*.wav")))
    y = np.concatenate([load_audio(p) for p in wavs])
    y = np.concatenate([y] * int(np.ceil(60 * 16000 / y.size)))[: 60 * 16000]
    model = load_model(model_name)
    print(f"model: {model.name} ({len(model.members)} network{'s' if len(model.members) > 1 else ''})")
    model_arg = ["--model", model.path]
    numba.set_num_threads(1)
    with threadpool_limits(1):
        model.transcribe(y)
        ts = []
        for _ in range(5):
            t0 = time.perf_counter()
            model.transcribe(y)
            ts.append(time.perf_counter() - t0)
    rtf = statistics.median(ts) / 60.0
    print(f"transcribe RTF, one core, 60 s of audio: {rtf:.5f} (median of 5; {statistics.median(ts) * 1000:.0f} ms)")

    tmp = tempfile.mkdtemp()
    three = os.path.join(tmp, "three_seconds.wav")
    sf.write(three, y[: 3 * 16000], 16000)
    walls = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "speechlstm", "transcribe", three, *model_arg], check=True, capture_output=True)
        walls.append(time.perf_counter() - t0)
    print(f"speechlstm transcribe on a 3 s file: first {walls[0]:.2f} s, then {walls[1]:.2f} s, {walls[2]:.2f} s")

    d = os.path.join(tmp, "spot")
    os.makedirs(d)
    for i in range(n_files):
        shutil.copy(wavs[i % len(wavs)], os.path.join(d, f"{i:04d}_{os.path.basename(wavs[i % len(wavs)])}"))
    audio_h = sum(sf.info(os.path.join(d, f)).duration for f in os.listdir(d)) / 3600
    for workers in (1, 2):
        out = os.path.join(tmp, f"spot{workers}.csv")
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "speechlstm", "spot", d, "--keywords", "yes,no,stop,go,left,right",
                        "--out", out, "--workers", str(workers), "--quiet", *model_arg], check=True, capture_output=True)
        wall = time.perf_counter() - t0
        print(f"spot, {workers} worker(s), {n_files} files ({audio_h * 60:.2f} audio-min): {wall:.1f} s wall = "
              f"{audio_h / (wall / 60):.3f} audio-hours per minute (start-up included)")
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
