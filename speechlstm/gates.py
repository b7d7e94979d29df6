"""Scalar activation math for the LSTM gates, written once and compiled for the CPU (``lstm.py``) and CUDA (``gpu_lstm.py``).

The activations are branch-free, so LLVM vectorizes the fused gate loops (no SVML needed).

* float64 (and the CUDA kernels, whatever the storage type): ``exp`` is a degree-12 Taylor
  polynomial of x/64 raised to the 64th power by six squarings, with arguments clamped to ±40
  (relative error < 1e-10, no overflow, so no NaN/inf for any finite input).
* float32 on the CPU (``compile_gates(jit, "float32")``): every operation stays in float32, so
  a vector register holds twice the lanes and the divisions are cheap.  ``exp`` reduces the argument by
  multiples of ln 2 (Cody-Waite, two-part constant), evaluates a degree-6 polynomial on
  |r| <= ln2/2 and scales by 2**n built from the exponent bits, every step an explicit fused
  multiply-add (:func:`fma`); arguments are clamped to ±87, so
  2**n stays a normal float.  Relative error < 4e-7 (about 3 ulp) over the whole range.

float64 ``tanh`` returns x itself for |x| < 1e-4 ((e - 1) / (e + 1) cancels there); float32 ``tanh``
is expm1(2x) / (expm1(2x) + 2) with expm1 from the same reduction and polynomial (argument clamped
to ±40, where tanh is ±1 in float32): no cancellation near 0, so a few ulp at any size and no
branch — the select the small-argument case needed cost the vectorized gate loop ~10 %.
"""
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

EXP_CLAMP = 40.0  # |argument| limit of the float64 exponential; sigmoid/tanh are saturated far before
EXP_CLAMP_F32 = 87.0  # |argument| limit of the float32 exponential: exp(±87) and 2**n stay normal floats
EXPM1_CLAMP_F32 = 40.0  # |argument| limit of the float32 expm1 (tanh): tanh(20) is 1 in float32


def exp_clamped(z):
    """exp(z) for z clamped to [-40, 40], relative error < 1e-10."""
    # clamp with selects, not min/max: numba.cuda types the builtins through an overload that
    # needs a live GPU context, and this way every kernel also compiles to PTX on a GPU-less host
    z = (-EXP_CLAMP if z < -EXP_CLAMP else (EXP_CLAMP if z > EXP_CLAMP else z)) * 0.015625  # / 64
    p = 2.08767569878681e-09  # 1/12!
    p = p * z + 2.505210838544172e-08  # 1/11!
    p = p * z + 2.755731922398589e-07
    p = p * z + 2.755731922398589e-06
    p = p * z + 2.48015873015873e-05
    p = p * z + 0.0001984126984126984
    p = p * z + 0.001388888888888889
    p = p * z + 0.008333333333333333
    p = p * z + 0.041666666666666664
    p = p * z + 0.16666666666666666
    p = p * z + 0.5
    p = p * z + 1.0
    p = p * z + 1.0
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    return p * p


_f32 = np.float32


@intrinsic
def fma(typingctx, a, b, c):
    """a * b + c rounded once (``llvm.fma``), for three float32 or three float64 values, in CPU
    kernels.  Those compile without FMA contraction: LLVM contracted a vectorized loop's body and the
    scalar copy it falls back to (when arrays lie close in memory) differently, so results moved with
    the memory layout.  An explicit fma is the same instruction in both, and keeps most of the speed."""
    if not (a == b == c and a in (types.float32, types.float64)):
        return None

    def codegen(context, builder, signature, args):
        t = context.get_value_type(signature.return_type)
        fn = builder.module.declare_intrinsic("llvm.fma", [t], ir.FunctionType(t, [t, t, t]))
        return builder.call(fn, args)

    return a(a, a, a), codegen


@njit(inline="always")  # inlined into its callers' IR, so it compiles under their options
def _exp_parts_f32(z, clamp):
    """(q, 2**n) with exp(z) = 2**n * (1 + q), for z clamped to [-clamp, clamp] (float32 throughout)."""
    z = -clamp if z < -clamp else (clamp if z > clamp else z)
    n = np.floor(fma(z, _f32(1.4426950408889634), _f32(0.5)))  # round(z / ln 2)
    r = fma(-n, _f32(0.693359375), z)  # ln 2 = 0.693359375 - 2.12194440e-4 (first part exact in float32)
    r = fma(-n, _f32(-2.12194440e-4), r)
    p = _f32(1.9875691500e-4)  # minimax coefficients of (exp(r) - 1 - r) / r**2 (Cephes expf)
    p = fma(p, r, _f32(1.3981999507e-3))
    p = fma(p, r, _f32(8.3334519073e-3))
    p = fma(p, r, _f32(4.1665795894e-2))
    p = fma(p, r, _f32(1.6666665459e-1))
    p = fma(p, r, _f32(5.0000001201e-1))
    q = fma(p * r, r, r)  # exp(r) - 1, with no cancellation near r = 0
    scale = np.int32((np.int32(n) + np.int32(127)) << np.int32(23))  # the bits of 2**n
    return q, scale.view(np.float32)


def exp_f32(z):
    """exp(z) in float32 arithmetic for z clamped to [-87, 87], relative error < 4e-7."""
    q, scale = _exp_parts_f32(z, _f32(EXP_CLAMP_F32))
    return fma(q, scale, scale)


def expm1_f32(z):
    """exp(z) - 1 in float32 arithmetic for z clamped to [-40, 40], relative error < 4e-7:
    2**n * q + (2**n - 1), where 2**n - 1 is exact and, for n != 0, at least 1/2."""
    q, scale = _exp_parts_f32(z, _f32(EXPM1_CLAMP_F32))
    return fma(scale, q, scale - _f32(1.0))


def compile_gates(jit, precision: str = "float64"):
    """Compile exp, sigmoid and tanh with ``jit`` (``numba.njit`` or ``numba.cuda.jit(device=True)``).

    ``precision="float64"`` (what the CUDA kernels and float64 models use) builds them on
    :func:`exp_clamped`; ``"float32"`` (CPU only, float32 arguments) on :func:`exp_f32` and
    :func:`expm1_f32`, with every constant a float32 so nothing widens.
    Returns ``(exp, sigmoid, tanh)``.
    """
    if precision == "float32":
        exp_c, one = jit(exp_f32), _f32(1.0)
        expm1_c, two = jit(expm1_f32), _f32(2.0)

        def tanh_(x):
            m = expm1_c(x + x)
            return m / (m + two)
    elif precision == "float64":
        exp_c, one, small = jit(exp_clamped), 1.0, 1e-4

        def tanh_(x):
            e = exp_c(x + x)
            t = (e - one) / (e + one)
            return x if abs(x) < small else t
    else:
        raise ValueError(f"precision must be 'float32' or 'float64', got {precision!r}")

    def sigmoid_(x):
        return one / (one + exp_c(-x))

    return exp_c, jit(sigmoid_), jit(tanh_)
