"""CTC loss and its gradient with respect to the logits (log-softmax fused).

Log-space forward–backward over the blank-extended label sequence, in Numba, parallel over the
batch (each utterance owns its buffers).  An utterance too short for its targets has an infinite
loss and a zero gradient, never NaN.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .errors import ParameterError

__all__ = ["ctc_loss"]

@njit(cache=True, inline="always")
def _lse(a, b):
    if a == -np.inf:
        return b
    if b == -np.inf:
        return a
    if a > b:
        return a + math.log1p(math.exp(b - a))
    return b + math.log1p(math.exp(a - b))


@njit(cache=True)
def _log_softmax_row(z, out):
    m = z[0]
    for k in range(1, z.shape[0]):
        if z[k] > m:
            m = z[k]
    s = 0.0
    for k in range(z.shape[0]):
        s += math.exp(z[k] - m)
    ls = m + math.log(s)
    for k in range(z.shape[0]):
        out[k] = z[k] - ls


@njit(parallel=True, cache=True)
def _ctc_kernel(logits, targets, in_lens, tgt_lens, blank, loss, grad):
    B, T, C = logits.shape
    for b in prange(B):
        Tb = in_lens[b]
        S = tgt_lens[b]
        N = 2 * S + 1
        lp = np.empty((Tb, C))
        for t in range(Tb):
            _log_softmax_row(logits[b, t].astype(np.float64), lp[t])
        ext = np.empty(N, np.int64)
        for s in range(N):
            ext[s] = blank if s % 2 == 0 else targets[b, s // 2]
        # minimum frames: S labels plus one blank between each pair of equal neighbours
        need = S
        for s in range(1, S):
            if targets[b, s] == targets[b, s - 1]:
                need += 1
        if Tb < need or Tb == 0:
            loss[b] = np.inf if (Tb < need or S > 0) else 0.0
            for t in range(T):
                for k in range(C):
                    grad[b, t, k] = 0.0
            continue
        alpha = np.full((Tb, N), -np.inf)
        beta = np.full((Tb, N), -np.inf)
        alpha[0, 0] = lp[0, ext[0]]
        if N > 1:
            alpha[0, 1] = lp[0, ext[1]]
        for t in range(1, Tb):
            for s in range(N):
                a = alpha[t - 1, s]
                if s >= 1:
                    a = _lse(a, alpha[t - 1, s - 1])
                if s >= 2 and ext[s] != blank and ext[s] != ext[s - 2]:
                    a = _lse(a, alpha[t - 1, s - 2])
                alpha[t, s] = a + lp[t, ext[s]] if a != -np.inf else -np.inf
        beta[Tb - 1, N - 1] = lp[Tb - 1, ext[N - 1]]
        if N > 1:
            beta[Tb - 1, N - 2] = lp[Tb - 1, ext[N - 2]]
        for t in range(Tb - 2, -1, -1):
            for s in range(N):
                a = beta[t + 1, s]
                if s + 1 < N:
                    a = _lse(a, beta[t + 1, s + 1])
                if s + 2 < N and ext[s] != blank and ext[s] != ext[s + 2]:
                    a = _lse(a, beta[t + 1, s + 2])
                beta[t, s] = a + lp[t, ext[s]] if a != -np.inf else -np.inf
        logz = alpha[Tb - 1, N - 1]
        if N > 1:
            logz = _lse(logz, alpha[Tb - 1, N - 2])
        loss[b] = -logz
        occ = np.empty(C)
        for t in range(Tb):
            for k in range(C):
                occ[k] = -np.inf
            for s in range(N):
                # alpha and beta both include lp[t, ext[s]]: remove it once
                v = alpha[t, s] + beta[t, s] - lp[t, ext[s]]
                occ[ext[s]] = _lse(occ[ext[s]], v)
            for k in range(C):
                # d(-log Z)/d z_k = softmax_k - posterior occupancy of k at t
                grad[b, t, k] = math.exp(lp[t, k]) - math.exp(occ[k] - logz)
        for t in range(Tb, T):
            for k in range(C):
                grad[b, t, k] = 0.0


def ctc_loss(logits, targets, input_lengths, target_lengths, *, blank: int = 0):
    """CTC negative log-likelihood and its gradient with respect to unnormalised logits.

    Parameters
    ----------
    logits : np.ndarray [shape=(B, T, C)], float
        unnormalised scores (log-softmax is applied inside, and its Jacobian fused in the gradient).
    targets : np.ndarray [shape=(B, S)], int
        label indices padded past ``target_lengths``; never ``blank``.
    input_lengths : np.ndarray [shape=(B,)], int in [0, T]
    target_lengths : np.ndarray [shape=(B,)], int in [0, S]
    blank : int

    Returns
    -------
    loss : np.ndarray [shape=(B,)], float64
        ``-log p(target | x)``; ``inf`` when T is too short for the target.
    grad : np.ndarray [shape=(B, T, C)], dtype of ``logits``
        gradient of ``loss.sum()``; zero past ``input_lengths`` and for infinite losses.
    """
    logits = np.asarray(logits)
    if logits.ndim != 3 or logits.dtype not in (np.float32, np.float64):
        raise ParameterError(f"logits must be a float [B, T, C] array, got {logits.dtype} {logits.shape}")
    if not np.all(np.isfinite(logits)):
        raise ParameterError("logits contain NaN or infinite values")
    B, T, C = logits.shape
    targets = np.asarray(targets)
    if targets.ndim != 2 or targets.shape[0] != B or not np.issubdtype(targets.dtype, np.integer):
        raise ParameterError(f"targets must be an int [B={B}, S] array, got {targets.dtype} {targets.shape}")
    il = np.asarray(input_lengths).astype(np.int64)
    tl = np.asarray(target_lengths).astype(np.int64)
    if il.shape != (B,) or tl.shape != (B,):
        raise ParameterError(f"input_lengths and target_lengths must have shape ({B},), got {il.shape}, {tl.shape}")
    if B and (il.min() < 0 or il.max() > T):
        raise ParameterError(f"input_lengths must lie in [0, {T}], got {il.min()}..{il.max()}")
    if B and (tl.min() < 0 or tl.max() > targets.shape[1]):
        raise ParameterError(f"target_lengths must lie in [0, {targets.shape[1]}], got {tl.min()}..{tl.max()}")
    if not 0 <= blank < C:
        raise ParameterError(f"blank={blank} is not a class index (C={C})")
    for b in range(B):
        t = targets[b, : tl[b]]
        if t.size and (t.min() < 0 or t.max() >= C or np.any(t == blank)):
            raise ParameterError(f"targets[{b}] must be labels in [0, {C}) other than blank={blank}")
    loss = np.empty(B, np.float64)
    grad = np.empty((B, T, C), np.float64)
    _ctc_kernel(logits, targets.astype(np.int64), il, tl, blank, loss, grad)
    return loss, grad.astype(logits.dtype)
