"""The numba.cuda twin of :mod:`speechlstm.lstm` (inference and training), same public signatures.

Kernels:

* ``_gemm``: register-blocked shared-memory matrix multiply ``C = op(A) @ op(B) + bias``, ``op`` the identity
  or the transpose — the input projection of every timestep and direction at once, the output
  Dense layer, and in backward ``dx = dgates @ W_ih`` and the weight gradients ``dgates.T @ x``;
* ``_lstm_layer``: a whole layer in one launch (persistent): each block carries a few sequences of
  one direction through every timestep, thread j owning unit j (recurrent dot products and the fused
  gate math, the same activation functions as the CPU, from :mod:`speechlstm.gates`), h in shared
  memory, synchronising only within the block; ``_lstm_step`` does one timestep per launch, for
  hidden sizes past ``config.CUDA_PERSISTENT_MAX_HIDDEN``. The reverse direction walks each
  sequence from its own last frame, so padding never leaks; in training both also keep the
  activated gates and cell states;
* backward through time: ``_lstm_layer_backward`` (a whole layer in one launch, as forward) or,
  per step, ``_lstm_back_gates`` (gate pre-activation gradients and the cell-state gradient, per
  unit) then ``_lstm_back_hidden`` (``dh = dgates @ W_hh``, per unit); every weight gradient is
  then one GEMM over all timesteps, as on the CPU;
* ``_log_softmax_rows`` and ``_greedy_ctc``: per-frame log-softmax and best-path decoding.

Tunables live in :mod:`speechlstm.config`: threads per block and the persistent-kernel hidden-size
limit are read at call time; the sizes of shared and local arrays (GEMM tile and register block,
sequences per block, the largest persistent hidden size) at import, as CUDA needs them constant.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import cuda, float32

from . import config
from .errors import DeviceError, ParameterError
from .gates import compile_gates
from .lstm import _check_lengths, _check_state, check_input, check_masks, check_weights

__all__ = ["gpu_lstm_forward", "gpu_lstm_backward", "GpuLSTMCache", "gpu_log_probs", "gpu_greedy_ids", "gpu_dense"]

_dexp, _dsigmoid, _dtanh = compile_gates(cuda.jit(device=True))
TILE = config.CUDA_TILE
RB = config.CUDA_GEMM_REGISTER_BLOCK
BM = RB * TILE  # edge of the C tile one GEMM block computes
SEQS = config.CUDA_SEQS_PER_BLOCK
HMAX = config.CUDA_PERSISTENT_MAX_HIDDEN
GMAX = 4 * HMAX
# shared-array shapes must be compile-time constants: only these module globals appear in them


def _require_gpu():
    if not cuda.is_available():
        raise DeviceError("CUDA was requested but numba.cuda finds no GPU")


@cuda.jit(device=True)
def _stage(X, k_major, k0, o0, K, O, col0, idx, s):
    """Element ``idx`` of a GEMM operand tile into shared memory as ``s[k, o]``: X is stored
    ``[K, O]`` (``k_major``, read contiguous along o) or ``[O, K]`` (read contiguous along k), its
    columns counted from ``col0``."""
    if k_major:
        kk = idx // BM
        oo = idx % BM
        s[kk, oo] = X[k0 + kk, col0 + o0 + oo] if (k0 + kk < K and o0 + oo < O) else float32(0.0)
    else:
        oo = idx // TILE
        kk = idx % TILE
        s[kk, oo] = X[o0 + oo, col0 + k0 + kk] if (o0 + oo < O and k0 + kk < K) else float32(0.0)


@cuda.jit
def _gemm_kernel(A, B, bias, C, ta, tb, a_col0, K):
    """C[M, N] = op(A)[M, K] @ op(B)[K, N] + bias[N]; op transposes when ``ta`` / ``tb``; A's
    columns are read from ``a_col0`` on (a column block of a wider array, without slicing it).

    Register-blocked: a TILE x TILE block of threads computes a (RB*TILE)² tile of C, each thread
    RB x RB outputs (rows ty + TILE*i, columns tx + TILE*j, so shared-memory reads are conflict-free
    and stores coalesce), stepping through K by TILE with both operand tiles staged in shared memory,
    each loaded along its array's contiguous axis."""
    sa = cuda.shared.array((TILE, BM), float32)  # sa[k, m]
    sb = cuda.shared.array((TILE, BM), float32)  # sb[k, n]
    acc = cuda.local.array((RB, RB), float32)
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    tid = ty * TILE + tx
    m0 = cuda.blockIdx.y * BM
    n0 = cuda.blockIdx.x * BM
    M, N = C.shape
    for i in range(RB):
        for j in range(RB):
            acc[i, j] = float32(0.0)
    for k0 in range(0, K, TILE):
        for r in range(RB):  # each tile has TILE * RB * TILE elements: RB per thread
            idx = tid + r * TILE * TILE
            _stage(A, ta, k0, m0, K, M, a_col0, idx, sa)
            _stage(B, not tb, k0, n0, K, N, 0, idx, sb)
        cuda.syncthreads()
        for kk in range(TILE):
            for i in range(RB):
                a = sa[kk, ty + TILE * i]
                for j in range(RB):
                    acc[i, j] += a * sb[kk, tx + TILE * j]
        cuda.syncthreads()
    for i in range(RB):
        row = m0 + ty + TILE * i
        if row < M:
            for j in range(RB):
                col = n0 + tx + TILE * j
                if col < N:
                    C[row, col] = acc[i, j] + bias[col]


