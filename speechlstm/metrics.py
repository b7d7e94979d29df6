"""Error rates and classification metrics."""
from __future__ import annotations

import math
from typing import Sequence, Tuple

import numpy as np

__all__ = ["edit_distance", "wer", "cer", "error_counts", "confusion_matrix", "command_class", "wilson_interval",
           "bootstrap_rate_interval", "mcnemar_exact", "paired_bootstrap_difference"]


def edit_distance(ref: Sequence, hyp: Sequence) -> int:
    """Levenshtein distance between two sequences."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def error_counts(refs: Sequence[str], hyps: Sequence[str], unit: str = "word") -> Tuple[int, int]:
    """(errors, reference length) summed over pairs; unit "word" or "char"."""
    errs = n = 0
    for r, h in zip(refs, hyps):
        rs, hs = (r.split(), h.split()) if unit == "word" else (list(r), list(h))
        errs += edit_distance(rs, hs)
        n += len(rs)
    return errs, n


def wer(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Word error rate over a corpus (errors / reference words); 0 when there are no words and no
    hypotheses, inf-free: empty references count insertions against 1."""
    e, n = error_counts(refs, hyps, "word")
    return e / max(n, 1)


def cer(refs: Sequence[str], hyps: Sequence[str]) -> float:
    e, n = error_counts(refs, hyps, "char")
    return e / max(n, 1)


def wilson_interval(successes: int, n: int, *, z: float = 1.959964) -> Tuple[float, float]:
    """Wilson score interval of a proportion (``z`` = 1.96: 95 %), e.g. for an accuracy of
    ``successes`` right out of ``n``; (0, 1) when ``n`` is 0.  Unlike the normal approximation it
    stays inside [0, 1] and is sensible at 0 or ``n`` successes.
    """
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def bootstrap_rate_interval(errors: Sequence[int], lengths: Sequence[int], *, level: float = 0.95,
                            draws: int = 2000, seed: int = 0) -> Tuple[float, float]:
    """Percentile bootstrap interval of a corpus error rate sum(errors) / sum(lengths) (WER, CER),
    resampling whole utterances (their errors are not independent word by word); deterministic for
    a seed.  Returns (lo, hi); (0, 0) for an empty corpus.
    """
    e = np.asarray(errors, np.float64)
    n = np.asarray(lengths, np.float64)
    if e.size == 0:
        return 0.0, 0.0
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, e.size, size=(draws, e.size))
    rates = e[idx].sum(1) / np.maximum(n[idx].sum(1), 1)
    a = (1 - level) / 2
    return float(np.quantile(rates, a)), float(np.quantile(rates, 1 - a))


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar test of two systems scored on the same items: ``only_a`` items only
    system A gets right, ``only_b`` only B.  Returns the p-value of "both are equally accurate" (the
    binomial probability, at p = 1/2, of a split at least this uneven); 1.0 when they never disagree.
    """
    if only_a < 0 or only_b < 0:
        raise ValueError(f"counts must be >= 0, got {only_a}, {only_b}")
    n = only_a + only_b
    if n == 0:
        return 1.0
    k = min(only_a, only_b)
    # sum of C(n, i) / 2^n for i <= k, in logs (n may be in the thousands)
    logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2) for i in range(k + 1)]
    top = max(logs)
    tail = math.exp(top) * sum(math.exp(v - top) for v in logs)
    return float(min(1.0, 2.0 * tail))


def paired_bootstrap_difference(errors_a: Sequence[float], errors_b: Sequence[float], lengths: Sequence[float], *,
                                level: float = 0.95, draws: int = 2000, seed: int = 0) -> Tuple[float, float, float]:
    """Error rate of A minus that of B over the same utterances, with a paired percentile bootstrap
    interval (both systems resampled with the same utterances, so what the utterances share cancels).
    ``errors_*`` are per-utterance error counts (word errors, or 1/0 for a wrong/right class) and
    ``lengths`` the reference lengths (1 per item for a classification).  Returns (difference, lo, hi):
    below zero, A makes fewer errors.
    """
    a = np.asarray(errors_a, np.float64)
    b = np.asarray(errors_b, np.float64)
    n = np.asarray(lengths, np.float64)
    if not (a.shape == b.shape == n.shape) or a.ndim != 1:
        raise ValueError(f"errors_a, errors_b and lengths must be 1-D of one length, got {a.shape}, {b.shape}, {n.shape}")
    if a.size == 0:
        return 0.0, 0.0, 0.0
    diff = a - b  # per utterance: the difference's bootstrap is a rate's, of these "errors"
    lo, hi = bootstrap_rate_interval(diff, n, level=level, draws=draws, seed=seed)
    return float(diff.sum() / max(n.sum(), 1)), lo, hi


def command_class(text: str, classes: Sequence[str]) -> str:
    """Map a transcript to the 12-class Speech Commands label: the command word, ``_silence_``
    for no speech, ``_unknown_`` for anything else."""
    t = text.strip()
    if not t:
        return "_silence_"
    return t if t in classes else "_unknown_"


def confusion_matrix(refs: Sequence[str], hyps: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    idx = {l: i for i, l in enumerate(labels)}
    m = np.zeros((len(labels), len(labels)), np.int64)
    for r, h in zip(refs, hyps):
        m[idx[r], idx[h]] += 1
    return m
