"""LSTM on the CPU: Numba kernels for the forward pass, streaming and backward through time.

Equations (PyTorch's, gate order i, f, g, o; ``W_ih [4H, I]``, ``W_hh [4H, H]``)::

    i = σ(W_ii x + b_ii + W_hi h + b_hi)     f = σ(...)     g = tanh(...)     o = σ(...)
    c' = f ∘ c + i ∘ g                        h' = o ∘ tanh(c')

Layout of the work, per layer:

1. the input projection of every timestep and both directions is one BLAS GEMM
   (``x [B·T, I] @ W_ih.T``, biases folded in);
2. the recurrence runs in a Numba kernel, parallel over (direction × batch chunk) tasks; each task
   owns its state and scratch buffers, so nothing races.  Per step it does one small GEMM
   (``W_hh @ h.T``, single-threaded BLAS; a GEMV for a single sequence; with MKL, ``[h, 1] @ [W_hh.T; b]``
   on a weight packed once per call) and one fused gate loop, vectorized 512 bits wide where the CPU
   has AVX-512, in float32 arithmetic for float32 storage (``gates.compile_gates``).
   The reverse direction walks each sequence from its own last valid frame, so padding never
   leaks anywhere;
3. backward through time mirrors it: the kernel only carries ``dh``/``dc`` through the recurrence
   (one ``dgates @ W_hh`` per step); every weight gradient is then one GEMM over all timesteps.

Large temporaries can come from a :class:`Workspace` that outlives the call (``nn.LSTM`` keeps
one), so a training loop does not page-fault tens of megabytes in anew every step.

Public functions validate; the ``_``-prefixed kernels trust their inputs.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numba
import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic, overload

from . import config
from .errors import ParameterError
from .gates import compile_gates, fma
from .linalg import matmul, matmul_tn, mkl_gemm, mkl_gemm_packed, mkl_pack_b, prepare_blas, stack_transposed, use_mkl

__all__ = ["lstm_forward", "lstm_backward", "LSTMCache", "Workspace", "check_weights", "check_input"]

# IEEE arithmetic, no fastmath flags: LLVM guards each vectorized gate loop with run-time overlap
# checks and runs its scalar copy when arrays lie close in memory, and with FMA contraction the two
# copies fused different products (with reassociation they may group sums differently), so the same
# call moved by an ulp with the memory layout and training runs did not repeat bit for bit across
# processes.  The fused steps that pay are explicit (gates.fma); the gate loops vectorize as before.
_JIT = dict(cache=True, error_model="numpy")  # numpy model: no divide checks, so loops vectorize
_, _sigmoid64, _tanh64 = compile_gates(njit(inline="always", **_JIT))
_, _sigmoid32, _tanh32 = compile_gates(njit(inline="always", **_JIT), "float32")


def _sigmoid(x):
    """The logistic function in the precision of ``x`` (float32 math for float32 storage)."""


def _tanh(x):
    """tanh in the precision of ``x``."""


@overload(_sigmoid, jit_options=_JIT)
def _sigmoid_typed(x):
    if x == types.float32:
        return lambda x: _sigmoid32(x)
    return lambda x: _sigmoid64(x)


@overload(_tanh, jit_options=_JIT)
def _tanh_typed(x):
    if x == types.float32:
        return lambda x: _tanh32(x)
    return lambda x: _tanh64(x)


@intrinsic
def _wide_vectors(typingctx):
    """Let LLVM vectorize the function this is called in with ``config.CPU_VECTOR_BITS``-bit registers.

    On AVX-512 CPUs LLVM prefers 256-bit vectors unless a function says otherwise, and Numba has
    no per-function switch (``NUMBA_CPU_FEATURES`` changes every kernel in the process).  Called
    first thing in a ``prange`` body, this marks the outlined loop body, so its gate loops run 16
    float32 lanes per instruction instead of 8 (the float32 gate loop alone: ~30 % faster).  It
    writes the two string attributes straight into llvmlite's attribute set, whose ``add`` only
    takes flag attributes; should that ever fail, the function just keeps LLVM's default.
    """
    def codegen(context, builder, signature, args):
        bits = int(config.CPU_VECTOR_BITS)
        try:
            for attr in (f'"prefer-vector-width"="{bits}"', f'"min-legal-vector-width"="{bits}"'):
                set.add(builder.function.attributes, attr)
        except Exception:  # noqa: BLE001 - an llvmlite without a set of attributes: default width
            pass
        return context.get_dummy_value()

    return types.none(), codegen


_ONE = np.float32(1.0)  # a literal 1.0 would be float64 and widen float32 gate arithmetic
_ROW_PAD = 16  # elements added to per-step scratch rows so their stride is no multiple of 4 KiB


def _n_chunks(D: int, B: int) -> int:
    threads = numba.get_num_threads()
    return max(1, min(B, -(-threads // D)))


# ------------------------------------------------------------------------------------------------
# kernels
# ------------------------------------------------------------------------------------------------
@njit(parallel=True, **_JIT)
def _forward_layer(gx, bias, whh, wx, lengths, h0, c0, y, hn, cn, gates_s, cells_s, n_chunks, mkl):
    """One layer, all directions.  gx [B,T,D*4H] (projected input), bias [D*4H] (b_ih + b_hh, added to
    each step's recurrent product rather than in a pass of its own over gx), whh [D,4H,H],
    h0/c0 [D,B,H]; writes y [B,T,D*H] (every element; zero at padding) and hn/cn [D,B,H]; saves
    activated gates [D,B,T,4H] and cells [D,B,T,H] when those arrays are non-empty (training).
    ``mkl``: the per-step products through MKL, ``[h, 1] @ wx[d]`` straight into the gate rows, on a
    copy of ``wx[d]`` packed once per task; wx [D,H+1,4H] is ``whh[d].T`` with the biases as one more
    row, so the product adds them (no pass of its own over the gate rows each step; empty when ``mkl``
    is False)."""
    D = whh.shape[0]
    B = gx.shape[0]
    G = gx.shape[2] // D
    H = G // 4
    save = gates_s.shape[0] > 0
    for task in prange(D * n_chunks):
        _wide_vectors()
        d = task // n_chunks
        k = task % n_chunks
        b0 = k * B // n_chunks
        b1 = (k + 1) * B // n_chunks
        nb = b1 - b0
        if nb == 0:
            continue
        hx = np.empty((nb, H + 1), gx.dtype)  # h and a column of ones, which picks up wx's bias row
        h = hx[:, :H]
        c = np.empty((nb, H), gx.dtype)
        # row stride padded off a multiple of 4 KiB: the column-wise writes of the transpose below
        # would otherwise all land in one cache set (measured 439 -> 327 us per step at H=256, B=32)
        acc = np.empty((nb, G + _ROW_PAD), gx.dtype)
        h_t = np.empty((H, nb), gx.dtype)
        acc_t = np.empty((G, nb), gx.dtype)
        tmax = 0
        for bi in range(nb):
            tmax = max(tmax, lengths[b0 + bi])
            hx[bi, H] = 1.0
            for j in range(H):
                h[bi, j] = h0[d, b0 + bi, j]
                c[bi, j] = c0[d, b0 + bi, j]
        w = whh[d]
        off = d * H
        off4 = d * G
        # MKL: the weight packed once for the whole sequence, as oneDNN's RNN does (~12 % off each step's product)
        wp = mkl_pack_b(nb, wx[d]) if mkl and nb > 1 else np.empty(0, gx.dtype)
        for s in range(tmax):
            if nb == 1:  # one sequence: a GEMV straight into the gate row, nothing to transpose
                np.dot(w, hx[0, :H], acc[0, :G])
                for j in range(G):
                    acc[0, j] += bias[off4 + j]
            elif mkl:  # MKL needs no transposes of h or of the result, and adds the biases itself
                mkl_gemm_packed(hx, wp, acc[:, :G], 0.0)
            else:
                # W_hh @ h.T: BLAS then packs the small operand, not the weight (2-2.5x faster at B=32)
                for bi in range(nb):
                    for k in range(H):
                        h_t[k, bi] = h[bi, k]
                np.dot(w, h_t, acc_t)
                for j in range(G):  # the biases join here, in a loop that runs anyway (not in the
                    bj = bias[off4 + j]  # gate loops: one more array there stops their vectorisation)
                    for bi in range(nb):
                        acc[bi, j] = acc_t[j, bi] + bj
            for bi in range(nb):
                b = b0 + bi
                L = lengths[b]
                if s >= L:
                    continue
                t = s if d == 0 else L - 1 - s
                a = acc[bi]
                g = gx[b, t, d * G : (d + 1) * G]
                hb = hx[bi, :H]  # a contiguous row, so the gate loops vectorize
                cb = c[bi]
                yb = y[b, t]
                if save:  # the same loop, also keeping gates and cells for backward
                    gs = gates_s[d, b, t]
                    cs = cells_s[d, b, t]
                    for j in range(H):
                        ig = _sigmoid(a[j] + g[j])
                        fg = _sigmoid(a[H + j] + g[H + j])
                        gg = _tanh(a[2 * H + j] + g[2 * H + j])
                        og = _sigmoid(a[3 * H + j] + g[3 * H + j])
                        cc = fma(fg, cb[j], ig * gg)
                        hh = og * _tanh(cc)
                        cb[j] = cc
                        hb[j] = hh
                        yb[off + j] = hh
                        gs[j] = ig
                        gs[H + j] = fg
                        gs[2 * H + j] = gg
                        gs[3 * H + j] = og
                        cs[j] = cc
                else:
                    for j in range(H):
                        ig = _sigmoid(a[j] + g[j])
                        fg = _sigmoid(a[H + j] + g[H + j])
                        gg = _tanh(a[2 * H + j] + g[2 * H + j])
                        og = _sigmoid(a[3 * H + j] + g[3 * H + j])
                        cc = fma(fg, cb[j], ig * gg)
                        hh = og * _tanh(cc)
                        cb[j] = cc
                        hb[j] = hh
                        yb[off + j] = hh
        for bi in range(nb):
            for j in range(H):
                hn[d, b0 + bi, j] = h[bi, j]
                cn[d, b0 + bi, j] = c[bi, j]
            for t in range(lengths[b0 + bi], y.shape[1]):  # padding reads as zeros (y may be reused scratch)
                for j in range(H):
                    y[b0 + bi, t, off + j] = 0.0


@njit(parallel=True, **_JIT)
def _forward_wavefront(x, w0_t, wr_t, whh_t, bias, lengths, h, c, ys, chunk, mkl):
    """Unidirectional stack with the layers pipelined over time chunks: in round r, layer l runs
    chunk r - l, so L layers work at once (for small batches, where batch chunks cannot fill the
    cores).  x [B,T,I]; w0_t [I,4H]; wr_t [max(L-1,1),H,4H]; whh_t [L,H,4H]; bias [L,4H];
    h, c [L,B,H] (initial states in, final states out); ys [L,B,T,H] zeros (every layer's output).
    Each layer's task owns h[l], c[l] and ys[l]; it reads ys[l-1] of a chunk finished last round."""
    L = whh_t.shape[0]
    B, T = x.shape[0], x.shape[1]
    H = whh_t.shape[1]
    G = 4 * H
    n_chunks = (T + chunk - 1) // chunk
    for r in range(n_chunks + L - 1):
        for l in prange(L):
            _wide_vectors()
            k = r - l
            if k < 0 or k >= n_chunks:
                continue
            t0 = k * chunk
            t1 = min(T, t0 + chunk)
            n = t1 - t0
            gx = np.empty((B, n, G), x.dtype)
            for b in range(B):
                if mkl:
                    mkl_gemm(x[b, t0:t1] if l == 0 else ys[l - 1, b, t0:t1], w0_t if l == 0 else wr_t[l - 1],
                             gx[b], 0.0)
                elif l == 0:
                    np.dot(x[b, t0:t1], w0_t, gx[b])
                else:
                    np.dot(ys[l - 1, b, t0:t1], wr_t[l - 1], gx[b])
                for s in range(n):
                    for j in range(G):
                        gx[b, s, j] += bias[l, j]
            acc = np.empty((B, G), x.dtype)
            hl = h[l]
            cl = c[l]
            w = whh_t[l]
            for s in range(n):
                t = t0 + s
                if B == 1:
                    np.dot(hl[0], w, acc[0])  # a GEMV: no packing of the weight as a GEMM would
                elif mkl:
                    mkl_gemm(hl, w, acc, 0.0)
                else:
                    np.dot(hl, w, acc)
                for b in range(B):
                    if t >= lengths[b]:
                        continue
                    a = acc[b]
                    g = gx[b, s]
                    hb = hl[b]
                    cb = cl[b]
                    yb = ys[l, b, t]
                    for j in range(H):
                        ig = _sigmoid(a[j] + g[j])
                        fg = _sigmoid(a[H + j] + g[H + j])
                        gg = _tanh(a[2 * H + j] + g[2 * H + j])
                        og = _sigmoid(a[3 * H + j] + g[3 * H + j])
                        cc = fma(fg, cb[j], ig * gg)
                        hh = og * _tanh(cc)
                        cb[j] = cc
                        hb[j] = hh
                        yb[j] = hh


@njit(parallel=True, **_JIT)
def _backward_layer(gates_s, cells_s, c0, whh, lengths, dy, dhn, dcn, dg, dh0, dc0, n_chunks, mkl):
    """Backward through time of one layer.  whh [D,4H,H]; dy [B,T,D*H]; dhn/dcn [D,B,H].
    Writes gate pre-activation gradients dg [D,B,T,4H] (every element; zero at padding) and
    dh0/dc0 [D,B,H]."""
    D, B, T, G = gates_s.shape
    H = G // 4
    for task in prange(D * n_chunks):
        _wide_vectors()
        d = task // n_chunks
        k = task % n_chunks
        b0 = k * B // n_chunks
        b1 = (k + 1) * B // n_chunks
        nb = b1 - b0
        if nb == 0:
            continue
        dh = np.empty((nb, H), gates_s.dtype)
        dc = np.empty((nb, H), gates_s.dtype)
        dgt = np.zeros((nb, G), gates_s.dtype)
        dhp = np.empty((nb, H), gates_s.dtype)
        tmax = 0
        for bi in range(nb):
            tmax = max(tmax, lengths[b0 + bi])
            for j in range(H):
                dh[bi, j] = dhn[d, b0 + bi, j]
                dc[bi, j] = dcn[d, b0 + bi, j]
        w = whh[d]
        off = d * H
        wp = mkl_pack_b(nb, w) if mkl else np.empty(0, gates_s.dtype)
        for s in range(tmax - 1, -1, -1):
            for bi in range(nb):
                b = b0 + bi
                L = lengths[b]
                row = dgt[bi]
                if s >= L:
                    for j in range(G):
                        row[j] = 0.0
                    continue
                t = s if d == 0 else L - 1 - s
                tp = t - 1 if d == 0 else t + 1
                gs = gates_s[d, b, t]
                cs = cells_s[d, b, t]
                cprev = c0[d, b] if s == 0 else cells_s[d, b, tp]
                dyb = dy[b, t]
                dhb = dh[bi]
                dcb = dc[bi]
                out = dg[d, b, t]
                for j in range(H):
                    ig = gs[j]
                    fg = gs[H + j]
                    gg = gs[2 * H + j]
                    og = gs[3 * H + j]
                    tc = _tanh(cs[j])
                    dhj = dhb[j] + dyb[off + j]
                    dcc = dcb[j] + dhj * og * (_ONE - tc * tc)
                    row[j] = dcc * gg * ig * (_ONE - ig)
                    row[H + j] = dcc * cprev[j] * fg * (_ONE - fg)
                    row[2 * H + j] = dcc * ig * (_ONE - gg * gg)
                    row[3 * H + j] = dhj * tc * og * (_ONE - og)
                    dcb[j] = dcc * fg
                for j in range(G):
                    out[j] = row[j]
            if mkl:
                mkl_gemm_packed(dgt, wp, dhp, 0.0)
            else:
                np.dot(dgt, w, dhp)
            for bi in range(nb):
                if s < lengths[b0 + bi]:
                    for j in range(H):
                        dh[bi, j] = dhp[bi, j]
        for bi in range(nb):
            for j in range(H):
                dh0[d, b0 + bi, j] = dh[bi, j]
                dc0[d, b0 + bi, j] = dc[bi, j]
            for t in range(lengths[b0 + bi], T):  # zero at padding (dg may be reused scratch)
                for j in range(G):
                    dg[d, b0 + bi, t, j] = 0.0


@njit(parallel=True, cache=True)
def _previous_h(y, h0, lengths, d, H, out):
    """h_{t-1} seen by step t of direction d: out [B,T,H] (h0 at each sequence's first step)."""
    B, T = y.shape[0], y.shape[1]
    for b in prange(B):
        L = lengths[b]
        for t in range(L):
            first = (t == 0) if d == 0 else (t == L - 1)
            tp = t - 1 if d == 0 else t + 1
            for j in range(H):
                out[b, t, j] = h0[d, b, j] if first else y[b, tp, d * H + j]
        for t in range(L, T):
            for j in range(H):
                out[b, t, j] = 0.0


# ------------------------------------------------------------------------------------------------
# public API
# ------------------------------------------------------------------------------------------------
class Workspace:
    """Scratch arrays kept between calls, one set per thread.

    A fresh multi-megabyte array is page-faulted in by the kernel that first writes it (about
    0.1 ms per MB here); a layer or a model that runs again and again passes the same workspace
    to :func:`lstm_forward` / :func:`lstm_backward` and pays that once.  A buffer grows to the
    largest shape asked of it (up to ``config.WORKSPACE_MAX_BYTES``; larger requests get a fresh
    array) and is handed out as a view of its first elements.
    """

    def __init__(self):
        self._local = threading.local()

    def array(self, name: str, shape, dtype) -> np.ndarray:
        """An uninitialised array of ``shape`` and ``dtype``, the same memory each call for ``name``."""
        n = int(np.prod(shape))
        if n * np.dtype(dtype).itemsize > config.WORKSPACE_MAX_BYTES:
            return np.empty(shape, dtype)  # not kept: a one-off long input must not pin its memory
        pool = self._local.__dict__.setdefault("pool", {})
        buf = pool.get(name)
        if buf is None or buf.size < n or buf.dtype != dtype:
            buf = pool[name] = np.empty(n, dtype)
        return buf[:n].reshape(shape)

    def clear(self) -> None:
        """Drop this thread's buffers."""
        self._local.__dict__.pop("pool", None)


def _scratch(workspace: Optional[Workspace], name: str, shape, dtype) -> np.ndarray:
    return np.empty(shape, dtype) if workspace is None else workspace.array(name, shape, dtype)


Weights = Sequence[Sequence[Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]]


@dataclass
class LSTMCache:
    """What the forward pass keeps for backward (one entry per layer)."""

    inputs: List[np.ndarray]  # layer inputs [B,T,I_l]
    gates: List[np.ndarray]  # activated gates [D,B,T,4H]
    cells: List[np.ndarray]  # cell states [D,B,T,H]
    outputs: List[np.ndarray]  # layer outputs [B,T,D*H]
    h0: np.ndarray  # [L*D,B,H]
    c0: np.ndarray
    lengths: np.ndarray  # [B] int64
    weights: Weights
    bidirectional: bool
    masks: Optional[List[np.ndarray]] = None  # dropout masks on each layer's output but the last


def check_weights(weights, *, input_size: Optional[int] = None, dtype=np.float32):
    """Validate and normalise LSTM weights: returns (weights as C-contiguous ``dtype`` arrays,
    num_layers, num_directions, hidden_size, input_size).

    ``weights[l][d] = (w_ih [4H, I_l], w_hh [4H, H], b_ih [4H], b_hh [4H])`` in PyTorch's layout.
    """
    if not isinstance(weights, (list, tuple)) or not weights:
        raise ParameterError(f"weights must be a non-empty list of layers, got {type(weights).__name__}")
    D = len(weights[0])
    if D not in (1, 2):
        raise ParameterError(f"each layer needs 1 or 2 directions of weights, got {D}")
    H = None
    out = []
    for l, layer in enumerate(weights):
        if len(layer) != D:
            raise ParameterError(f"layer {l} has {len(layer)} directions, layer 0 has {D}")
        dirs = []
        for d, tensors in enumerate(layer):
            if len(tensors) != 4:
                raise ParameterError(f"layer {l} direction {d}: need (w_ih, w_hh, b_ih, b_hh)")
            w_ih, w_hh, b_ih, b_hh = (np.ascontiguousarray(a, dtype=dtype) for a in tensors)
            if w_hh.ndim != 2 or w_hh.shape[0] != 4 * w_hh.shape[1]:
                raise ParameterError(f"layer {l} direction {d}: w_hh must be [4H, H], got {w_hh.shape}")
            H = H or w_hh.shape[1]
            if w_hh.shape[1] != H:
                raise ParameterError(f"layer {l} direction {d}: hidden size {w_hh.shape[1]} != {H}")
            expect_i = (input_size if l == 0 else D * H)
            if w_ih.ndim != 2 or w_ih.shape[0] != 4 * H or (expect_i is not None and w_ih.shape[1] != expect_i):
                raise ParameterError(
                    f"layer {l} direction {d}: w_ih must be [{4 * H}, {expect_i}], got {w_ih.shape}")
            for name, b in (("b_ih", b_ih), ("b_hh", b_hh)):
                if b.shape != (4 * H,):
                    raise ParameterError(f"layer {l} direction {d}: {name} must be [{4 * H}], got {b.shape}")
            dirs.append((w_ih, w_hh, b_ih, b_hh))
        out.append(dirs)
    return out, len(out), D, H, out[0][0][0].shape[1]


def check_input(x) -> np.ndarray:
    """Validate an LSTM input: a finite float32/float64 array [B, T, I] (shared with gpu_lstm)."""
    x = np.asarray(x)
    if x.ndim != 3:
        raise ParameterError(f"x must be [B, T, I], got shape {x.shape}")
    if x.dtype not in (np.float32, np.float64):
        raise ParameterError(f"x must be float32 or float64, got {x.dtype}")
    if not np.all(np.isfinite(x)):
        raise ParameterError("x contains NaN or infinite values")
    return x


def _check_lengths(lengths, B: int, T: int) -> np.ndarray:
    if lengths is None:
        return np.full(B, T, np.int64)
    lens = np.asarray(lengths)
    if lens.shape != (B,) or not np.issubdtype(lens.dtype, np.integer):
        raise ParameterError(f"lengths must be {B} integers, got {lens.dtype} array of shape {lens.shape}")
    if lens.size and (lens.min() < 0 or lens.max() > T):
        raise ParameterError(f"lengths must lie in [0, T={T}], got min {lens.min()} max {lens.max()}")
    return lens.astype(np.int64)


def _check_state(a, shape, dtype, name):
    if a is None:
        return np.zeros(shape, dtype)
    a = np.asarray(a)
    if a.shape != shape:
        raise ParameterError(f"{name} must have shape {shape}, got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ParameterError(f"{name} contains NaN or infinite values")
    return np.ascontiguousarray(a, dtype=dtype)


def check_masks(masks, L: int, shape, dtype, training: bool):
    """Validate dropout masks for an ``L``-layer LSTM: ``L - 1`` arrays of ``shape`` [B, T, D*H]
    (shared with gpu_lstm); returns them contiguous in ``dtype``, or None."""
    if masks is None:
        return None
    if not training:
        raise ParameterError("dropout masks apply in training only (training=True)")
    if not isinstance(masks, (list, tuple)) or len(masks) != L - 1:
        got = f"{len(masks)} arrays" if isinstance(masks, (list, tuple)) else type(masks).__name__
        raise ParameterError(f"masks must be a list of {L - 1} arrays (one per layer but the last), got {got}")
    out = []
    for l, m in enumerate(masks):
        m = np.asarray(m)
        if m.shape != tuple(shape):
            raise ParameterError(f"masks[{l}] must have shape {tuple(shape)}, got {m.shape}")
        out.append(np.ascontiguousarray(m, dtype))
    return out


def lstm_forward(
    x: np.ndarray,
    weights: Weights,
    *,
    lengths=None,
    h0=None,
    c0=None,
    training: bool = False,
    masks=None,
    workspace: Optional[Workspace] = None,
):
    """Multi-layer, uni- or bidirectional LSTM over a padded batch.

    Parameters
    ----------
    x : np.ndarray [shape=(B, T, I)], float32 or float64
        padded input; frames at or past ``lengths[b]`` are ignored.
    weights : list over layers of list over directions of (w_ih, w_hh, b_ih, b_hh)
        PyTorch layout (see :func:`check_weights`); two directions means bidirectional.
    lengths : np.ndarray [shape=(B,)] int or None
        valid frames per sequence (default: all ``T``).
    h0, c0 : np.ndarray [shape=(L*D, B, H)] or None
        initial states (default zeros), index ``l*D + d`` as in PyTorch.
    training : bool
        keep what :func:`lstm_backward` needs.
    masks : list of L-1 np.ndarray [shape=(B, T, D*H)] or None
        dropout between layers (training only): ``masks[l]`` multiplies layer l's output before
        layer l+1 reads it, and its gradient in backward (``nn.LSTM(dropout=p)`` draws them).
    workspace : Workspace or None
        reuse its buffers for the temporaries and, when training, for the arrays the cache holds:
        the next training call with the same workspace overwrites that cache.  ``y`` is always new.

    Returns
    -------
    y : np.ndarray [shape=(B, T, D*H)]
        top-layer outputs, forward half then backward half; zero at padded frames.
    (h_n, c_n) : np.ndarray [shape=(L*D, B, H)] each
        states after each sequence's last valid frame (for the reverse direction: after frame 0).
    cache : LSTMCache or None
    """
    x = check_input(x)
    dtype = x.dtype
    B, T, I = x.shape
    weights, L, D, H, _ = check_weights(weights, input_size=I, dtype=dtype)
    lens = _check_lengths(lengths, B, T)
    h0 = _check_state(h0, (L * D, B, H), dtype, "h0")
    c0 = _check_state(c0, (L * D, B, H), dtype, "c0")
    masks = check_masks(masks, L, (B, T, D * H), dtype, training)
    prepare_blas()
    if D == 1 and L >= 2 and not training and B <= config.WAVEFRONT_MAX_BATCH and numba.get_num_threads() > 1:
        return _wavefront_forward(x, weights, lens, h0, c0)
    n_chunks = _n_chunks(D, B)
    mkl = use_mkl()
    hn = np.empty((L * D, B, H), dtype)
    cn = np.empty((L * D, B, H), dtype)
    cache = LSTMCache([], [], [], [], h0, c0, lens, weights, D == 2, masks) if training else None
    inp = np.ascontiguousarray(x)
    empty = np.zeros((0, 0, 0, 0), dtype)
    for l in range(L):
        # one GEMM projects every timestep for both directions: [B*T, I] @ [I, D*4H]
        w_cat = np.concatenate([weights[l][d][0] for d in range(D)]) if D > 1 else weights[l][0][0]
        bias = np.concatenate([weights[l][d][2] + weights[l][d][3] for d in range(D)])
        gx = _scratch(workspace, "gx", (B, T, D * 4 * H), dtype)
        matmul(inp.reshape(B * T, -1), w_cat.T, out=gx.reshape(B * T, D * 4 * H))  # biases: per step, in _forward_layer
        whh = np.ascontiguousarray(np.stack([weights[l][d][1] for d in range(D)]))
        wx = np.zeros((0, 0, 0), dtype)
        if mkl:  # W_hh.T with the biases as row H: each step's product adds them
            wx = np.empty((D, H + 1, 4 * H), dtype)
            stack_transposed(list(whh), out=wx[:, :H])
            wx[:, H] = bias.reshape(D, 4 * H)
        mode = "train" if training else "eval"  # an inference call never overwrites a pending cache
        y = np.empty((B, T, D * H), dtype) if l == L - 1 else _scratch(workspace, f"{mode}/y{l}", (B, T, D * H), dtype)
        gates = _scratch(workspace, f"train/gates{l}", (D, B, T, 4 * H), dtype) if training else empty
        cells = _scratch(workspace, f"train/cells{l}", (D, B, T, H), dtype) if training else empty
        sl = slice(l * D, (l + 1) * D)
        _forward_layer(gx, bias, whh, wx, lens, h0[sl], c0[sl], y, hn[sl], cn[sl], gates, cells, n_chunks, mkl)
        if training:
            cache.inputs.append(inp)
            cache.gates.append(gates)
            cache.cells.append(cells)
            cache.outputs.append(y)
        inp = y
        if masks is not None and l < L - 1:  # dropout: the next layer reads the masked output
            inp = np.multiply(y, masks[l], out=_scratch(workspace, f"train/in{l + 1}", y.shape, dtype))
    return inp, (hn, cn), cache


def _wavefront_forward(x, weights, lens, h0, c0):
    B, T, _ = x.shape
    L = len(weights)
    H = weights[0][0][1].shape[1]
    dtype = x.dtype
    # transposed copies of the weights, tile by tile (np.stack of the .T views took ~15 % of R1)
    w0_t = stack_transposed([weights[0][0][0]])[0]
    wr_t = stack_transposed([weights[l][0][0] for l in range(1, L)])
    whh_t = stack_transposed([weights[l][0][1] for l in range(L)])
    bias = np.stack([weights[l][0][2] + weights[l][0][3] for l in range(L)])
    h, c = h0.copy(), c0.copy()
    ys = np.zeros((L, B, T, H), dtype)
    _forward_wavefront(np.ascontiguousarray(x), w0_t, wr_t, whh_t, bias, lens, h, c, ys, config.WAVEFRONT_CHUNK, use_mkl())
    return ys[L - 1], (h, c), None


def lstm_backward(grad_y: np.ndarray, cache: LSTMCache, *, grad_hn=None, grad_cn=None,
                  input_grad: bool = True, workspace: Optional[Workspace] = None):
    """Backward through time.

    Parameters
    ----------
    grad_y : np.ndarray [shape=(B, T, D*H)]
        gradient of the loss with respect to the top-layer outputs (ignored at padding).
    cache : LSTMCache
        from ``lstm_forward(..., training=True)``.
    grad_hn, grad_cn : np.ndarray [shape=(L*D, B, H)] or None
        gradients with respect to the final states.
    input_grad : bool
        compute ``grad_x``; ``False`` skips the first layer's ``dgates @ W_ih`` GEMM (the input
        of an acoustic model is features, which need no gradient) and returns ``None`` for it.
    workspace : Workspace or None
        reuse its buffers for the temporaries (the returned arrays are always new).

    Returns
    -------
    grad_x : np.ndarray [shape=(B, T, I)] or None
    grad_weights : same nesting as ``weights``: (dw_ih, dw_hh, db_ih, db_hh)
    (grad_h0, grad_c0) : np.ndarray [shape=(L*D, B, H)] each
    """
    if cache is None:
        raise ParameterError("lstm_backward needs the cache of lstm_forward(..., training=True)")
    top = cache.outputs[-1]
    dtype = top.dtype
    grad_y = np.asarray(grad_y)
    if grad_y.shape != top.shape:
        raise ParameterError(f"grad_y must have shape {top.shape}, got {grad_y.shape}")
    B, T, _ = top.shape
    L = len(cache.gates)
    D = 2 if cache.bidirectional else 1
    H = cache.cells[0].shape[-1]
    dhn = _check_state(grad_hn, (L * D, B, H), dtype, "grad_hn")
    dcn = _check_state(grad_cn, (L * D, B, H), dtype, "grad_cn")
    prepare_blas()
    n_chunks = _n_chunks(D, B)
    mkl = use_mkl()  # one BLAS for the whole call
    lens = cache.lengths
    dh0 = np.empty((L * D, B, H), dtype)
    dc0 = np.empty((L * D, B, H), dtype)
    grads = [None] * L
    dy = np.ascontiguousarray(grad_y, dtype=dtype)
    for l in range(L - 1, -1, -1):
        sl = slice(l * D, (l + 1) * D)
        whh = np.ascontiguousarray(np.stack([cache.weights[l][d][1] for d in range(D)]))
        dg = _scratch(workspace, "dg", (D, B, T, 4 * H), dtype)  # one contiguous block per direction
        _backward_layer(cache.gates[l], cache.cells[l], cache.c0[sl], whh, lens, dy, dhn[sl], dcn[sl],
                        dg, dh0[sl], dc0[sl], n_chunks, mkl)
        inp = cache.inputs[l]
        I = inp.shape[2]
        G = 4 * H
        inp2d = inp.reshape(B * T, I)
        if l > 0:  # consumed by the layer below within this call
            dx = _scratch(workspace, f"dx{l % 2}", (B * T, I), dtype)
        else:  # returned to the caller: always a new array
            dx = np.empty((B * T, I), dtype) if input_grad else None
        hprev = _scratch(workspace, "hprev", (B, T, H), dtype)
        layer_grads = []
        for d in range(D):
            dg_d = dg[d].reshape(B * T, G)
            if dx is not None:  # dx = sum over directions of dgates_d @ W_ih_d
                matmul(dg_d, cache.weights[l][d][0], out=dx, accumulate=d > 0)
            dw_ih = matmul_tn(dg_d, inp2d)
            _previous_h(cache.outputs[l], cache.h0[sl], lens, d, H, hprev)
            dw_hh = matmul_tn(dg_d, hprev.reshape(B * T, H))
            db = dg_d.sum(axis=0)
            layer_grads.append((dw_ih, dw_hh, db, db.copy()))
        grads[l] = layer_grads
        if l > 0 and cache.masks is not None:  # through the dropout below this layer
            np.multiply(dx, cache.masks[l - 1].reshape(B * T, I), out=dx)
        dy = None if dx is None else dx.reshape(B, T, I)
    return dy, grads, (dh0, dc0)
