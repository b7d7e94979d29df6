"""Decoder and keyword-scoring speed over one hour of frames (33.3 frames/s → 120,000 frames).

    python pipelines/bench_decode.py [--model commands] [--hours 1]

The frames are real model output: the shipped model's log-probabilities of the audio samples,
tiled to the requested length.  Prints median wall times (one core: numba threads = 1) for greedy
decoding, prefix beam search (width 16, free text and with the model's word list) and keyword
scoring of 100 keywords.
"""
import glob
import os

import click
import numpy as np
from benchutil import median_time


@click.command()
@click.option("--model", "model_name", default=None)
@click.option("--hours", default=1.0, show_default=True)
@click.option("--repeats", default=3, show_default=True)
def main(model_name, hours, repeats):
    import numba

    from speechlstm import load_model
    from speechlstm.data import SPEECH_COMMANDS_WORDS
    from speechlstm.decoding import BeamSearchDecoder, greedy_decode
    from speechlstm.kws import keyword_scores

    numba.set_num_threads(1)
    model = load_model(model_name)
    here = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "audio_samples")
    parts = [model.log_probs(p)[0] for p in sorted(glob.glob(os.path.join(here, "*.wav")))]
    one = np.concatenate(parts)
    n = int(hours * 3600 * model.features.frame_rate)
    lp = np.concatenate([one] * (n // one.shape[0] + 1))[:n]
    kws = (list(SPEECH_COMMANDS_WORDS) * 3)[:100]
    kws = [f"{w}{'' if i < 35 else ' ' + SPEECH_COMMANDS_WORDS[i % 35]}" for i, w in enumerate(kws)]  # 100 distinct
    A = model.alphabet
    rows = [
        ("greedy", lambda: greedy_decode(lp, A)),
        ("beam 16, free text", lambda: BeamSearchDecoder(A, beam_width=16).decode(lp)),
        ("beam 16, word list (35 words)", lambda: BeamSearchDecoder(A, beam_width=16, words=SPEECH_COMMANDS_WORDS).decode(lp)),
        ("keyword scoring, 100 keywords", lambda: keyword_scores(lp, kws, A)),
    ]
    print(f"{n} frames = {hours} h of audio at {model.features.frame_rate:.2f} frames/s; numba threads = 1")
    print("| task | median seconds |")
    print("|---|---:|")
    for name, fn in rows:
        print(f"| {name} | {median_time(fn, repeats):.3f} |")


if __name__ == "__main__":
    main()