@cuda.jit(device=True)
def _gate_update(zi, zf, zg, zo, c):
    """(i, f, g, o, c', h') from the four pre-activations and the previous cell state."""
    ig = _dsigmoid(zi)
    fg = _dsigmoid(zf)
    gg = _dtanh(zg)
    og = _dsigmoid(zo)
    cc = fg * c + ig * gg
    return ig, fg, gg, og, cc, og * _dtanh(cc)


@cuda.jit(device=True)
def _get4(row, j, H):
    """The four gate entries of unit j in a row laid out i | f | g | o (H each)."""
    return row[j], row[H + j], row[2 * H + j], row[3 * H + j]


@cuda.jit(device=True)
def _put4(row, j, H, a, b, c, d):
    """Store the four gate entries of unit j into a row laid out i | f | g | o (H each)."""
    row[j] = a
    row[H + j] = b
    row[2 * H + j] = c
    row[3 * H + j] = d


@cuda.jit(device=True)
def _step_time(s, d, L):
    """The frame step s of direction d processes in a sequence of L frames."""
    return s if d == 0 else L - 1 - s


@cuda.jit(device=True)
def _prev_cell(c0, cells_s, s, d, b, t, j):
    """The cell state step s (at frame t) of direction d started from: c0 at the first step."""
    if s == 0:
        return c0[d, b, j]
    return cells_s[d, b, t - 1 if d == 0 else t + 1, j]


@cuda.jit(device=True)
def _unit_index(i, B, H):
    """(direction, sequence, unit) of flat thread index i in the per-step kernels."""
    return i // (B * H), (i // H) % B, i % H


@cuda.jit(device=True)
def _block_origin(B):
    """(direction, first sequence, unit) of this thread in the persistent layer kernels: block
    ``d * groups + k`` carries sequences ``k*SEQS ..`` of direction d, thread j unit j."""
    groups = (B + SEQS - 1) // SEQS
    return cuda.blockIdx.x // groups, (cuda.blockIdx.x % groups) * SEQS, cuda.threadIdx.x


@cuda.jit(device=True)
def _gate_grads(ig, fg, gg, og, c, cprev, dh, dc):
    """Backward of :func:`_gate_update`: gradients of the four pre-activations and of the previous
    cell state, from dh, dc reaching h' and c' (``c`` is c')."""
    tc = _dtanh(c)
    dcc = dc + dh * og * (float32(1.0) - tc * tc)
    return (dcc * gg * ig * (float32(1.0) - ig), dcc * cprev * fg * (float32(1.0) - fg),
            dcc * ig * (float32(1.0) - gg * gg), dh * tc * og * (float32(1.0) - og), dcc * fg)


