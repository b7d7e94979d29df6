import numpy as np
import pytest

import naive
from speechlstm import ParameterError
from speechlstm.lstm import Workspace, lstm_backward, lstm_forward
from speechlstm.nn import LSTM

CASES = [  # B, T, I, H, layers, bidirectional
    (1, 1, 3, 2, 1, False),
    (3, 7, 5, 4, 1, True),
    (4, 9, 6, 5, 2, False),
    (5, 6, 4, 3, 3, True),
]


def _inputs(rng, B, T, I, H, L, bi, dtype):
    D = 2 if bi else 1
    W = naive.random_lstm_weights(rng, I, H, L, bi, scale=0.6, dtype=dtype)
    x = rng.standard_normal((B, T, I)).astype(dtype)
    lens = rng.integers(1, T + 1, B)
    lens[0] = T
    h0 = rng.standard_normal((L * D, B, H)).astype(dtype)
    c0 = rng.standard_normal((L * D, B, H)).astype(dtype)
    return W, x, lens, h0, c0


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 2e-5)])
def test_forward_matches_naive(case, dtype, tol, blas):
    rng = np.random.default_rng(1)
    W, x, lens, h0, c0 = _inputs(rng, *case, dtype)
    y, (hn, cn), _ = lstm_forward(x, W, lengths=lens, h0=h0, c0=c0)
    ry, rhn, rcn = naive.lstm_forward(x, W, lens, h0, c0)
    assert y.dtype == dtype
    np.testing.assert_allclose(y, ry, atol=tol, rtol=tol)
    np.testing.assert_allclose(hn, rhn, atol=tol, rtol=tol)
    np.testing.assert_allclose(cn, rcn, atol=tol, rtol=tol)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-9), (np.float32, 1e-4)])
def test_backward_matches_naive(case, dtype, tol, blas):
    rng = np.random.default_rng(2)
    W, x, lens, h0, c0 = _inputs(rng, *case, dtype)
    y, (hn, cn), cache = lstm_forward(x, W, lengths=lens, h0=h0, c0=c0, training=True)
    gy = rng.standard_normal(y.shape).astype(dtype)
    ghn = rng.standard_normal(hn.shape).astype(dtype)
    gcn = rng.standard_normal(cn.shape).astype(dtype)
    gx, gw, (gh0, gc0) = lstm_backward(gy, cache, grad_hn=ghn, grad_cn=gcn)
    rx, rw, rh0, rc0 = naive.lstm_backward(x, W, gy, lens, h0, c0, ghn, gcn)
    np.testing.assert_allclose(gx, rx, atol=tol, rtol=tol)
    np.testing.assert_allclose(gh0, rh0, atol=tol, rtol=tol)
    np.testing.assert_allclose(gc0, rc0, atol=tol, rtol=tol)
    for l in range(len(W)):
        for d in range(len(W[0])):
            for ours, ref in zip(gw[l][d], rw[l][d]):
                np.testing.assert_allclose(ours, ref, atol=tol * 10, rtol=tol)


def test_naive_backward_against_finite_differences():
    """The oracle itself is checked numerically (central differences, float64)."""
    rng = np.random.default_rng(3)
    W, x, lens, h0, c0 = _inputs(rng, 2, 4, 3, 2, 2, True, np.float64)
    gy = rng.standard_normal((2, 4, 4))

    def loss(x_, W_, h0_):
        y, hn, cn = naive.lstm_forward(x_, W_, lens, h0_, c0)
        return float(np.sum(y * gy) + 0.5 * np.sum(hn) + 0.25 * np.sum(cn))

    rx, rw, rh0, _ = naive.lstm_backward(x, W, gy, lens, h0, c0, 0.5 * np.ones_like(h0), 0.25 * np.ones_like(c0))
    eps = 1e-6
    for idx in [(0, 0, 0), (1, 1, 2), (0, 3, 1)]:
        xp, xm = x.copy(), x.copy()
        xp[idx] += eps
        xm[idx] -= eps
        assert (loss(xp, W, h0) - loss(xm, W, h0)) / (2 * eps) == pytest.approx(rx[idx], abs=1e-6)
    for l, d, k, idx in [(0, 0, 0, (1, 2)), (1, 1, 1, (3, 0)), (0, 1, 2, (5,)), (1, 0, 3, (2,))]:
        def with_w(delta):
            W2 = [[list(t) for t in layer] for layer in W]
            W2[l][d][k] = W2[l][d][k].copy()
            W2[l][d][k][idx] += delta
            return loss(x, W2, h0)
        assert (with_w(eps) - with_w(-eps)) / (2 * eps) == pytest.approx(rw[l][d][k][idx], abs=1e-6)
    hp, hm = h0.copy(), h0.copy()
    hp[2, 1, 0] += eps
    hm[2, 1, 0] -= eps
    assert (loss(x, W, hp) - loss(x, W, hm)) / (2 * eps) == pytest.approx(rh0[2, 1, 0], abs=1e-6)


