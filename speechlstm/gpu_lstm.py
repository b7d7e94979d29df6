"""The numba.cuda twin of :mod:`speechlstm.lstm` (inference), same public signatures.

Kernels:

* ``_gemm_bias``: tiled shared-memory matrix multiply ``C = A @ B.T + bias`` — the input projection
  of every timestep and direction at once, and the output Dense layer;
* ``_lstm_step``: one timestep of every (direction, sequence, unit): the recurrent dot products
  and the fused gate math (the same activation functions as the CPU, from :mod:`speechlstm.gates`);
  the reverse direction walks each sequence from its own last frame, padding never leaks;
* ``_log_softmax_rows`` and ``_greedy_ctc``: per-frame log-softmax and best-path decoding.

Backward kernels are not written yet: ``training=True`` raises a clear error (train on the CPU).
Tunables (threads per block, tile size) are read from :mod:`speechlstm.config` at call time.
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda, float32

from . import config
from .errors import DeviceError, ParameterError
from .gates import compile_gates
from .lstm import _check_lengths, _check_state, check_input, check_weights

__all__ = ["gpu_lstm_forward", "gpu_log_probs", "gpu_greedy_ids", "gpu_dense"]

_dexp, _dsigmoid, _dtanh = compile_gates(cuda.jit(device=True))
TILE = config.CUDA_TILE


def _require_gpu():
    if not cuda.is_available():
        raise DeviceError("CUDA was requested but numba.cuda finds no GPU")


@cuda.jit
def _gemm_bias(A, B, bias, C):
    """C[M, N] = A[M, K] @ B[N, K].T + bias[N], tiled through shared memory."""
    sa = cuda.shared.array((TILE, TILE), float32)
    sb = cuda.shared.array((TILE, TILE), float32)
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    row = cuda.blockIdx.y * TILE + ty
    col = cuda.blockIdx.x * TILE + tx
    M, K = A.shape
    N = B.shape[0]
    acc = float32(0.0)
    for k0 in range(0, K, TILE):
        sa[ty, tx] = A[row, k0 + tx] if (row < M and k0 + tx < K) else float32(0.0)
        # B tile transposed on the fly: sb[ty, tx] = B[col_of_block + ty, k0 + tx]
        brow = cuda.blockIdx.x * TILE + ty
        sb[ty, tx] = B[brow, k0 + tx] if (brow < N and k0 + tx < K) else float32(0.0)
        cuda.syncthreads()
        for k in range(TILE):
            acc += sa[ty, k] * sb[tx, k]
        cuda.syncthreads()
    if row < M and col < N:
        C[row, col] = acc + bias[col]


@cuda.jit
def _lstm_step(s, gx, whh, lengths, h_in, c_in, h_out, c_out, y):
    """Step s for every (direction, sequence, unit).  gx [B,T,D*4H]; whh [D,4H,H];
    h/c ping-pong buffers [D,B,H]; y [B,T,D*H]."""
    i = cuda.grid(1)
    D = whh.shape[0]
    H = whh.shape[2]
    B = lengths.shape[0]
    if i >= D * B * H:
        return
    d = i // (B * H)
    b = (i // H) % B
    j = i % H
    L = lengths[b]
    if s >= L:  # past this sequence's end: carry the state unchanged
        h_out[d, b, j] = h_in[d, b, j]
        c_out[d, b, j] = c_in[d, b, j]
        return
    t = s if d == 0 else L - 1 - s
    G = 4 * H
    base = d * G
    zi = gx[b, t, base + j]
    zf = gx[b, t, base + H + j]
    zg = gx[b, t, base + 2 * H + j]
    zo = gx[b, t, base + 3 * H + j]
    for k in range(H):
        hk = h_in[d, b, k]
        zi += whh[d, j, k] * hk
        zf += whh[d, H + j, k] * hk
        zg += whh[d, 2 * H + j, k] * hk
        zo += whh[d, 3 * H + j, k] * hk
    ig = _dsigmoid(zi)
    fg = _dsigmoid(zf)
    gg = _dtanh(zg)
    og = _dsigmoid(zo)
    cc = fg * c_in[d, b, j] + ig * gg
    hh = og * _dtanh(cc)
    c_out[d, b, j] = cc
    h_out[d, b, j] = hh
    y[b, t, d * H + j] = hh


@cuda.jit
def _log_softmax_rows(z):
    r = cuda.grid(1)
    if r >= z.shape[0]:
        return
    C = z.shape[1]
    m = z[r, 0]
    for k in range(1, C):
        m = max(m, z[r, k])
    s = 0.0
    for k in range(C):
        s += math.exp(z[r, k] - m)
    ls = m + math.log(s)
    for k in range(C):
        z[r, k] = z[r, k] - ls


@cuda.jit
def _greedy_ctc(logp, lengths, blank, out, counts):
    """Per sequence: argmax per frame, repeats collapsed, blanks dropped."""
    b = cuda.grid(1)
    if b >= logp.shape[0]:
        return
    n = 0
    prev = -1
    for t in range(lengths[b]):
        best = 0
        bv = logp[b, t, 0]
        for k in range(1, logp.shape[2]):
            if logp[b, t, k] > bv:
                bv = logp[b, t, k]
                best = k
        if best != prev and best != blank:
            out[b, n] = best
            n += 1
        prev = best
    counts[b] = n


def _blocks(n: int) -> tuple:
    tpb = int(config.CUDA_THREADS_PER_BLOCK)
    return (max(1, -(-n // tpb)), tpb)


def _gemm(A_d, B_d, bias_d, C_d):
    M, N = C_d.shape
    grid = (-(-N // TILE), -(-M // TILE))
    _gemm_bias[grid, (TILE, TILE)](A_d, B_d, bias_d, C_d)


def gpu_dense(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """``x @ weight.T + bias`` on the GPU (x [..., I], weight [O, I])."""
    _require_gpu()
    x2 = np.ascontiguousarray(x.reshape(-1, x.shape[-1]), np.float32)
    C = cuda.device_array((x2.shape[0], weight.shape[0]), np.float32)
    _gemm(cuda.to_device(x2), cuda.to_device(np.ascontiguousarray(weight, np.float32)),
          cuda.to_device(np.ascontiguousarray(bias, np.float32)), C)
    return C.copy_to_host().reshape(x.shape[:-1] + (weight.shape[0],))


def _forward_device(x, weights, lengths=None, h0=None, c0=None):
    x = check_input(x)
    B, T, I = x.shape
    weights, L, D, H, _ = check_weights(weights, input_size=I, dtype=np.float32)
    lens = _check_lengths(lengths, B, T)
    h0 = _check_state(h0, (L * D, B, H), np.float32, "h0")
    c0 = _check_state(c0, (L * D, B, H), np.float32, "c0")
    _require_gpu()
    lens_d = cuda.to_device(lens)
    inp = cuda.to_device(np.ascontiguousarray(x, np.float32).reshape(B * T, I))
    hn = np.empty((L * D, B, H), np.float32)
    cn = np.empty((L * D, B, H), np.float32)
    tmax = int(lens.max()) if B else 0
    for l in range(L):
        w_cat = np.concatenate([weights[l][d][0] for d in range(D)])
        bias = np.concatenate([weights[l][d][2] + weights[l][d][3] for d in range(D)])
        gx = cuda.device_array((B * T, D * 4 * H), np.float32)
        _gemm(inp, cuda.to_device(w_cat), cuda.to_device(bias), gx)
        whh = cuda.to_device(np.stack([weights[l][d][1] for d in range(D)]))
        hbuf = [cuda.to_device(np.ascontiguousarray(h0[l * D:(l + 1) * D])), cuda.device_array((D, B, H), np.float32)]
        cbuf = [cuda.to_device(np.ascontiguousarray(c0[l * D:(l + 1) * D])), cuda.device_array((D, B, H), np.float32)]
        y = cuda.to_device(np.zeros((B, T, D * H), np.float32))
        gx3 = gx.reshape(B, T, D * 4 * H)
        grid, tpb = _blocks(D * B * H)
        for s in range(tmax):
            a, o = s % 2, (s + 1) % 2
            _lstm_step[grid, tpb](s, gx3, whh, lens_d, hbuf[a], cbuf[a], hbuf[o], cbuf[o], y)
        fin = tmax % 2
        hn[l * D:(l + 1) * D] = hbuf[fin].copy_to_host()
        cn[l * D:(l + 1) * D] = cbuf[fin].copy_to_host()
        inp = y.reshape(B * T, D * H)
    return inp, (hn, cn), (B, T, D * H)


def gpu_lstm_forward(x, weights, *, lengths=None, h0=None, c0=None, training: bool = False):
    """Same signature and results as :func:`speechlstm.lstm.lstm_forward` (float32, inference)."""
    if training:
        raise ParameterError("training on CUDA is not available yet (no backward kernels): use device='cpu'")
    y_d, (hn, cn), shape = _forward_device(x, weights, lengths, h0, c0)
    return y_d.copy_to_host().reshape(shape), (hn, cn), None


def gpu_log_probs(acoustic, x, lengths=None) -> np.ndarray:
    """Acoustic model forward on the GPU: LSTM → Dense → log-softmax, ``[B, T, C]``."""
    y_d, _, (B, T, _) = _forward_device(x, acoustic.lstm.weights(), lengths)
    fc = acoustic.fc.params
    C = fc["weight"].shape[0]
    z = cuda.device_array((B * T, C), np.float32)
    _gemm(y_d, cuda.to_device(fc["weight"].astype(np.float32)), cuda.to_device(fc["bias"].astype(np.float32)), z)
    grid, tpb = _blocks(B * T)
    _log_softmax_rows[grid, tpb](z)
    return z.copy_to_host().reshape(B, T, C)


def gpu_greedy_ids(logp: np.ndarray, lengths=None, blank: int = 0):
    """Best-path label ids per sequence (list of int arrays), decoded on the GPU."""
    logp = np.ascontiguousarray(logp, np.float32)
    B, T, _ = logp.shape
    lens = _check_lengths(lengths, B, T)
    _require_gpu()
    out = cuda.device_array((B, max(T, 1)), np.int64)
    counts = cuda.device_array(B, np.int64)
    grid, tpb = _blocks(B)
    _greedy_ctc[grid, tpb](cuda.to_device(logp), cuda.to_device(lens), blank, out, counts)
    o, c = out.copy_to_host(), counts.copy_to_host()
    return [o[b, : c[b]] for b in range(B)]