@cuda.jit
def _lstm_step(s, gx, whh, lengths, h_in, c_in, h_out, c_out, y, save, gates_s, cells_s):
    """Step s for every (direction, sequence, unit).  gx [B,T,D*4H]; whh [D,4H,H];
    h/c ping-pong buffers [D,B,H]; y [B,T,D*H]; with ``save``, the activated gates [D,B,T,4H] and
    cells [D,B,T,H] are kept for backward."""
    i = cuda.grid(1)
    D = whh.shape[0]
    H = whh.shape[2]
    B = lengths.shape[0]
    if i >= D * B * H:
        return
    d, b, j = _unit_index(i, B, H)
    L = lengths[b]
    if s >= L:  # past this sequence's end: carry the state unchanged
        h_out[d, b, j] = h_in[d, b, j]
        c_out[d, b, j] = c_in[d, b, j]
        return
    t = _step_time(s, d, L)
    zi, zf, zg, zo = _get4(gx[b, t], d * 4 * H + j, H)
    for k in range(H):
        hk = h_in[d, b, k]
        zi += whh[d, j, k] * hk
        zf += whh[d, H + j, k] * hk
        zg += whh[d, 2 * H + j, k] * hk
        zo += whh[d, 3 * H + j, k] * hk
    ig, fg, gg, og, cc, hh = _gate_update(zi, zf, zg, zo, c_in[d, b, j])
    c_out[d, b, j] = cc
    h_out[d, b, j] = hh
    y[b, t, d * H + j] = hh
    if save:
        _put4(gates_s[d, b, t], j, H, ig, fg, gg, og)
        cells_s[d, b, t, j] = cc


@cuda.jit
def _lstm_layer(gx, whh_t, lengths, h0, c0, y, hn, cn, save, gates_s, cells_s):
    """A whole layer in one launch: block (d, group) runs direction d of sequences
    ``group*SEQS ..`` through every timestep, thread j owning unit j; h lives in shared memory, c in
    registers, and the block synchronises between steps (no other block is waited for).
    gx [B,T,D*4H]; whh_t [D,H,4H] (transposed, so the threads' weight loads coalesce); h0/c0/hn/cn
    [D,B,H]; y [B,T,D*H]; with ``save`` keeps gates [D,B,T,4H] and cells [D,B,T,H]."""
    sh = cuda.shared.array((SEQS, HMAX), float32)
    H = whh_t.shape[1]
    B = lengths.shape[0]
    G = 4 * H
    d, b0, j = _block_origin(B)
    c = cuda.local.array(SEQS, float32)
    acc = cuda.local.array((SEQS, 4), float32)
    w = cuda.local.array((4, 4), float32)
    tmax = 0
    for q in range(SEQS):
        b = b0 + q
        if b < B and j < H:
            sh[q, j] = h0[d, b, j]
            c[q] = c0[d, b, j]
            tmax = lengths[b] if lengths[b] > tmax else tmax
    cuda.syncthreads()
    H4 = H - H % 4
    for s in range(tmax):
        if j < H:
            for q in range(SEQS):
                for gi in range(4):
                    acc[q, gi] = float32(0.0)
            # four rows of weights per iteration: 16 independent loads in flight before the FMAs
            # need them (one row at a time left the loop waiting on L2 latency at every k)
            for k in range(0, H4, 4):
                for u in range(4):
                    w[u, 0] = whh_t[d, k + u, j]
                    w[u, 1] = whh_t[d, k + u, H + j]
                    w[u, 2] = whh_t[d, k + u, 2 * H + j]
                    w[u, 3] = whh_t[d, k + u, 3 * H + j]
                for u in range(4):
                    for q in range(SEQS):
                        hk = sh[q, k + u]
                        acc[q, 0] += w[u, 0] * hk
                        acc[q, 1] += w[u, 1] * hk
                        acc[q, 2] += w[u, 2] * hk
                        acc[q, 3] += w[u, 3] * hk
            for k in range(H4, H):
                wi = whh_t[d, k, j]
                wf = whh_t[d, k, H + j]
                wg = whh_t[d, k, 2 * H + j]
                wo = whh_t[d, k, 3 * H + j]
                for q in range(SEQS):
                    hk = sh[q, k]
                    acc[q, 0] += wi * hk
                    acc[q, 1] += wf * hk
                    acc[q, 2] += wg * hk
                    acc[q, 3] += wo * hk
        cuda.syncthreads()  # every thread has read h of step s - 1
        if j < H:
            for q in range(SEQS):
                b = b0 + q
                if b >= B:
                    continue
                L = lengths[b]
                if s >= L:
                    continue
                t = _step_time(s, d, L)
                zi, zf, zg, zo = _get4(gx[b, t], d * G + j, H)
                ig, fg, gg, og, cc, hh = _gate_update(acc[q, 0] + zi, acc[q, 1] + zf, acc[q, 2] + zg, acc[q, 3] + zo,
                                                      c[q])
                c[q] = cc
                sh[q, j] = hh
                y[b, t, d * H + j] = hh
                if save:
                    _put4(gates_s[d, b, t], j, H, ig, fg, gg, og)
                    cells_s[d, b, t, j] = cc
        cuda.syncthreads()  # h of step s written
    for q in range(SEQS):
        b = b0 + q
        if b < B and j < H:
            hn[d, b, j] = sh[q, j]
            cn[d, b, j] = c[q]


