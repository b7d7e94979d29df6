"""speechlstm.linalg against NumPy: row-block GEMM (bias, accumulate, transposed operand) and a.T @ b."""
import os

import numpy as np
import pytest

from speechlstm import ParameterError
from speechlstm.linalg import matmul, matmul_tn, stack_transposed


@pytest.mark.parametrize("n", [0, 1, 5, 300])  # 300 rows: several row blocks on any thread count
def test_matmul_bias_accumulate_and_transposed_operand(n, blas):
    rng = np.random.default_rng(n)
    a = rng.standard_normal((n, 7))
    w = rng.standard_normal((9, 7))  # used as w.T, an F-contiguous view, as the LSTM does
    bias = rng.standard_normal(9)
    np.testing.assert_allclose(matmul(a, w.T), a @ w.T, atol=1e-12)
    np.testing.assert_allclose(matmul(a, w.T, bias=bias), a @ w.T + bias, atol=1e-12)
    out = rng.standard_normal((n, 9))
    expect = out + a @ w.T
    assert matmul(a, w.T, out=out, accumulate=True) is out
    np.testing.assert_allclose(out, expect, atol=1e-12)
    with pytest.raises(ParameterError, match="needs out"):
        matmul(a, w.T, accumulate=True)
    with pytest.raises(ParameterError, match=r"bias must have shape \(9,\)"):
        matmul(a, w.T, bias=np.zeros(8))


@pytest.mark.parametrize("n", [0, 3, 1000])
def test_matmul_tn(n, blas):
    rng = np.random.default_rng(n)
    a = rng.standard_normal((n, 6)).astype(np.float32)
    b = rng.standard_normal((n, 4)).astype(np.float32)
    np.testing.assert_allclose(matmul_tn(a, b), a.T.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)


def test_mkl_gemm_every_operand_layout(blas):
    """The MKL product the kernels call, on the views they pass: C and F operands, row slices of
    padded buffers, size-1 axes, beta 0 and 1, both precisions (OpenBLAS runs np.dot instead)."""
    from numba import njit

    from speechlstm.linalg import mkl_gemm, use_mkl

    @njit
    def gemm(a, b, out, beta, mkl):
        if mkl:
            mkl_gemm(a, b, out, beta)
        else:
            if beta == 0.0:
                out[:] = 0.0
            out += np.dot(np.ascontiguousarray(a), np.ascontiguousarray(b))

    rng = np.random.default_rng(0)
    for dtype, tol in [(np.float32, 1e-4), (np.float64, 1e-12)]:
        for m, k, n in [(5, 7, 9), (1, 7, 9), (5, 1, 9), (5, 7, 1), (1, 1, 1), (32, 64, 256)]:
            a = rng.standard_normal((m, k)).astype(dtype)
            w = rng.standard_normal((n, k)).astype(dtype)
            buf = rng.standard_normal((m + 2, n + 16)).astype(dtype)  # padded rows, like the gate scratch
            for a_view, b_view in [(a, w.T), (a, np.ascontiguousarray(w.T)), (np.asfortranarray(a), w.T),
                                   (np.ascontiguousarray(a.T).T, np.ascontiguousarray(w.T))]:
                for beta in (0.0, 1.0):
                    out = buf[1:m + 1, :n]  # a row-major view whose rows are n + 16 apart
                    before, whole = out.copy(), buf.copy()
                    gemm(a_view, b_view, out, beta, use_mkl())
                    np.testing.assert_allclose(out, beta * before + a @ w.T, rtol=tol, atol=tol)
                    whole[1:m + 1, :n] = out
                    assert np.array_equal(buf, whole)  # nothing written outside the view


def test_set_blas_refuses_unknown_names():
    from speechlstm.linalg import set_blas

    with pytest.raises(ParameterError, match="BLAS must be one of auto, mkl, openblas, got 'fast'"):
        set_blas("fast")


