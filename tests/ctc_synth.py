"""Synthetic CTC posteriors for decoder tests: a text rendered as peaky frames plus noise."""
import numpy as np

from speechlstm.alphabet import Alphabet


def make_logp(text, *, alphabet=None, frames_per=3, noise=0.5, seed=0, lead=2, boost=8.0, confuse=None):
    """Each character gets one peak frame followed by ``frames_per`` blank frames.

    ``confuse``: {char: (other_char, share)} gives that share of the peak to another character.
    """
    A = alphabet or Alphabet()
    rng = np.random.default_rng(seed)
    ids = [0] * lead
    for ch in text:
        ids += [A.labels.index(ch)] + [0] * frames_per
    T = len(ids)
    z = rng.standard_normal((T, len(A))) * noise
    z[np.arange(T), ids] += boost
    if confuse:
        for t, i in enumerate(ids):
            ch = A.labels[i]
            if ch in confuse:
                other, share = confuse[ch]
                z[t, A.labels.index(other)] = z[t, i] + np.log(share / (1 - share))
    return z - np.log(np.exp(z).sum(1, keepdims=True))