@cuda.jit
def _lstm_layer_backward(gates_s, cells_s, c0, whh, lengths, dy, dhn, dcn, dg, dh0, dc0):
    """Backward through time of a whole layer in one launch, blocks and threads as in
    :func:`_lstm_layer`: per step, thread j writes the four gate gradients of unit j (to dg and to
    shared memory) and carries dc in a register; after a block barrier, thread k forms
    ``dh[k] = sum_g dg[g] * W_hh[g, k]``.  dg [B,T,D*4H] must be zero on entry (padding stays zero)."""
    sdg = cuda.shared.array((SEQS, GMAX), float32)
    sdh = cuda.shared.array((SEQS, HMAX), float32)
    H = whh.shape[2]
    B = lengths.shape[0]
    G = 4 * H
    d, b0, j = _block_origin(B)
    dc = cuda.local.array(SEQS, float32)
    acc = cuda.local.array(SEQS, float32)
    tmax = 0
    for q in range(SEQS):
        # the dh products below sum every row, also those of absent sequences (b >= B) and of
        # sequences not started yet (s >= L): zeros there, not whatever shared memory held
        _put4(sdg[q], j, H, float32(0.0), float32(0.0), float32(0.0), float32(0.0))
        b = b0 + q
        if b < B:
            sdh[q, j] = dhn[d, b, j]
            dc[q] = dcn[d, b, j]
            tmax = lengths[b] if lengths[b] > tmax else tmax
    cuda.syncthreads()
    for s in range(tmax - 1, -1, -1):
        for q in range(SEQS):
            b = b0 + q
            if b >= B or s >= lengths[b]:
                continue
            t = _step_time(s, d, lengths[b])
            ig, fg, gg, og = _get4(gates_s[d, b, t], j, H)
            g_i, g_f, g_g, g_o, dcp = _gate_grads(ig, fg, gg, og, cells_s[d, b, t, j],
                                                  _prev_cell(c0, cells_s, s, d, b, t, j),
                                                  sdh[q, j] + dy[b, t, d * H + j], dc[q])
            _put4(sdg[q], j, H, g_i, g_f, g_g, g_o)
            _put4(dg[b, t], d * G + j, H, g_i, g_f, g_g, g_o)
            dc[q] = dcp
        cuda.syncthreads()  # all gate gradients of step s in shared memory; sdh read
        # each weight read once for all the block's sequences, four gate rows per iteration so their
        # loads overlap (G = 4H is a multiple of 4); rows of inactive sequences (zeros) are summed, not stored
        for q in range(SEQS):
            acc[q] = float32(0.0)
        for g in range(0, G, 4):
            w0 = whh[d, g, j]
            w1 = whh[d, g + 1, j]
            w2 = whh[d, g + 2, j]
            w3 = whh[d, g + 3, j]
            for q in range(SEQS):
                acc[q] += sdg[q, g] * w0 + sdg[q, g + 1] * w1 + sdg[q, g + 2] * w2 + sdg[q, g + 3] * w3
        for q in range(SEQS):
            b = b0 + q
            if b < B and s < lengths[b]:
                sdh[q, j] = acc[q]
        cuda.syncthreads()  # dh of step s - 1 ready
    for q in range(SEQS):
        b = b0 + q
        if b < B:
            dh0[d, b, j] = sdh[q, j]
            dc0[d, b, j] = dc[q]