def test_auto_takes_mkl_on_intel_cpus_only(monkeypatch):
    """``auto`` with MKL found: MKL on GenuineIntel (or an unreadable vendor), OpenBLAS on AMD,
    where MKL ran the inference benchmarks slower; an explicit ``mkl`` is honoured anywhere."""
    from speechlstm import linalg

    before = linalg.blas_choice()
    monkeypatch.setitem(linalg._STATE, "mkl", ("libmkl_rt.so.2", "test"))
    try:
        for vendor, expected in (("GenuineIntel", "mkl"), ("", "mkl"), ("AuthenticAMD", "openblas"),
                                 ("HygonGenuine", "openblas")):
            monkeypatch.setitem(linalg._STATE, "vendor", vendor)
            assert linalg.set_blas("auto") == expected, vendor
        assert linalg.set_blas("mkl") == "mkl"
        monkeypatch.setitem(linalg._STATE, "mkl", None)
        monkeypatch.setitem(linalg._STATE, "vendor", "GenuineIntel")
        assert linalg.set_blas("auto") == "openblas"
    finally:
        monkeypatch.undo()
        linalg.set_blas(before)


def test_training_blas_takes_mkl_for_auto_only(monkeypatch):
    """The trainer's block: ``auto`` on an AMD CPU trains on MKL and goes back to OpenBLAS after
    (also after an error); an explicit choice is left alone; without MKL nothing changes."""
    from speechlstm import linalg

    before = linalg.blas_choice()
    monkeypatch.setitem(linalg._STATE, "mkl", ("libmkl_rt.so.2", "test"))
    monkeypatch.setitem(linalg._STATE, "vendor", "AuthenticAMD")
    try:
        assert linalg.set_blas("auto") == "openblas"
        with linalg.training_blas():
            assert linalg.use_mkl()
        assert linalg.blas_backend() == "openblas"
        with pytest.raises(RuntimeError):
            with linalg.training_blas():
                raise RuntimeError("a failing epoch")
        assert linalg.blas_backend() == "openblas"
        linalg.set_blas("openblas")  # asked for by name: training keeps it
        with linalg.training_blas():
            assert not linalg.use_mkl()
        monkeypatch.setitem(linalg._STATE, "mkl", None)
        linalg.set_blas("auto")
        with linalg.training_blas():
            assert not linalg.use_mkl()
    finally:
        monkeypatch.undo()
        linalg.set_blas(before)


def test_cpu_vendor_reads_proc_cpuinfo():
    from speechlstm.linalg import cpu_vendor

    try:
        with open("/proc/cpuinfo") as f:
            lines = [l for l in f if l.startswith("vendor_id")]
    except OSError:
        lines = []
    assert cpu_vendor() == (lines[0].split(":", 1)[1].strip() if lines else "")


