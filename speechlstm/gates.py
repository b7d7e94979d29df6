"""Scalar activation math for the LSTM gates, written once and compiled for the CPU (``lstm.py``) and CUDA (``gpu_lstm.py``).

The activations are branch-free, so LLVM vectorizes the fused gate loops (no SVML needed):
``exp`` is a degree-12 Taylor polynomial of x/64 raised to the 64th power by six squarings, in
float64 whatever the storage type, with arguments clamped to ±40 (relative error < 1e-10, no
overflow, so no NaN/inf for any finite input).  ``tanh`` returns x itself for |x| < 1e-4.
"""
EXP_CLAMP = 40.0  # |argument| limit of the exponential; sigmoid/tanh are saturated far before


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


def compile_gates(jit):
    """Compile the three functions with ``jit`` (``numba.njit`` or ``numba.cuda.jit(device=True)``).

    Returns ``(exp_clamped, sigmoid, tanh)``, each calling the compiled ``exp_clamped``.
    """
    exp_c = jit(exp_clamped)

    def sigmoid_(x):
        return 1.0 / (1.0 + exp_c(-x))

    def tanh_(x):
        e = exp_c(2.0 * x)
        t = (e - 1.0) / (e + 1.0)
        return x if abs(x) < 1e-4 else t

    return exp_c, jit(sigmoid_), jit(tanh_)
