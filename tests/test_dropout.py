"""Dropout between LSTM layers (PyTorch's ``nn.LSTM(dropout=...)``) and before the acoustic model's
Dense layer: the layer-by-layer training path against tests/naive.py with the same masks."""
import numpy as np
import pytest

import naive
from speechlstm import ParameterError, lstm as _lstm
from speechlstm.nn import LSTM, AcousticModel, _dropout_mask


def _masks(seed, p, shape, n):
    rng = np.random.default_rng(seed)
    return [_dropout_mask(rng, shape, p, np.dtype(np.float64)) for _ in range(n)]


@pytest.mark.parametrize("bi", [False, True])
def test_lstm_dropout_forward_and_backward_match_naive(bi):
    B, T, I, H, L, p = 3, 6, 4, 5, 3, 0.4
    D = 2 if bi else 1
    rng = np.random.default_rng(0)
    m = LSTM(I, H, num_layers=L, bidirectional=bi, dtype=np.float64, seed=1, dropout=p)
    x = rng.standard_normal((B, T, I))
    lens = np.array([6, 2, 4])
    h0, c0 = rng.standard_normal((2, L * D, B, H)) * 0.5
    gy = rng.standard_normal((B, T, D * H))
    ghn, gcn = rng.standard_normal((2, L * D, B, H))
    m.dropout_rng = np.random.default_rng(7)
    y, (hn, cn) = m.forward(x, lens, (h0, c0))
    masks = _masks(7, p, (B, T, D * H), L - 1)  # drawn from dropout_rng in layer order
    assert all(0.2 < (mk == 0).mean() < 0.6 for mk in masks)
    w = m.weights()
    ry, rhn, rcn = naive.lstm_forward(x, w, lens, h0, c0, masks=masks)
    np.testing.assert_allclose(y, ry, atol=1e-12)
    np.testing.assert_allclose(hn, rhn, atol=1e-12)
    np.testing.assert_allclose(cn, rcn, atol=1e-12)
    m.zero_grad()
    gx = m.backward(gy, (ghn, gcn))
    rgx, rgrads, rgh0, rgc0 = naive.lstm_backward(x, w, gy, lens, h0, c0, ghn, gcn, masks=masks)
    np.testing.assert_allclose(gx, rgx, atol=1e-10)
    np.testing.assert_allclose(m.grad_state[0], rgh0, atol=1e-10)
    np.testing.assert_allclose(m.grad_state[1], rgc0, atol=1e-10)
    for l in range(L):
        for d in range(D):
            for name, g in zip(m._names(l, d), rgrads[l][d]):
                np.testing.assert_allclose(m.grads[name], g, atol=1e-10, err_msg=name)


def test_dropout_masks_scale_and_rate():
    mk = _dropout_mask(np.random.default_rng(0), (200, 1000), 0.3, np.dtype(np.float32))
    assert mk.dtype == np.float32
    assert abs((mk == 0).mean() - 0.3) < 0.005
    np.testing.assert_allclose(np.unique(mk), [0.0, 1 / 0.7], rtol=1e-6)


def test_dropout_leaves_inference_and_zero_rate_alone():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 7, 3)).astype(np.float32)
    plain = LSTM(3, 4, num_layers=2, bidirectional=True, seed=3)
    drop = LSTM(3, 4, num_layers=2, bidirectional=True, seed=3, dropout=0.5)
    for m in (plain, drop):
        m.eval()
    np.testing.assert_array_equal(drop.forward(x)[0], plain.forward(x)[0])
    plain.train()
    plain.forward(x)
    assert plain._cache.masks is None  # no dropout: no masks
    drop.train()
    y1 = drop.forward(x)[0]
    y2 = drop.forward(x)[0]
    assert not np.array_equal(y1, y2)  # fresh masks on every training call


def test_masked_path_equals_plain_path_when_nothing_is_dropped():
    """A rate so small that nothing is dropped (masks all 1/(1-1e-12)): the masked path gives the
    plain path's outputs, states and gradients (float32, CPU workspaces)."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 9, 5)).astype(np.float32)
    lens = np.array([9, 4, 7])
    gy = rng.standard_normal((3, 9, 8)).astype(np.float32)
    a = LSTM(5, 4, num_layers=3, bidirectional=True, seed=2)
    b = LSTM(5, 4, num_layers=3, bidirectional=True, seed=2, dropout=1e-12)
    out = []
    for m in (a, b):
        m.train()
        m.zero_grad()
        y, (hn, cn) = m.forward(x, lens)
        gx = m.backward(gy)
        out.append((y, hn, cn, gx, {k: v.copy() for k, v in m.grads.items()}))
    for u, v in zip(out[0][:4], out[1][:4]):
        np.testing.assert_allclose(v, u, atol=1e-5)
    for k in out[0][4]:
        np.testing.assert_allclose(out[1][4][k], out[0][4][k], atol=1e-5, err_msg=k)


def test_acoustic_model_dropout_gradients_by_finite_differences():
    m = AcousticModel(4, 3, 5, num_layers=2, bidirectional=True, dtype=np.float64, seed=0, dropout=0.3)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 5, 4))
    lens = np.array([5, 3])
    gz = rng.standard_normal((2, 5, 5))

    def loss():
        m.dropout_rng = np.random.default_rng(11)  # the same masks every call
        z, _ = m.forward(x, lens)
        return float((z * gz).sum())

    m.train()
    m.zero_grad()
    loss()
    m.backward(gz, input_grad=False)
    assert m._mask is not None and (m._mask == 0).any()  # the top layer's output was dropped too
    eps = 1e-6
    for k, p in m.params.items():
        for idx in [tuple(int(i) for i in np.unravel_index(j, p.shape)) for j in (0, p.size // 2, p.size - 1)]:
            old = p[idx]
            p[idx] = old + eps
            up = loss()
            p[idx] = old - eps
            down = loss()
            p[idx] = old
            assert abs((up - down) / (2 * eps) - m.grads[k][idx]) < 1e-6, (k, idx)


@pytest.mark.parametrize("bad", [-0.1, 1.0, True, "0.2", None])
def test_dropout_validation(bad):
    with pytest.raises(ParameterError, match=r"dropout must be a number in \[0, 1\)"):
        LSTM(3, 4, num_layers=2, dropout=bad)


def test_lstm_forward_masks_validation():
    rng = np.random.default_rng(0)
    m = LSTM(3, 4, num_layers=3, bidirectional=True, seed=0)
    x = rng.standard_normal((2, 5, 3)).astype(np.float32)
    ok = [np.ones((2, 5, 8), np.float32)] * 2
    y, _, cache = _lstm.lstm_forward(x, m.weights(), training=True, masks=ok)
    assert len(cache.masks) == 2
    np.testing.assert_array_equal(y, _lstm.lstm_forward(x, m.weights(), training=True)[0])  # ones change nothing
    with pytest.raises(ParameterError, match="masks must be a list of 2 arrays .*got 1 arrays"):
        _lstm.lstm_forward(x, m.weights(), training=True, masks=ok[:1])
    with pytest.raises(ParameterError, match=r"masks\[0\] must have shape \(2, 5, 8\), got \(2, 5, 4\)"):
        _lstm.lstm_forward(x, m.weights(), training=True, masks=[ok[0][:, :, :4], ok[1]])
    with pytest.raises(ParameterError, match="training only"):
        _lstm.lstm_forward(x, m.weights(), masks=ok)
