"""The audio samples the tests use (audio_samples/) and the shipped models' documented mistakes on them."""
import os

SAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "audio_samples")


def known_errors(model_name):
    """A shipped model's documented mistakes on the samples (audio_samples/README.md): file -> its output."""
    with open(os.path.join(SAMPLES, "shipped_model_errors.tsv"), encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    return {name: out for model, name, out in rows if model == model_name}
