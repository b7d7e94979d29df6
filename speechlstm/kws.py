"""Open-vocabulary keyword spotting over per-frame CTC log-probabilities.

Score of a keyword occurrence
-----------------------------
Let ``d[t, c] = log p(c | t) - max_c' log p(c' | t)`` (≤ 0): how much worse symbol ``c`` is than
the frame's best symbol.  For a keyword with characters ``k1..kK``, a Viterbi pass finds, for every
end frame, the best CTC alignment of ``k1 (blank) k2 ... kK`` (blanks allowed between characters,
repeats collapsed) that may start at any frame and ends on ``kK``: the path maximising the sum of
``d``.  The occurrence's score is ``exp(mean of d over its frames)`` — the per-frame geometric
mean of p(keyword path) / p(unconstrained best path) — in [0, 1], and 1 when the keyword *is* the
best path there.  The span runs from the frame of ``k1`` to the last frame of ``kK``.

Word boundaries: when the best path emits a letter right before the span or right after it
(no space or silence in between), the keyword is inside a longer word ("on" in "one"); each such
side multiplies the score by ``boundary_penalty`` (0.3 by default).

Overlapping candidates of the same keyword are reduced to the best-scoring one.
"""
from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np
from numba import njit

from .alphabet import Alphabet, normalize_text
from .errors import ParameterError

__all__ = ["spot_keywords", "keyword_scores"]


@njit(cache=True, error_model="numpy")
def _scan(d, ext, log_thresh, out_start, out_end, out_score):
    """Viterbi with free start over states ext (chars and blanks); returns candidates whose
    per-frame mean penalty is above log_thresh, reduced by non-maximum suppression."""
    T = d.shape[0]
    S = ext.shape[0]
    v = np.full(S, -np.inf)
    st = np.zeros(S, np.int64)
    nv = np.empty(S)
    nst = np.empty(S, np.int64)
    n = 0
    g_start, g_end, g_score = -1, -1, -np.inf  # current group of overlapping candidates
    for t in range(T):
        for s in range(S):
            best = v[s]
            bst = st[s]
            if s >= 1 and v[s - 1] > best:
                best = v[s - 1]
                bst = st[s - 1]
            if s >= 2 and ext[s] != ext[s - 2] and v[s - 2] > best:  # skip the blank between chars
                best = v[s - 2]
                bst = st[s - 2]
            if s == 0 and best < 0.0:  # free start: begin here with nothing spent
                best = 0.0
                bst = t
            nv[s] = best + d[t, ext[s]]
            nst[s] = bst
        for s in range(S):
            v[s] = nv[s]
            st[s] = nst[s]
        length = t - st[S - 1] + 1
        mean = v[S - 1] / length
        if mean >= log_thresh:
            if g_end >= 0 and st[S - 1] <= g_end:  # overlaps the current group
                if mean > g_score:
                    g_start, g_end, g_score = st[S - 1], t, mean
                elif t > g_end:
                    pass
            else:
                if g_end >= 0:
                    out_start[n] = g_start
                    out_end[n] = g_end
                    out_score[n] = g_score
                    n += 1
                g_start, g_end, g_score = st[S - 1], t, mean
    if g_end >= 0:
        out_start[n] = g_start
        out_end[n] = g_end
        out_score[n] = g_score
        n += 1
    return n


def _neighbours(best: np.ndarray, blank: int):
    """For every frame, the last non-blank best symbol of the runs before the run holding that
    frame, and the first one of the runs after it (-1 when none).  Working on runs matters: an
    alignment may stop on the first frame of a character the best path repeats."""
    T = best.size
    prev = np.full(T, -1, np.int64)
    nxt = np.full(T, -1, np.int64)
    last = -1
    for t in range(T):
        if t > 0 and best[t] != best[t - 1] and best[t - 1] != blank:
            last = best[t - 1]
        prev[t] = last
    last = -1
    for t in range(T - 1, -1, -1):
        if t < T - 1 and best[t] != best[t + 1] and best[t + 1] != blank:
            last = best[t + 1]
        nxt[t] = last
    return prev, nxt


def keyword_scores(logp: np.ndarray, keywords: Sequence[str], alphabet: Alphabet, *, threshold: float = 0.5,
                   boundary_penalty: float = 0.3) -> Dict[str, List[tuple]]:
    """Detections per keyword as ``(start_frame, end_frame_exclusive, score)`` tuples.

    Parameters
    ----------
    logp : np.ndarray [shape=(T, C)]
        per-frame log-probabilities (log-softmax output of a CTC model).
    keywords : sequence of str
        any text; normalised with :func:`~speechlstm.alphabet.normalize_text`.
    threshold : float in [0, 1]
    """
    lp = np.asarray(logp, dtype=np.float32)
    if lp.ndim != 2 or lp.shape[1] != len(alphabet):
        raise ParameterError(f"log-probabilities must be [T, {len(alphabet)}], got shape {lp.shape}")
    if not 0.0 <= threshold <= 1.0:
        raise ParameterError(f"threshold must lie in [0, 1], got {threshold!r}")
    if not 0.0 <= boundary_penalty <= 1.0:
        raise ParameterError(f"boundary_penalty must lie in [0, 1], got {boundary_penalty!r}")
    kws = {}
    for k in keywords:
        norm = normalize_text(k)
        if not norm:
            raise ParameterError(f"keyword {k!r} has no letters")
        kws[k] = alphabet.encode(norm, normalize=False)
    T = lp.shape[0]
    out = {k: [] for k in kws}
    if T == 0:
        return out
    d = (lp - lp.max(axis=1, keepdims=True)).astype(np.float64)
    best = lp.argmax(axis=1)
    prev, nxt = _neighbours(best, alphabet.blank)
    space = alphabet.space
    log_cand = np.log(max(threshold * boundary_penalty ** 2, 1e-30))
    starts = np.empty(T, np.int64)
    ends = np.empty(T, np.int64)
    scores = np.empty(T)
    for k, ids in kws.items():
        ext = np.empty(2 * len(ids) - 1, np.int64)
        ext[0::2] = ids
        ext[1::2] = alphabet.blank
        n = _scan(d, ext, log_cand, starts, ends, scores)
        for i in range(n):
            s, e = int(starts[i]), int(ends[i])
            score = float(np.exp(scores[i]))
            for nb in (prev[s], nxt[e]):
                if nb >= 0 and nb != space:
                    score *= boundary_penalty
            if score >= threshold:
                out[k].append((s, e + 1, score))
    return out


def spot_keywords(logp: np.ndarray, keywords: Sequence[str], alphabet: Alphabet, *, threshold: float = 0.5,
                  frame_period: float = 0.03, boundary_penalty: float = 0.3) -> List[dict]:
    """Keyword detections as JSON-ready dicts ``{"keyword", "start", "end", "score"}`` (seconds),
    sorted by start time."""
    det = keyword_scores(logp, keywords, alphabet, threshold=threshold, boundary_penalty=boundary_penalty)
    rows = [{"keyword": k, "start": round(s * frame_period, 3), "end": round(e * frame_period, 3),
             "score": round(sc, 4)} for k, lst in det.items() for s, e, sc in lst]
    rows.sort(key=lambda r: (r["start"], -r["score"]))
    return rows
