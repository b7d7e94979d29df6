"""Parallel GEMMs for the kernels: Numba tasks over row blocks, each calling single-threaded BLAS.

All heavy linear algebra of the CPU path runs here, inside Numba's one thread pool: mixing it
with numpy's multithreaded BLAS makes two pools of spinning threads fight over the cores.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from .errors import ParameterError

__all__ = ["matmul", "matmul_tn", "prepare_blas"]

_BLAS_READY = False


def prepare_blas() -> None:
    """Make the BLAS that Numba calls (SciPy's copy) single-threaded: our tasks are the parallelism."""
    global _BLAS_READY
    if _BLAS_READY:
        return
    import scipy.linalg.cython_blas  # noqa: F401  (loads the library numba calls)
    from threadpoolctl import ThreadpoolController

    for lib in ThreadpoolController().select(user_api="blas").lib_controllers:
        if "scipy.libs" in lib.filepath or "/scipy/" in lib.filepath:
            lib.set_num_threads(1)
    _BLAS_READY = True


@njit(parallel=True, cache=True)
def _matmul_rows(a, b, bias, out, n_blocks, accumulate):
    """out (+)= a @ b + bias, parallel over row blocks; bias [N] or empty (nothing added)."""
    n = a.shape[0]
    for k in prange(n_blocks):
        s = k * n // n_blocks
        e = (k + 1) * n // n_blocks
        if e > s:
            if accumulate:  # BLAS here cannot add into out (no beta), so through a task-local block
                tmp = np.empty((e - s, out.shape[1]), out.dtype)
                np.dot(a[s:e], b, tmp)
                for i in range(s, e):
                    for j in range(out.shape[1]):
                        out[i, j] += tmp[i - s, j]
            else:
                np.dot(a[s:e], b, out[s:e])
            for i in range(s, e):  # while the block is still in cache
                for j in range(bias.shape[0]):
                    out[i, j] += bias[j]


@njit(parallel=True, cache=True)
def _matmul_tn_split(a, b, parts, n_blocks):
    n = a.shape[0]
    for k in prange(n_blocks):
        s = k * n // n_blocks
        e = (k + 1) * n // n_blocks
        if e > s:
            np.dot(a[s:e].T, b[s:e], parts[k])
        else:
            parts[k][:] = 0.0


def _blocks(n_rows: int, min_rows: int = 64) -> int:
    return max(1, min(numba.get_num_threads(), n_rows // min_rows))


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None, bias: np.ndarray | None = None,
           accumulate: bool = False) -> np.ndarray:
    """``a @ b (+ bias)`` for 2-D arrays, parallel over row blocks of ``a`` (``a`` must be
    C-contiguous; ``b`` C- or F-contiguous, e.g. a transposed weight; ``bias`` [N] is added to
    every row inside the same task).  ``accumulate=True`` adds the product to ``out`` instead
    of overwriting it."""
    prepare_blas()
    a = np.ascontiguousarray(a)
    if not (b.flags.c_contiguous or b.flags.f_contiguous):
        b = np.ascontiguousarray(b)
    if out is None:
        if accumulate:
            raise ParameterError("accumulate=True needs out")
        out = np.empty((a.shape[0], b.shape[1]), np.result_type(a, b))
    if bias is None:
        bias = np.zeros(0, out.dtype)
    elif np.shape(bias) != (out.shape[1],):
        raise ParameterError(f"bias must have shape {(out.shape[1],)}, got {np.shape(bias)}")
    if a.shape[0] == 0:
        return out
    _matmul_rows(a, b, np.ascontiguousarray(bias, out.dtype), out, _blocks(a.shape[0]), bool(accumulate))
    return out


def matmul_tn(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a.T @ b`` (a [N, M], b [N, K] -> [M, K]), the reduction over N split across threads,
    each into its own buffer, then summed."""
    prepare_blas()
    a = np.ascontiguousarray(a)
    b = np.ascontiguousarray(b)
    nb = _blocks(a.shape[0], 256)
    parts = np.empty((nb, a.shape[1], b.shape[1]), np.result_type(a, b))
    if a.shape[0] == 0:
        return np.zeros(parts.shape[1:], parts.dtype)
    _matmul_tn_split(a, b, parts, nb)
    return parts.sum(axis=0) if nb > 1 else parts[0]
