"""The scalar gate activations (speechlstm.gates) in both precisions, against NumPy in float64."""
import numpy as np
import pytest
from numba import njit

from speechlstm.gates import compile_gates, fma


@njit
def _apply(f, x, out):
    for i in range(x.size):
        out[i] = f(x[i])


_EXP64, _SIG64, _TANH64 = compile_gates(njit)
_, _SIG32, _TANH32 = compile_gates(njit, "float32")
_GRID = np.concatenate([np.linspace(-200, 200, 400_001), [-3e38, -1e-30, 0.0, 1e-30, 3e38]])


def _ref_sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # no overflow for any x


@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
@pytest.mark.parametrize("dtype, atol", [(np.float64, 1e-12), (np.float32, 2.5e-7)])
def test_activations_match_numpy(name, dtype, atol):
    f = {("sigmoid", np.float64): _SIG64, ("tanh", np.float64): _TANH64,
         ("sigmoid", np.float32): _SIG32, ("tanh", np.float32): _TANH32}[name, dtype]
    x = _GRID.astype(dtype)
    out = np.empty_like(x)
    _apply(f, x, out)
    assert out.dtype == dtype and np.isfinite(out).all()
    xd = x.astype(np.float64)
    ref = _ref_sigmoid(xd) if name == "sigmoid" else np.tanh(xd)
    np.testing.assert_allclose(out, ref, rtol=0, atol=atol)
    # saturated at both ends (sigmoid bottoms out at exp(-clamp), a normal float, never a subnormal)
    assert out[-1] == 1.0
    assert (0.0 < out[0] < 1e-17) if name == "sigmoid" else out[0] == -1.0


def test_float32_exp_relative_error():
    from speechlstm.gates import exp_f32

    f = njit(exp_f32)
    x = np.linspace(-87, 87, 1_000_001).astype(np.float32)
    out = np.empty_like(x)
    _apply(f, x, out)
    rel = np.abs(out / np.exp(x.astype(np.float64)) - 1.0)
    assert rel.max() < 4e-7
    # clamped, never inf or zero, past the range
    big = np.array([-1e30, -500.0, 500.0, 1e30], np.float32)
    out = np.empty_like(big)
    _apply(f, big, out)
    assert np.isfinite(out).all() and (out > 0).all()


def test_float32_expm1_relative_error():
    from speechlstm.gates import expm1_f32

    f = njit(expm1_f32)
    x = np.concatenate([np.linspace(-40, 40, 1_000_000), np.geomspace(1e-30, 1, 10_001),
                        -np.geomspace(1e-30, 1, 10_001)]).astype(np.float32)
    x = x[x != 0]
    out = np.empty_like(x)
    _apply(f, x, out)
    rel = np.abs(out / np.expm1(x.astype(np.float64)) - 1.0)
    assert rel.max() < 4e-7  # no cancellation near 0, where exp(x) - 1 would lose every digit
    big = np.array([-3e38, -500.0, 500.0, 3e38], np.float32)  # clamped to ±40
    out = np.empty_like(big)
    _apply(f, big, out)
    np.testing.assert_allclose(out, np.expm1(np.array([-40.0, -40.0, 40.0, 40.0])), rtol=4e-7)


def test_float32_tanh_keeps_its_relative_precision_near_zero():
    """expm1(2x) / (expm1(2x) + 2) has no cancellation for small x (exp(2x) - 1 would lose every
    digit below ~1e-4), and no branch: relative error a few ulp down to 1e-30."""
    x = np.concatenate([np.geomspace(1e-30, 1.0, 20_001), -np.geomspace(1e-30, 1.0, 20_001)]).astype(np.float32)
    out = np.empty_like(x)
    _apply(_TANH32, x, out)
    rel = np.abs(out / np.tanh(x.astype(np.float64)) - 1.0)
    assert rel.max() < 1e-6


@njit
def _fma_kernel(a, b, c, out, plain):
    for i in range(a.size):
        out[i] = fma(a[i], b[i], c[i])
        plain[i] = a[i] * b[i] + c[i]


@pytest.mark.parametrize("dtype, bits", [(np.float32, 12), (np.float64, 27)])
def test_fma_rounds_once(dtype, bits):
    """(1 + 2^-k)^2 - (1 + 2^-(k-1)) = 2^-2k exactly, which the product rounded first loses."""
    a = np.array([1 + 2.0 ** -bits, 3.0, -2.5], dtype)
    c = np.array([-(1 + 2.0 ** -(bits - 1)), 0.5, 1.0], dtype)
    out, plain = np.empty_like(a), np.empty_like(a)
    _fma_kernel(a, a, c, out, plain)
    assert out.dtype == dtype and out[0] == dtype(2.0 ** (-2 * bits)) and plain[0] == 0.0
    assert np.array_equal(out[1:], a[1:] * a[1:] + c[1:])
