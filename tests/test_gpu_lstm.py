"""The CUDA twin against tests/naive.py.  In CI numba.cuda is its simulator (set in conftest.py) with
threads per block patched small so several blocks run; on a GPU host the same tests run for real
(pipelines/gpu_check.sh), and the requires_cuda ones add larger shapes."""
import numpy as np
import pytest

import naive
from speechlstm import DeviceError, ParameterError, config
from speechlstm.device import resolve_device, simulated


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    if simulated():
        monkeypatch.setattr(config, "CUDA_THREADS_PER_BLOCK", 8)


def _case(B, T, I, H, L, bi, seed=0):
    rng = np.random.default_rng(seed)
    W = naive.random_lstm_weights(rng, I, H, L, bi, scale=0.5, dtype=np.float32)
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    lens = rng.integers(1, T + 1, B)
    lens[0] = T
    D = 2 if bi else 1
    h0 = rng.standard_normal((L * D, B, H)).astype(np.float32)
    c0 = rng.standard_normal((L * D, B, H)).astype(np.float32)
    return W, x, lens, h0, c0


@pytest.fixture(params=["persistent", "per-step"])
def lstm_kernel(request, monkeypatch):
    """Both forward kernels: one launch per layer, and one per timestep (large hidden sizes)."""
    if request.param == "per-step":
        monkeypatch.setattr(config, "CUDA_PERSISTENT_MAX_HIDDEN", 0)
    return request.param


@pytest.mark.parametrize("bi", [False, True])
def test_gpu_forward_matches_naive(bi, lstm_kernel):
    from speechlstm.gpu_lstm import gpu_lstm_forward

    # H=6: the persistent kernel's weight loop runs four rows at a time, then the remaining two
    W, x, lens, h0, c0 = _case(3, 7, 5, 6, 2, bi)
    y, (hn, cn), cache = gpu_lstm_forward(x, W, lengths=lens, h0=h0, c0=c0)
    ry, rhn, rcn = naive.lstm_forward(x, W, lens, h0, c0)
    assert cache is None
    np.testing.assert_allclose(y, ry, atol=2e-5)
    np.testing.assert_allclose(hn, rhn, atol=2e-5)
    np.testing.assert_allclose(cn, rcn, atol=2e-5)


def test_gpu_matches_cpu_kernels_and_dense_softmax_greedy():
    from speechlstm.gpu_lstm import gpu_dense, gpu_greedy_ids, gpu_log_probs
    from speechlstm.decoding import greedy_ids
    from speechlstm.nn import AcousticModel

    rng = np.random.default_rng(1)
    m = AcousticModel(6, 5, 7, num_layers=2, bidirectional=True, seed=3).eval()
    x = rng.standard_normal((2, 9, 6)).astype(np.float32)
    lens = np.array([9, 5])
    ref, _ = m.log_probs(x, lens)
    got = gpu_log_probs(m, x, lens)
    np.testing.assert_allclose(got[0], ref[0], atol=2e-5)
    np.testing.assert_allclose(got[1, :5], ref[1, :5], atol=2e-5)
    w = rng.standard_normal((11, 6)).astype(np.float32)
    b = rng.standard_normal(11).astype(np.float32)
    np.testing.assert_allclose(gpu_dense(x, w, b), naive.dense_forward(x, w, b), atol=1e-4)
    np.testing.assert_allclose(naive.log_softmax(got[0]), got[0], atol=1e-5)
    ids = gpu_greedy_ids(ref, lens)
    assert [i.tolist() for i in ids] == [greedy_ids(ref[0]).tolist(), greedy_ids(ref[1, :5]).tolist()]


