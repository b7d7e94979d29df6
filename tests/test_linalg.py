"""speechlstm.linalg against NumPy: row-block GEMM (bias, accumulate, transposed operand) and a.T @ b."""
import numpy as np
import pytest

from speechlstm import ParameterError
from speechlstm.linalg import matmul, matmul_tn


@pytest.mark.parametrize("n", [0, 1, 5, 300])  # 300 rows: several row blocks on any thread count
def test_matmul_bias_accumulate_and_transposed_operand(n):
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
def test_matmul_tn(n):
    rng = np.random.default_rng(n)
    a = rng.standard_normal((n, 6)).astype(np.float32)
    b = rng.standard_normal((n, 4)).astype(np.float32)
    np.testing.assert_allclose(matmul_tn(a, b), a.T.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)