@cuda.jit
def _lstm_back_gates(s, gates_s, cells_s, c0, lengths, dy, dh, dc, dg):
    """Backward step s for every (direction, sequence, unit): gate pre-activation gradients into
    dg [B,T,D*4H] (left zero past each sequence's end) and dc [D,B,H] carried to the previous step
    in place.  dh [D,B,H] holds the gradient reaching h from step s+1 (dy is added here)."""
    i = cuda.grid(1)
    D = gates_s.shape[0]
    B = gates_s.shape[1]
    H = cells_s.shape[3]
    if i >= D * B * H:
        return
    d, b, j = _unit_index(i, B, H)
    L = lengths[b]
    if s >= L:  # padding: state carried unchanged, nothing to add
        return
    t = _step_time(s, d, L)
    ig, fg, gg, og = _get4(gates_s[d, b, t], j, H)
    g_i, g_f, g_g, g_o, dcp = _gate_grads(ig, fg, gg, og, cells_s[d, b, t, j], _prev_cell(c0, cells_s, s, d, b, t, j),
                                          dh[d, b, j] + dy[b, t, d * H + j], dc[d, b, j])
    _put4(dg[b, t], d * 4 * H + j, H, g_i, g_f, g_g, g_o)
    dc[d, b, j] = dcp


@cuda.jit
def _lstm_back_hidden(s, dg, whh, lengths, dh):
    """dh[d, b, k] = sum_g dg[b, t, d*4H + g] * whh[d, g, k] for every sequence still running at
    step s (the others keep their dh)."""
    i = cuda.grid(1)
    D = whh.shape[0]
    H = whh.shape[2]
    B = lengths.shape[0]
    if i >= D * B * H:
        return
    d, b, k = _unit_index(i, B, H)
    L = lengths[b]
    if s >= L:
        return
    t = _step_time(s, d, L)
    G = 4 * H
    acc = float32(0.0)
    for g in range(G):
        acc += dg[b, t, d * G + g] * whh[d, g, k]
    dh[d, b, k] = acc