@pytest.mark.parametrize("bi", [False, True])
def test_gpu_backward_matches_naive(bi, lstm_kernel):
    """Every gradient (input, weights, biases, initial states) of the CUDA backward against the
    float64 one-step-at-a-time reference, with padding and gradients reaching the final states."""
    from speechlstm.gpu_lstm import GpuLSTMCache, gpu_lstm_backward, gpu_lstm_forward

    W, x, lens, h0, c0 = _case(3, 6, 5, 4, 2, bi, seed=2)
    D = 2 if bi else 1
    rng = np.random.default_rng(5)
    gy = rng.standard_normal((3, 6, D * 4)).astype(np.float32)
    ghn = rng.standard_normal((2 * D, 3, 4)).astype(np.float32)
    gcn = rng.standard_normal((2 * D, 3, 4)).astype(np.float32)
    y, (hn, cn), cache = gpu_lstm_forward(x, W, lengths=lens, h0=h0, c0=c0, training=True)
    assert isinstance(cache, GpuLSTMCache)
    gx, gw, (gh0, gc0) = gpu_lstm_backward(gy, cache, grad_hn=ghn, grad_cn=gcn)
    W64 = [[tuple(a.astype(np.float64) for a in wd) for wd in wl] for wl in W]
    rx, rw, rh0, rc0 = naive.lstm_backward(x, W64, gy, lens, h0, c0, ghn, gcn)
    tol = dict(atol=5e-5, rtol=1e-4)
    np.testing.assert_allclose(gx, rx, **tol)
    np.testing.assert_allclose(gh0, rh0, **tol)
    np.testing.assert_allclose(gc0, rc0, **tol)
    for l in range(2):
        for d in range(D):
            for got, ref in zip(gw[l][d], rw[l][d]):
                np.testing.assert_allclose(got, ref, **tol)
    for b in range(3):  # padding gets no input gradient
        assert not gx[b, lens[b]:].any()
    # without the input gradient: None for it, every other gradient the same
    y, _, cache = gpu_lstm_forward(x, W, lengths=lens, h0=h0, c0=c0, training=True)
    gx2, gw2, (gh02, gc02) = gpu_lstm_backward(gy, cache, grad_hn=ghn, grad_cn=gcn, input_grad=False)
    assert gx2 is None
    np.testing.assert_array_equal(gh02, gh0)
    np.testing.assert_array_equal(gc02, gc0)
    for l in range(2):
        for d in range(D):
            for got, ref in zip(gw2[l][d], gw[l][d]):
                np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("bi", [False, True])
def test_gpu_dropout_masks_match_naive(bi):
    """Dropout masks between layers, applied on the device in the one fused call: forward and every
    gradient against the float64 reference with the same masks."""
    from speechlstm.gpu_lstm import gpu_lstm_backward, gpu_lstm_forward
    from speechlstm.nn import _dropout_mask

    B, T, I, H, L = 3, 6, 5, 4, 3
    D = 2 if bi else 1
    W, x, lens, h0, c0 = _case(B, T, I, H, L, bi, seed=4)
    mrng = np.random.default_rng(9)
    masks = [_dropout_mask(mrng, (B, T, D * H), 0.4, np.dtype(np.float32)) for _ in range(L - 1)]
    rng = np.random.default_rng(6)
    gy = rng.standard_normal((B, T, D * H)).astype(np.float32)
    ghn, gcn = rng.standard_normal((2, L * D, B, H)).astype(np.float32)
    y, (hn, cn), cache = gpu_lstm_forward(x, W, lengths=lens, h0=h0, c0=c0, training=True, masks=masks)
    W64 = [[tuple(a.astype(np.float64) for a in wd) for wd in wl] for wl in W]
    m64 = [m.astype(np.float64) for m in masks]
    ry, rhn, rcn = naive.lstm_forward(x, W64, lens, h0, c0, masks=m64)
    tol = dict(atol=5e-5, rtol=1e-4)
    np.testing.assert_allclose(y, ry, **tol)
    np.testing.assert_allclose(hn, rhn, **tol)
    np.testing.assert_allclose(cn, rcn, **tol)
    gx, gw, (gh0, gc0) = gpu_lstm_backward(gy, cache, grad_hn=ghn, grad_cn=gcn)
    rx, rw, rh0, rc0 = naive.lstm_backward(x, W64, gy, lens, h0, c0, ghn, gcn, masks=m64)
    np.testing.assert_allclose(gx, rx, **tol)
    np.testing.assert_allclose(gh0, rh0, **tol)
    np.testing.assert_allclose(gc0, rc0, **tol)
    for l in range(L):
        for d in range(D):
            for got, ref in zip(gw[l][d], rw[l][d]):
                np.testing.assert_allclose(got, ref, **tol)
    with pytest.raises(ParameterError, match="masks must be a list of 2 arrays"):
        gpu_lstm_forward(x, W, training=True, masks=masks[:1])
    with pytest.raises(ParameterError, match=r"masks\[1\] must have shape"):
        gpu_lstm_forward(x, W, training=True, masks=[masks[0], masks[1][:, :2]])
    with pytest.raises(ParameterError, match="training only"):
        gpu_lstm_forward(x, W, masks=masks)