def test_without_mkl_the_kernels_run_on_openblas(tmp_path):
    """Where MKL is missing (here: pointed at a file that is not there), ``auto`` falls back to
    OpenBLAS and the same compiled kernels run; asking for ``mkl`` is a clear error."""
    import subprocess
    import sys

    code = (
        "import numpy as np, naive\n"
        "from speechlstm.linalg import blas_backend\n"
        "from speechlstm.lstm import lstm_forward, lstm_backward\n"
        "rng = np.random.default_rng(3)\n"
        "W = naive.random_lstm_weights(rng, 5, 4, 2, True, scale=0.6, dtype=np.float32)\n"
        "x = rng.standard_normal((3, 6, 5)).astype(np.float32)\n"
        "y, _, cache = lstm_forward(x, W, training=True)\n"
        "gx, _, _ = lstm_backward(np.ones_like(y), cache)\n"
        "ry = naive.lstm_forward(x, W, None, None, None)[0]\n"
        "print(blas_backend(), float(np.abs(y - ry).max()), bool(np.isfinite(gx).all()))\n"
    )
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, SPEECHLSTM_MKL_LIB=str(tmp_path / "libmkl_rt.so.2"), SPEECHLSTM_BLAS="auto",
               PYTHONPATH=tests_dir + os.pathsep + os.environ.get("PYTHONPATH", ""))
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    backend, err, finite = run.stdout.split()
    assert backend == "openblas" and float(err) < 2e-5 and finite == "True"
    env["SPEECHLSTM_BLAS"] = "mkl"
    run = subprocess.run([sys.executable, "-c", "from speechlstm.lstm import lstm_forward\n"
                          "import numpy as np, naive\n"
                          "W = naive.random_lstm_weights(np.random.default_rng(0), 2, 2, 1, False)\n"
                          "lstm_forward(np.zeros((1, 1, 2)), W)"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode != 0
    assert "SPEECHLSTM_BLAS='mkl': BLAS 'mkl' asked for, but MKL is not usable" in run.stderr
    assert "libmkl_rt.so.2" in run.stderr


def test_mkl_packed_product(blas):
    """The packed-weight product of the recurrences equals the plain one (MKL only: it is what
    the kernels call when ``use_mkl()``; under OpenBLAS this checks the reference alone)."""
    from numba import njit

    from speechlstm.linalg import mkl_gemm_packed, mkl_pack_b, use_mkl

    @njit
    def steps(a, b, out, beta, mkl):
        if mkl:
            bp = mkl_pack_b(a.shape[0], b)
            for _ in range(3):  # one packing, several products, as over timesteps
                mkl_gemm_packed(a, bp, out, beta)
        else:
            for _ in range(3):
                out[:] = beta * out + np.dot(np.ascontiguousarray(a), np.ascontiguousarray(b))

    rng = np.random.default_rng(1)
    for dtype, tol in [(np.float32, 1e-4), (np.float64, 1e-12)]:
        for m, k, n in [(2, 5, 8), (32, 256, 1024), (3, 1024, 128)]:
            a = rng.standard_normal((m, k)).astype(dtype)
            w = rng.standard_normal((n, k)).astype(dtype)
            for b_view in (np.ascontiguousarray(w.T), w.T):
                buf = rng.standard_normal((m, n + 16)).astype(dtype)
                out, before = buf[:, :n], buf.copy()
                steps(a, b_view, out, 0.0, use_mkl())
                np.testing.assert_allclose(out, a @ w.T, rtol=tol, atol=tol)
                assert np.array_equal(buf[:, n:], before[:, n:])
                steps(a, b_view, out, 1.0, use_mkl())
                np.testing.assert_allclose(out, 4 * (a @ w.T), rtol=tol * 4, atol=tol * 4)


@pytest.mark.parametrize("shape", [(512, 128), (512, 117), (33, 65), (1, 7), (7, 1), (31, 32)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stack_transposed(shape, dtype):
    """Tiles, ragged edges on either axis, single rows and columns; exact copies."""
    rng = np.random.default_rng(3)
    mats = [rng.standard_normal(shape).astype(dtype) for _ in range(3)]
    mats[1] = np.asfortranarray(mats[1])  # any layout in
    out = stack_transposed(mats)
    assert out.flags.c_contiguous and out.dtype == dtype
    assert np.array_equal(out, np.stack([m.T for m in mats]))
    big = np.full((3, shape[1] + 1, shape[0]), 7.0, dtype)  # into the leading rows of a larger buffer
    lead = big[:, :shape[1]]
    assert stack_transposed(mats, out=lead) is lead
    assert np.array_equal(lead, out) and (big[:, shape[1]] == 7.0).all()


def test_stack_transposed_refuses_mixed_inputs():
    with pytest.raises(ParameterError, match="one shape and dtype"):
        stack_transposed([np.zeros((2, 3)), np.zeros((3, 2))])
    with pytest.raises(ParameterError, match="non-empty sequence of 2-D"):
        stack_transposed([])
    with pytest.raises(ParameterError, match="out must be"):
        stack_transposed([np.zeros((2, 3))], out=np.zeros((1, 2, 3)))
