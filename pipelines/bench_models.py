"""CPU time of the shipped models side by side, for choosing one by accuracy per CPU-millisecond.

    python pipelines/bench_models.py [--model NAME_OR_PATH ...] [--rounds 21]

Every model runs in one process, on one core (numba threads = 1, BLAS 1 thread), in rounds; each
round times every model once, in an order that rotates from round to round, so a busy spell of the
machine falls on all of them alike.  Timed per model and round:

1. ``transcribe``: ``model.transcribe`` of a 60 s recording (the audio samples concatenated),
   features + network(s) + vocabulary beam search (width 16) — CPU ms per second of audio;
2. ``network``: ``model.log_probs`` of the same recording (features + network(s), no search);
3. ``classify``: ``model.classify`` of each of 20 one-second clips (the 12-class task's path) —
   ms per clip.

Printed per model (named as given: a shipped name or the file's path): networks, parameters, the
median of each time, and the median over rounds of its ratio to the first model's time in the same
round (the first model is the baseline: by default the shipped default ``commands``), beside the
held-out accuracies stored in the model file (``speechlstm info``: FSDD closed-set digits, Speech
Commands v2 and v0.01-sample 12-class).
"""
import glob
import os
import statistics
import time

import click
import numpy as np

SECONDS = 60  # s of audio per transcribe / network call
CLIP_SECONDS = 1.0  # s, the classify clips
N_CLIPS = 20
ACCURACY_KEYS = (("fsdd_digit_accuracy_classify", "FSDD george"), ("sc_v2_12class_accuracy", "SC v2"),
                 ("sc_sample_12class_accuracy", "v0.01 sample"))


def _samples_dir() -> str:
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "audio_samples")


def _n_params(model) -> int:
    return int(sum(np.asarray(v).size for a in model.members for v in a.params.values()))


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


@click.command()
@click.option("--model", "model_names", multiple=True,
              help="Model name or .npz path, repeatable; the first is the baseline (default: every shipped model, "
                   "the default first).")
@click.option("--rounds", type=click.IntRange(min=1), default=21, show_default=True)
def main(model_names, rounds):
    import numba
    from threadpoolctl import threadpool_limits

    from speechlstm import load_audio, load_model
    from speechlstm.errors import SpeechLSTMError, error_line
    from speechlstm.model import available_models

    if not model_names:
        shipped = available_models()
        model_names = ["commands"] + [m for m in shipped if m != "commands"]
    try:
        models = [load_model(n) for n in model_names]
    except (SpeechLSTMError, OSError) as exc:  # an unknown name, a truncated or tampered file: one line
        raise click.ClickException(error_line(exc)) from None
    if len({m.features.sample_rate for m in models}) > 1:
        raise click.ClickException("the models run at different sample rates: "
                                   + ", ".join(f"{m.name} {m.features.sample_rate} Hz" for m in models))
    sr = models[0].features.sample_rate
    wavs = sorted(glob.glob(os.path.join(_samples_dir(), "*.wav")))
    y = np.concatenate([load_audio(p) for p in wavs])
    y = np.concatenate([y] * int(np.ceil(SECONDS * sr / y.size)))[: SECONDS * sr]
    n_clip = int(CLIP_SECONDS * sr)
    starts = np.linspace(0, y.size - n_clip, N_CLIPS).astype(int)
    clips = [y[s: s + n_clip] for s in starts]

    tasks = {
        "transcribe": lambda m: m.transcribe(y),
        "network": lambda m: m.log_probs(y),
        "classify": lambda m: [m.classify(c) for c in clips],
    }
    scale = {"transcribe": 1000.0 / SECONDS, "network": 1000.0 / SECONDS, "classify": 1000.0 / N_CLIPS}
    times = {(i, t): [] for i in range(len(models)) for t in tasks}
    numba.set_num_threads(1)
    with threadpool_limits(1):
        for m in models:  # warm-up: compile, load caches
            for fn in tasks.values():
                fn(m)
        for r in range(rounds):
            order = [(r + k) % len(models) for k in range(len(models))]
            for i in order:
                for t, fn in tasks.items():
                    times[(i, t)].append(_timed(lambda: fn(models[i])))

    labels = list(model_names)  # as given: a shipped name, or the path (run models share the name "commands")
    print(f"one core, {rounds} rounds; medians; ratio = median over rounds of (model / {labels[0]}) in the same round")
    head = ("| model | networks | parameters | transcribe ms per s of audio (ratio) | network ms per s of audio (ratio) "
            "| classify ms per 1 s clip (ratio) | " + " | ".join(label for _, label in ACCURACY_KEYS) + " |")
    print(head)
    print("|" + "---|" * (6 + len(ACCURACY_KEYS)))
    for i, m in enumerate(models):
        cells = [labels[i], str(len(m.members)), f"{_n_params(m):,}"]
        for t in tasks:
            med = statistics.median(times[(i, t)]) * scale[t]
            ratio = statistics.median(a / b for a, b in zip(times[(i, t)], times[(0, t)]))
            cells.append(f"{med:.2f} ({ratio:.2f})")
        metrics = m.meta.get("metrics", {})
        cells += [f"{100 * metrics[k]:.1f} %" if k in metrics else "—" for k, _ in ACCURACY_KEYS]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