def test_gpu_gemm_all_transposes():
    from numba import cuda

    from speechlstm.gpu_lstm import _gemm

    rng = np.random.default_rng(3)
    for (M, K, N), ta, tb in [((19, 23, 17), False, False), ((19, 23, 17), True, False),
                              ((19, 23, 17), False, True), ((19, 23, 17), True, True),
                              ((70, 37, 67), False, True), ((70, 37, 67), True, False)]:
        # not multiples of the tile; the last two span several blocks along M and N
        a = rng.standard_normal((M, K)).astype(np.float32)
        b = rng.standard_normal((K, N)).astype(np.float32)
        bias = rng.standard_normal(N).astype(np.float32)
        A = np.ascontiguousarray(a.T) if ta else a
        B = np.ascontiguousarray(b.T) if tb else b
        C = cuda.device_array((M, N), np.float32)
        _gemm(cuda.to_device(A), cuda.to_device(B), cuda.to_device(bias), C, ta=ta, tb=tb)
        np.testing.assert_allclose(C.copy_to_host(), a @ b + bias, atol=1e-4)
        # op(A) as a block of a wider array's columns (a_col0), with junk on both sides
        col0, extra = 5, 3
        wide = rng.standard_normal((A.shape[0], col0 + A.shape[1] + extra)).astype(np.float32)
        wide[:, col0:col0 + A.shape[1]] = A
        C2 = cuda.device_array((M, N), np.float32)
        _gemm(cuda.to_device(wide), cuda.to_device(B), cuda.to_device(bias), C2, ta=ta, tb=tb, a_col0=col0)
        np.testing.assert_allclose(C2.copy_to_host(), a @ b + bias, atol=1e-4)


def test_gpu_validation():
    from speechlstm.gpu_lstm import gpu_lstm_backward, gpu_lstm_forward

    W, x, lens, h0, c0 = _case(2, 3, 4, 3, 1, False)
    with pytest.raises(ParameterError, match="lengths"):
        gpu_lstm_forward(x, W, lengths=np.array([4, 1]))
    with pytest.raises(ParameterError, match="needs the cache"):
        gpu_lstm_backward(np.zeros((2, 3, 3), np.float32), None)
    _, _, cache = gpu_lstm_forward(x, W, training=True)
    with pytest.raises(ParameterError, match="grad_y must have shape"):
        gpu_lstm_backward(np.zeros((2, 3, 4), np.float32), cache)


def test_device_resolution():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in ("cpu", "cuda")
    if simulated():
        assert resolve_device("auto") == "cpu"  # the simulator is never picked automatically
    with pytest.raises(ParameterError, match="device must be"):
        resolve_device("tpu")


def test_cuda_requested_without_gpu_is_a_clear_error(monkeypatch):
    import speechlstm.device as dev

    monkeypatch.setattr(dev, "cuda_available", lambda: False)
    with pytest.raises(DeviceError, match="no CUDA GPU"):
        resolve_device("cuda")
    from click.testing import CliRunner

    from speechlstm.cli import main

    r = CliRunner().invoke(main, ["transcribe", "x.wav", "--device", "cuda"])
    assert r.exit_code == 1 and "no CUDA GPU is available" in r.output