@cuda.jit
def _previous_h(y, h0, lengths, d, out):
    """h_{t-1} seen by step t of direction d: out [B,T,H] (h0 at each sequence's first step, zero
    at padding)."""
    i = cuda.grid(1)
    B, T, H = out.shape
    if i >= B * T * H:
        return
    b = i // (T * H)
    t = (i // H) % T
    j = i % H
    L = lengths[b]
    if t >= L:
        out[b, t, j] = float32(0.0)
        return
    first = (t == 0) if d == 0 else (t == L - 1)
    tp = t - 1 if d == 0 else t + 1
    out[b, t, j] = h0[d, b, j] if first else y[b, tp, d * H + j]


@cuda.jit
def _column_sums(a, out):
    n = cuda.grid(1)
    if n >= a.shape[1]:
        return
    acc = float32(0.0)
    for r in range(a.shape[0]):
        acc += a[r, n]
    out[n] = acc


@cuda.jit
def _fill_zero(a):
    i = cuda.grid(1)
    if i < a.shape[0]:
        a[i] = float32(0.0)


@cuda.jit
def _multiply(a, b, out):
    """out = a * b elementwise (1-D views): a dropout mask on a layer's output or its gradient."""
    i = cuda.grid(1)
    if i < out.shape[0]:
        out[i] = a[i] * b[i]


@cuda.jit
def _log_softmax_rows(z):
    r = cuda.grid(1)
    if r >= z.shape[0]:
        return
    C = z.shape[1]
    m = z[r, 0]
    for k in range(1, C):
        m = z[r, k] if z[r, k] > m else m
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


def _gemm(A_d, B_d, bias_d, C_d, *, ta: bool = False, tb: bool = True, a_col0: int = 0):
    """C = op(A) @ op(B) + bias on the device; the default (tb) is ``A @ B.T + bias``.

    ``a_col0``: op(A) is the block of A's columns from ``a_col0`` on that the shapes of B and C
    call for. Slicing a device array by columns instead (``A[:, j0:j1]``) costs numba a Python-level
    contiguity check per row: 3,200 rows took milliseconds on the host per slice."""
    M, N = C_d.shape
    K = B_d.shape[1] if tb else B_d.shape[0]
    if bias_d is None:
        bias_d = _zeros((N,))
    grid = (-(-N // BM), -(-M // BM))
    _gemm_kernel[grid, (TILE, TILE)](A_d, B_d, bias_d, C_d, ta, tb, a_col0, K)


def _zeros(shape):
    a = cuda.device_array(shape, np.float32)
    n = int(np.prod(shape))
    if n:
        grid, tpb = _blocks(n)
        _fill_zero[grid, tpb](a.reshape(n))
    return a


def gpu_dense(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """``x @ weight.T + bias`` on the GPU (x [..., I], weight [O, I])."""
    _require_gpu()
    x2 = np.ascontiguousarray(x.reshape(-1, x.shape[-1]), np.float32)
    C = cuda.device_array((x2.shape[0], weight.shape[0]), np.float32)
    _gemm(cuda.to_device(x2), cuda.to_device(np.ascontiguousarray(weight, np.float32)),
          cuda.to_device(np.ascontiguousarray(bias, np.float32)), C)
    return C.copy_to_host().reshape(x.shape[:-1] + (weight.shape[0],))


@dataclass
class GpuLSTMCache:
    """What the CUDA forward keeps for :func:`gpu_lstm_backward` (device arrays, one per layer)."""

    inputs: list  # layer inputs [B*T, I_l]
    gates: list  # activated gates [D,B,T,4H]
    cells: list  # cell states [D,B,T,H]
    outputs: list  # layer outputs [B,T,D*H]
    h0: object  # device [L*D,B,H]
    c0: object
    lengths: np.ndarray  # host [B] int64
    lengths_d: object
    weights: list  # host weights, float32
    shape: tuple  # (B, T, I)
    bidirectional: bool
    masks: list = None  # device dropout masks [B*T, D*H] on each layer's output but the last, or None


def _masked(a_d, mask_d, out=None):
    """``a * mask`` into ``out`` (a new device array when None; ``a`` itself works), all
    C-contiguous with ``a``'s shape."""
    if out is None:
        out = cuda.device_array(a_d.shape, np.float32)
    n = int(np.prod(a_d.shape))
    grid, tpb = _blocks(n)
    _multiply[grid, tpb](a_d.reshape(n), mask_d.reshape(n), out.reshape(n))
    return out


def _forward_device(x, weights, lengths=None, h0=None, c0=None, training=False, masks=None):
    x = check_input(x)
    B, T, I = x.shape
    weights, L, D, H, _ = check_weights(weights, input_size=I, dtype=np.float32)
    lens = _check_lengths(lengths, B, T)
    h0 = _check_state(h0, (L * D, B, H), np.float32, "h0")
    c0 = _check_state(c0, (L * D, B, H), np.float32, "c0")
    masks = check_masks(masks, L, (B, T, D * H), np.float32, training)
    _require_gpu()
    lens_d = cuda.to_device(lens)
    inp = cuda.to_device(np.ascontiguousarray(x, np.float32).reshape(B * T, I))
    h0_d, c0_d = (cuda.to_device(h0), cuda.to_device(c0)) if training else (None, None)
    persistent = H <= min(HMAX, config.CUDA_PERSISTENT_MAX_HIDDEN)
    hn = np.empty((L * D, B, H), np.float32)
    cn = np.empty((L * D, B, H), np.float32)
    masks_d = None if masks is None else [cuda.to_device(m.reshape(B * T, D * H)) for m in masks]
    cache = (GpuLSTMCache([], [], [], [], h0_d, c0_d, lens, lens_d, weights, (B, T, I), D == 2, masks_d)
             if training else None)
    dummy = cuda.device_array((1, 1, 1, 1), np.float32)
    tmax = int(lens.max()) if B else 0
    for l in range(L):
        w_cat = np.concatenate([weights[l][d][0] for d in range(D)])
        bias = np.concatenate([weights[l][d][2] + weights[l][d][3] for d in range(D)])
        gx = cuda.device_array((B * T, D * 4 * H), np.float32)
        _gemm(inp, cuda.to_device(w_cat), cuda.to_device(bias), gx)
        y = _zeros((B, T, D * H))
        gates = cuda.device_array((D, B, T, 4 * H), np.float32) if training else dummy
        cells = cuda.device_array((D, B, T, H), np.float32) if training else dummy
        gx3 = gx.reshape(B, T, D * 4 * H)
        h0_l = cuda.to_device(np.ascontiguousarray(h0[l * D:(l + 1) * D]))
        c0_l = cuda.to_device(np.ascontiguousarray(c0[l * D:(l + 1) * D]))
        if persistent:  # one launch for the whole layer
            whh_t = cuda.to_device(np.ascontiguousarray(np.stack([weights[l][d][1].T for d in range(D)])))
            hn_l = cuda.device_array((D, B, H), np.float32)
            cn_l = cuda.device_array((D, B, H), np.float32)
            _lstm_layer[D * -(-B // SEQS), H](gx3, whh_t, lens_d, h0_l, c0_l, y, hn_l, cn_l, training, gates, cells)
        else:  # one launch per timestep, h/c ping-ponging between two buffers
            whh = cuda.to_device(np.stack([weights[l][d][1] for d in range(D)]))
            hbuf = [h0_l, cuda.device_array((D, B, H), np.float32)]
            cbuf = [c0_l, cuda.device_array((D, B, H), np.float32)]
            grid, tpb = _blocks(D * B * H)
            for s in range(tmax):
                a, o = s % 2, (s + 1) % 2
                _lstm_step[grid, tpb](s, gx3, whh, lens_d, hbuf[a], cbuf[a], hbuf[o], cbuf[o], y, training, gates,
                                      cells)
            hn_l, cn_l = hbuf[tmax % 2], cbuf[tmax % 2]
        hn[l * D:(l + 1) * D] = hn_l.copy_to_host()
        cn[l * D:(l + 1) * D] = cn_l.copy_to_host()
        if training:
            cache.inputs.append(inp)
            cache.gates.append(gates)
            cache.cells.append(cells)
            cache.outputs.append(y)
        inp = y.reshape(B * T, D * H)
        if masks_d is not None and l < L - 1:  # dropout: the next layer reads the masked output
            inp = _masked(inp, masks_d[l])
    return inp, (hn, cn), (B, T, D * H), cache


def gpu_lstm_forward(x, weights, *, lengths=None, h0=None, c0=None, training: bool = False, masks=None):
    """Same signature and results as :func:`speechlstm.lstm.lstm_forward` (float32); with
    ``training`` the cache is a :class:`GpuLSTMCache` for :func:`gpu_lstm_backward`.

    ``masks`` (training only): dropout between layers, a list of ``L - 1`` arrays [B, T, D*H], each
    multiplying a layer's output before the next layer reads it (``nn.LSTM(dropout=p)`` draws
    them); applied on the device, in the same one call, and again to the gradients in backward."""
    y_d, (hn, cn), shape, cache = _forward_device(x, weights, lengths, h0, c0, training, masks)
    return y_d.copy_to_host().reshape(shape), (hn, cn), cache


def gpu_lstm_backward(grad_y, cache: GpuLSTMCache, *, grad_hn=None, grad_cn=None, input_grad: bool = True):
    """Backward through time on the GPU; same signature and results as
    :func:`speechlstm.lstm.lstm_backward` (float32; ``input_grad=False`` skips the first layer's
    input-gradient GEMM and returns ``None`` for it)."""
    if not isinstance(cache, GpuLSTMCache):
        raise ParameterError("gpu_lstm_backward needs the cache of gpu_lstm_forward(..., training=True)")
    B, T, _ = cache.shape
    L = len(cache.gates)
    D = 2 if cache.bidirectional else 1
    H = cache.weights[0][0][1].shape[1]
    G = 4 * H
    grad_y = np.asarray(grad_y)
    if grad_y.shape != (B, T, D * H):
        raise ParameterError(f"grad_y must have shape {(B, T, D * H)}, got {grad_y.shape}")
    dhn = _check_state(grad_hn, (L * D, B, H), np.float32, "grad_hn")
    dcn = _check_state(grad_cn, (L * D, B, H), np.float32, "grad_cn")
    _require_gpu()
    lens, lens_d = cache.lengths, cache.lengths_d
    tmax = int(lens.max()) if B else 0
    dh0 = np.empty((L * D, B, H), np.float32)
    dc0 = np.empty((L * D, B, H), np.float32)
    grads = [None] * L
    dy = cuda.to_device(np.ascontiguousarray(grad_y, np.float32))
    step_grid, step_tpb = _blocks(D * B * H)
    persistent = H <= min(HMAX, config.CUDA_PERSISTENT_MAX_HIDDEN)
    for l in range(L - 1, -1, -1):
        sl = slice(l * D, (l + 1) * D)
        W = cache.weights[l]
        whh = cuda.to_device(np.stack([W[d][1] for d in range(D)]))
        dh = cuda.to_device(np.ascontiguousarray(dhn[sl]))
        dc = cuda.to_device(np.ascontiguousarray(dcn[sl]))
        dg = _zeros((B, T, D * G))
        c0 = cache.c0[sl]
        if persistent:  # one launch for the whole layer
            dh_out = cuda.device_array((D, B, H), np.float32)
            dc_out = cuda.device_array((D, B, H), np.float32)
            _lstm_layer_backward[D * -(-B // SEQS), H](cache.gates[l], cache.cells[l], c0, whh, lens_d, dy, dh, dc, dg,
                                                       dh_out, dc_out)
            dh, dc = dh_out, dc_out
        else:  # two launches per timestep
            for s in range(tmax - 1, -1, -1):
                _lstm_back_gates[step_grid, step_tpb](s, cache.gates[l], cache.cells[l], c0, lens_d, dy, dh, dc, dg)
                _lstm_back_hidden[step_grid, step_tpb](s, dg, whh, lens_d, dh)
        dh0[sl] = dh.copy_to_host()
        dc0[sl] = dc.copy_to_host()
        inp = cache.inputs[l]
        I = inp.shape[1]
        dg2 = dg.reshape(B * T, D * G)
        dw_ih_all = cuda.device_array((D * G, I), np.float32)
        _gemm(dg2, inp, None, dw_ih_all, ta=True, tb=False)
        db_all = cuda.device_array(D * G, np.float32)
        grid, tpb = _blocks(D * G)
        _column_sums[grid, tpb](dg2, db_all)
        dx = None
        if l > 0 or input_grad:
            w_cat = cuda.to_device(np.concatenate([W[d][0] for d in range(D)]))
            dx = cuda.device_array((B * T, I), np.float32)
            _gemm(dg2, w_cat, None, dx, ta=False, tb=False)
        hprev = cuda.device_array((B, T, H), np.float32)
        hgrid, htpb = _blocks(B * T * H)
        dw_ih_h, db_h = dw_ih_all.copy_to_host(), db_all.copy_to_host()
        layer_grads = []
        for d in range(D):
            _previous_h[hgrid, htpb](cache.outputs[l], cache.h0[sl], lens_d, d, hprev)
            dw_hh = cuda.device_array((G, H), np.float32)
            _gemm(dg2, hprev.reshape(B * T, H), None, dw_hh, ta=True, tb=False, a_col0=d * G)
            db = db_h[d * G:(d + 1) * G]
            layer_grads.append((dw_ih_h[d * G:(d + 1) * G], dw_hh.copy_to_host(), db, db.copy()))
        grads[l] = layer_grads
        if dx is not None and l > 0 and cache.masks is not None:  # through the dropout below this layer
            _masked(dx, cache.masks[l - 1], out=dx)
        dy = None if dx is None else dx.reshape(B, T, I)
    return (None if dy is None else dy.copy_to_host()), grads, (dh0, dc0)


def gpu_log_probs(acoustic, x, lengths=None) -> np.ndarray:
    """Acoustic model forward on the GPU: LSTM → Dense → log-softmax, ``[B, T, C]``."""
    y_d, _, (B, T, _), _ = _forward_device(x, acoustic.lstm.weights(), lengths)
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
