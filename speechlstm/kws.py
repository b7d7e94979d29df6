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

Closed-set classification
-------------------------
:func:`classify_scores` answers a different question about a short clip that holds one of a
known set of texts (isolated words, commands, digit strings): for each candidate it sums the
probability of *every* CTC alignment of the whole clip to that text (the CTC forward pass, as in
the training loss), ``log p(text | clip)``; the empty text, the all-blank alignment, stands for
"no speech".  The candidate with the highest likelihood wins and a softmax over the candidates'
log-likelihoods gives their posterior within the set.  Unlike a beam search, this never prunes the
right answer and never answers with nothing unless "no speech" is a candidate.
"""
from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np
from numba import njit, prange

from .alphabet import Alphabet, normalize_text
from .ctc import _lse
from .errors import ParameterError

__all__ = ["spot_keywords", "keyword_scores", "classify_scores", "NO_SPEECH"]

NO_SPEECH = "_silence_"  # the candidate that stands for the empty transcript in classify_scores


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


@njit(cache=True, parallel=True, error_model="numpy")
def _ctc_log_likelihoods(lp, ids, n_ids, blank, out):
    """out[k] = log p(ids[k, :n_ids[k]] | lp) summed over all CTC alignments; lp [T, C] float64.
    The forward (alpha) recursion of :mod:`speechlstm.ctc` alone, in O(S) memory per candidate:
    ``ctc_loss`` would also build a [K, T, C] gradient, gigabytes for an hour-long input."""
    T = lp.shape[0]
    for k in prange(ids.shape[0]):
        S = 2 * n_ids[k] + 1  # blank, c1, blank, ..., cK, blank
        alpha = np.full(S, -np.inf)
        nxt = np.empty(S)
        alpha[0] = lp[0, blank]
        if S > 1:
            alpha[1] = lp[0, ids[k, 0]]
        for t in range(1, T):
            for s in range(S):
                sym = blank if s % 2 == 0 else ids[k, s // 2]
                a = alpha[s]
                if s >= 1:
                    a = _lse(a, alpha[s - 1])
                if s >= 2 and s % 2 == 1 and sym != ids[k, s // 2 - 1]:
                    a = _lse(a, alpha[s - 2])
                nxt[s] = a + lp[t, sym]
            for s in range(S):
                alpha[s] = nxt[s]
        a = alpha[S - 1]
        if S > 1:
            a = _lse(a, alpha[S - 2])
        out[k] = a


def classify_scores(logp: np.ndarray, candidates: Sequence[str], alphabet: Alphabet) -> List[dict]:
    """Closed-set classification of a clip: every candidate text's CTC log-likelihood and posterior.

    Parameters
    ----------
    logp : np.ndarray [shape=(T, C) or (M, T, C)]
        per-frame log-probabilities of the whole clip (log-softmax output of a CTC model); with a
        leading axis, those of M networks (an ensemble), whose log-likelihoods are summed.
    candidates : sequence of str
        the texts the clip may hold (words or phrases, normalised with
        :func:`~speechlstm.alphabet.normalize_text`); :data:`NO_SPEECH` (``"_silence_"``) stands for
        the empty transcript.  At least one; no duplicates after normalisation.
    alphabet : Alphabet

    Returns
    -------
    list of dict
        ``{"text", "log_likelihood", "probability"}`` per candidate, best first; ``probability`` is
        the posterior within the candidate set (softmax of the log-likelihoods).  A candidate too long
        for the clip (more frames needed than it has) gets ``-inf`` and probability 0.
    """
    lp = np.asarray(logp, dtype=np.float64)
    if lp.ndim == 2:
        lp = lp[None]
    if lp.ndim != 3 or lp.shape[2] != len(alphabet) or lp.shape[0] == 0:
        raise ParameterError(f"log-probabilities must be [T, {len(alphabet)}] or [M, T, {len(alphabet)}], "
                             f"got shape {np.shape(logp)}")
    if lp.shape[1] == 0:
        raise ParameterError("log-probabilities are empty: the clip has no frames")
    if not np.all(np.isfinite(lp)):
        raise ParameterError("log-probabilities contain NaN or infinite values")
    if isinstance(candidates, str) or len(candidates) == 0:
        raise ParameterError(f"candidates must be a non-empty list of texts, got {candidates!r}")
    encoded, seen = [], {}
    for c in candidates:
        if c == NO_SPEECH:
            ids = np.zeros(0, np.int64)
        else:
            norm = normalize_text(c)
            if not norm:
                raise ParameterError(f"candidate {c!r} has no letters (use {NO_SPEECH!r} for no speech)")
            ids = alphabet.encode(norm, normalize=False).astype(np.int64)
        key = tuple(ids.tolist())
        if key in seen:
            raise ParameterError(f"candidates {seen[key]!r} and {c!r} are the same text")
        seen[key] = c
        encoded.append(ids)
    n_ids = np.array([e.size for e in encoded], np.int64)
    ids = np.zeros((len(encoded), max(1, int(n_ids.max()))), np.int64)
    for i, e in enumerate(encoded):
        ids[i, : e.size] = e
    ll = np.zeros(len(encoded))
    part = np.empty(len(encoded))
    for member in lp:
        _ctc_log_likelihoods(np.ascontiguousarray(member), ids, n_ids, alphabet.blank, part)
        ll += part
    finite = np.isfinite(ll)
    post = np.zeros_like(ll)
    if finite.any():
        z = ll[finite] - ll[finite].max()
        post[finite] = np.exp(z) / np.exp(z).sum()
    order = np.argsort(-np.where(finite, ll, -np.inf), kind="stable")
    return [{"text": candidates[i], "log_likelihood": float(ll[i]), "probability": float(post[i])} for i in order]