def test_model_transcribe_on_cuda_equals_cpu(tmp_path):
    """Model.log_probs/transcribe through the CUDA path equal the CPU path (a tiny model keeps the
    simulator quick)."""
    from speechlstm import FeatureConfig, load_model
    from speechlstm.alphabet import Alphabet
    from speechlstm.model import save_model
    from speechlstm.nn import AcousticModel

    from conftest import tone

    fc = FeatureConfig(cmvn="utterance")
    am = AcousticModel(fc.dim, 3, 29, num_layers=1, bidirectional=True, seed=0)
    path = save_model(str(tmp_path / "tiny.npz"), am, features=fc, alphabet=Alphabet())
    y = tone(0.25)
    cpu = load_model(path)
    gpu = load_model(path, device="cuda")
    assert gpu.device == "cuda"
    lp_c, _ = cpu.log_probs(y)
    lp_g, _ = gpu.log_probs(y)
    np.testing.assert_allclose(lp_g, lp_c, atol=1e-4)
    assert gpu.transcribe(y, words=[])["text"] == cpu.transcribe(y, words=[])["text"]
    # an ensemble runs each network on the device too
    am2 = AcousticModel(fc.dim, 4, 29, num_layers=1, bidirectional=True, seed=1)
    pair = save_model(str(tmp_path / "pair.npz"), [am, am2], features=fc, alphabet=Alphabet())
    lp_c, _ = load_model(pair).log_probs(y)
    lp_g, _ = load_model(pair, device="cuda").log_probs(y)
    np.testing.assert_allclose(lp_g, lp_c, atol=1e-4)
    r_c = load_model(pair).classify(y, words=["go", "no"])
    r_g = load_model(pair, device="cuda").classify(y, words=["go", "no"])
    assert r_g["label"] == r_c["label"]
    for s_c, s_g in zip(r_c["scores"], r_g["scores"]):
        assert s_g["text"] == s_c["text"] and s_g["log_likelihood"] == pytest.approx(s_c["log_likelihood"], abs=1e-2)


@pytest.mark.requires_cuda
def test_real_gpu_large_batch(lstm_kernel):
    from speechlstm.gpu_lstm import gpu_lstm_forward
    from speechlstm.lstm import lstm_forward

    assert not simulated(), "requires_cuda tests must run on a real GPU"
    W, x, lens, h0, c0 = _case(64, 120, 117, 128, 3, True)
    y, (hn, _), _ = gpu_lstm_forward(x, W, lengths=lens)
    ry, (rhn, _), _ = lstm_forward(x, W, lengths=lens)
    np.testing.assert_allclose(y, ry, atol=1e-4)
    np.testing.assert_allclose(hn, rhn, atol=1e-4)


@pytest.mark.requires_cuda
def test_real_gpu_backward_large_batch(lstm_kernel):
    from speechlstm.gpu_lstm import gpu_lstm_backward, gpu_lstm_forward
    from speechlstm.lstm import lstm_backward, lstm_forward

    assert not simulated(), "requires_cuda tests must run on a real GPU"
    W, x, lens, h0, c0 = _case(32, 100, 117, 128, 2, True, seed=4)
    gy = np.random.default_rng(6).standard_normal((32, 100, 256)).astype(np.float32)
    _, _, gcache = gpu_lstm_forward(x, W, lengths=lens, h0=h0, c0=c0, training=True)
    _, _, ccache = lstm_forward(x, W, lengths=lens, h0=h0, c0=c0, training=True)
    gx, gw, (gh0, gc0) = gpu_lstm_backward(gy, gcache)
    rx, rw, (rh0, rc0) = lstm_backward(gy, ccache)
    np.testing.assert_allclose(gx, rx, atol=2e-3, rtol=1e-3)
    np.testing.assert_allclose(gh0, rh0, atol=2e-3, rtol=1e-3)
    for l in range(2):
        for d in range(2):
            for got, ref in zip(gw[l][d], rw[l][d]):
                np.testing.assert_allclose(got, ref, atol=2e-2, rtol=2e-3)