@pytest.mark.parametrize("bi", [False, True])
def test_padding_never_leaks(bi, blas):
    rng = np.random.default_rng(4)
    W, x, lens, h0, c0 = _inputs(rng, 4, 10, 3, 4, 2, bi, np.float32)
    lens = np.array([10, 3, 7, 1])
    y, (hn, cn), cache = lstm_forward(x, W, lengths=lens, h0=h0, c0=c0, training=True)
    x2 = x.copy()
    for b, L in enumerate(lens):
        x2[b, L:] = 1e3 * rng.standard_normal((10 - L, 3))
    y2, (hn2, cn2), cache2 = lstm_forward(x2, W, lengths=lens, h0=h0, c0=c0, training=True)
    assert np.array_equal(y, y2) and np.array_equal(hn, hn2) and np.array_equal(cn, cn2)
    for b, L in enumerate(lens):
        assert not y[b, L:].any()
    # each sequence alone (no padding at all) gives the same result
    for b, L in enumerate(lens):
        yb, (hb, cb), _ = lstm_forward(x[b:b + 1, :L], W, h0=h0[:, b:b + 1], c0=c0[:, b:b + 1])
        np.testing.assert_allclose(yb[0], y[b, :L], atol=1e-6)
        np.testing.assert_allclose(hb[:, 0], hn[:, b], atol=1e-6)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    gx, gw, _ = lstm_backward(gy, cache)
    gy2 = gy.copy()
    for b, L in enumerate(lens):
        gy2[b, L:] = 77.0  # gradients arriving at padding are ignored
    gx2, gw2, _ = lstm_backward(gy2, cache2)
    assert np.array_equal(gx, gx2)
    for b, L in enumerate(lens):
        assert not gx[b, L:].any()


@pytest.mark.parametrize("bi", [False, True])
def test_workspace_reuse_equals_fresh_arrays(bi, blas):
    """Reused (dirty) scratch gives bit-identical results, padding included, whatever the order
    of shapes; an inference call between a training forward and its backward leaves the cache intact."""
    rng = np.random.default_rng(8)
    ws = Workspace()
    shapes = [(3, 12, 12), (5, 7, 1), (2, 12, 3)]  # B, T, shortest length: grow, shrink with padding
    W, *_ = _inputs(rng, 1, 1, 5, 6, 3, bi, np.float32)
    for B, T, min_len in shapes:
        x = (rng.standard_normal((B, T, 5)) * 3).astype(np.float32)
        lens = rng.integers(min_len, T + 1, B)
        lens[-1] = 0 if B > 2 else lens[-1]
        ref_y, ref_state, ref_cache = lstm_forward(x, W, lengths=lens, training=True)
        y, state, cache = lstm_forward(x, W, lengths=lens, training=True, workspace=ws)
        # an inference pass with the same workspace in between must not touch the training cache
        y_eval, _, _ = lstm_forward(x[::-1].copy(), W, lengths=lens[::-1].copy(), workspace=ws)
        assert np.array_equal(y, ref_y) and all(np.array_equal(a, b) for a, b in zip(state, ref_state))
        gy = rng.standard_normal(y.shape).astype(np.float32)
        ref = lstm_backward(gy, ref_cache)
        got = lstm_backward(gy, cache, workspace=ws)
        assert np.array_equal(got[0], ref[0])
        for lw, lr in zip(got[1], ref[1]):
            for dw, dr in zip(lw, lr):
                for a, b in zip(dw, dr):
                    assert np.array_equal(a, b)
        assert all(np.array_equal(a, b) for a, b in zip(got[2], ref[2]))
        ref_eval, _, _ = lstm_forward(x[::-1].copy(), W, lengths=lens[::-1].copy())
        assert np.array_equal(y_eval, ref_eval)
    # the buffers were really reused (same memory, any shape that fits)
    assert np.shares_memory(ws.array("gx", (4,), np.float32), ws.array("gx", (2, 2), np.float32))


def test_backward_without_input_grad():
    rng = np.random.default_rng(9)
    layer = LSTM(5, 4, num_layers=2, bidirectional=True, seed=1)
    x = rng.standard_normal((3, 6, 5)).astype(np.float32)
    gy = rng.standard_normal((3, 6, 8)).astype(np.float32)
    layer.forward(x, lengths=[6, 2, 4])
    gx = layer.backward(gy)
    full = {k: v.copy() for k, v in layer.grads.items()}
    state = layer.grad_state
    layer.zero_grad()
    layer.forward(x, lengths=[6, 2, 4])
    assert gx is not None and layer.backward(gy, input_grad=False) is None
    for k, v in full.items():
        assert np.array_equal(layer.grads[k], v), k
    assert all(np.array_equal(a, b) for a, b in zip(layer.grad_state, state))


def test_streaming_equals_whole(blas):
    rng = np.random.default_rng(5)
    layer = LSTM(6, 8, num_layers=2, seed=0).eval()
    x = rng.standard_normal((2, 50, 6)).astype(np.float32)
    y, (hn, cn) = layer.forward(x)
    run = layer.stream()
    parts = []
    for s, e in [(0, 1), (1, 17), (17, 18), (18, 50)]:
        parts.append(run(x[:, s:e]))
    np.testing.assert_allclose(np.concatenate(parts, axis=1), y, atol=1e-6)
    np.testing.assert_allclose(run.state[0], hn, atol=1e-6)
    with pytest.raises(ParameterError, match="bidirectional"):
        LSTM(3, 4, bidirectional=True).stream()


@pytest.mark.parametrize("bi", [False, True])
def test_long_and_huge_inputs_stay_finite(bi):
    rng = np.random.default_rng(6)
    layer = LSTM(4, 8, num_layers=2, bidirectional=bi, seed=1)
    x = (rng.standard_normal((2, 10000, 4)) * 1e4).astype(np.float32)
    x[0, 5000] = 3e38
    x[1, 10] = -3e38
    y, (hn, cn) = layer.forward(x)
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(hn)) and np.all(np.isfinite(cn))
    assert np.abs(y).max() <= 1.0
    gx = layer.backward(np.ones_like(y))
    assert np.all(np.isfinite(gx)) and all(np.all(np.isfinite(g)) for g in layer.grads.values())


def test_validation_messages():
    layer = LSTM(3, 4)
    with pytest.raises(ParameterError, match=r"\[B, T, 3\]"):
        layer.forward(np.zeros((2, 5, 4), np.float32))
    with pytest.raises(ParameterError, match="lengths must lie in"):
        layer.forward(np.zeros((2, 5, 3), np.float32), lengths=np.array([6, 1]))
    with pytest.raises(ParameterError, match="h0 must have shape"):
        layer.forward(np.zeros((2, 5, 3), np.float32), state=(np.zeros((1, 3, 4)), np.zeros((1, 2, 4))))
    with pytest.raises(ParameterError, match="NaN"):
        layer.forward(np.full((1, 2, 3), np.nan, np.float32))
    with pytest.raises(ParameterError, match="missing"):
        layer.load_state_dict({})
    with pytest.raises(ParameterError, match="hidden_size"):
        LSTM(3, 0)


def test_zero_length_sequence_keeps_initial_state():
    layer = LSTM(2, 3, bidirectional=True, seed=0)
    h0 = np.ones((2, 2, 3), np.float32)
    y, (hn, cn) = layer.forward(np.ones((2, 4, 2), np.float32), lengths=np.array([0, 4]), state=(h0, h0 * 2))
    assert np.array_equal(hn[:, 0], h0[:, 0]) and np.array_equal(cn[:, 0], 2 * h0[:, 0])
    assert not y[0].any()


def test_wide_vectors_marks_the_function():
    """The intrinsic that lets the gate loops use 512-bit vectors falls back silently if llvmlite
    ever refuses it; this notices that (and that the mark reaches the compiled function)."""
    from numba import njit

    from speechlstm import config
    from speechlstm.lstm import _wide_vectors

    @njit
    def f(a):
        _wide_vectors()
        for i in range(a.size):
            a[i] = a[i] * 2.0
        return a

    f(np.ones(4, np.float32))
    ir = f.inspect_llvm(f.signatures[0])
    bits = config.CPU_VECTOR_BITS
    assert f'"prefer-vector-width"="{bits}"' in ir and f'"min-legal-vector-width"="{bits}"' in ir


@pytest.mark.parametrize("bi", [False, True])
def test_same_inputs_give_bit_identical_results_wherever_the_arrays_lie(bi, blas):
    """The same call, repeated with the heap shuffled between calls (so outputs and scratch land at
    other addresses, sometimes right next to each other), returns the same bits every time.
    LLVM guards each vectorized gate loop with run-time overlap checks and falls back to its scalar
    copy when arrays lie close; with FMA contraction allowed the two copies fused different
    products, so results moved by an ulp with the memory layout (a training run did not repeat
    itself bit for bit across processes)."""
    rng = np.random.default_rng(11)
    B, T, I, H, L = 8, 15, 20, 64, 2
    W, x, lens, h0, c0 = _inputs(rng, B, T, I, H, L, bi, np.float32)
    lens[:] = rng.integers(T - 2, T + 1, B)
    gy = rng.standard_normal((B, T, (2 if bi else 1) * H)).astype(np.float32)
    keep, ref = [], None
    for _ in range(150):
        keep.append(np.empty(int(rng.integers(1, 30000)), np.float32))  # move the next allocations
        if len(keep) > 5:
            keep.pop(int(rng.integers(0, 5)))
        y, state, cache = lstm_forward(x, W, lengths=lens, h0=h0, c0=c0, training=True)
        y_eval = lstm_forward(x, W, lengths=lens, h0=h0, c0=c0)[0]
        gx, gw, gs = lstm_backward(gy, cache)
        got = [y, y_eval, *state, gx, *[g for lw in gw for dw in lw for g in dw], *gs]
        if ref is None:
            ref = [a.copy() for a in got]
            assert np.array_equal(y, y_eval)  # the training forward's loop (which also saves gates) alike
        assert all(np.array_equal(a, b) for a, b in zip(got, ref))
