import numpy as np
import pytest

import naive
from speechlstm import ParameterError
from speechlstm.nn import (Adam, Dense, SequenceClassifier, frame_distillation_loss, log_softmax, log_softmax_backward,
                           softmax_cross_entropy)


def test_dense_matches_naive():
    rng = np.random.default_rng(0)
    d = Dense(5, 3, dtype=np.float64, seed=0)
    x = rng.standard_normal((2, 4, 5))
    y = d.forward(x)
    np.testing.assert_allclose(y, naive.dense_forward(x, d.params["weight"], d.params["bias"]), atol=1e-12)
    g = rng.standard_normal(y.shape)
    gx = d.backward(g)
    rx, rw, rb = naive.dense_backward(x, d.params["weight"], g)
    np.testing.assert_allclose(gx, rx, atol=1e-12)
    np.testing.assert_allclose(d.grads["weight"], rw, atol=1e-12)
    np.testing.assert_allclose(d.grads["bias"], rb, atol=1e-12)


def test_log_softmax_and_backward():
    rng = np.random.default_rng(1)
    z = rng.standard_normal((6, 7)) * 50
    lp = log_softmax(z)
    np.testing.assert_allclose(lp, naive.log_softmax(z), atol=1e-12)
    g = rng.standard_normal(z.shape)
    eps = 1e-6
    num = np.zeros_like(z)
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            zp, zm = z.copy(), z.copy()
            zp[i, j] += eps
            zm[i, j] -= eps
            num[i, j] = (np.sum(g * log_softmax(zp)) - np.sum(g * log_softmax(zm))) / (2 * eps)
    np.testing.assert_allclose(log_softmax_backward(g, lp), num, atol=1e-5)
    assert np.all(np.isfinite(log_softmax(np.array([[1e30, -1e30, 0.0]]))))


def test_cross_entropy_matches_naive():
    rng = np.random.default_rng(2)
    z = rng.standard_normal((5, 4))
    lab = np.array([0, 3, 2, 2, 1])
    loss, g = softmax_cross_entropy(z, lab)
    rl, rg = naive.softmax_cross_entropy(z, lab)
    assert loss == pytest.approx(rl)
    np.testing.assert_allclose(g, rg, atol=1e-12)
    loss2, g2 = softmax_cross_entropy(z, np.eye(4)[lab])
    assert loss2 == pytest.approx(rl)
    np.testing.assert_allclose(g2, rg, atol=1e-12)


def test_frame_distillation_loss_matches_naive_and_finite_differences():
    rng = np.random.default_rng(5)
    B, T, C = 3, 6, 5
    z = 2.0 * rng.standard_normal((B, T, C))
    p = rng.dirichlet(np.full(C, 0.5), size=(B, T))
    p[0, 2] = [0.0, 1.0, 0.0, 0.0, 0.0]  # a one-hot frame: 0 · log 0 counts as 0
    lengths = np.array([6, 4, 0])
    p_pad = p.copy()
    p_pad[1, 4:] = 7.0  # rubbish past the lengths must not matter
    loss, g = frame_distillation_loss(z, p_pad, lengths)
    np.testing.assert_allclose(loss, naive.frame_kl(z, p, lengths), rtol=1e-12, atol=1e-12)
    assert loss[2] == 0.0 and np.all(g[1, 4:] == 0) and np.all(g[2] == 0) and np.all(loss[:2] > 0)
    num = naive.central_difference_grad(lambda v: naive.frame_kl(v, p, lengths).sum(), z)
    np.testing.assert_allclose(g, num, atol=1e-7)
    # the student equal to the teacher: zero loss, zero gradient
    q = rng.dirichlet(np.ones(C), size=(B, T))
    l0, g0 = frame_distillation_loss(np.log(q), q, np.array([6, 6, 6]))
    np.testing.assert_allclose(l0, 0.0, atol=1e-12)
    np.testing.assert_allclose(g0, 0.0, atol=1e-12)
    l32, g32 = frame_distillation_loss(z.astype(np.float32), p, lengths)
    assert g32.dtype == np.float32 and l32.dtype == np.float64
    with pytest.raises(ParameterError, match="shapes"):
        frame_distillation_loss(z, p[:, :, :4], lengths)
    with pytest.raises(ParameterError, match="lengths"):
        frame_distillation_loss(z, p, np.array([7, 1, 1]))


@pytest.mark.parametrize("tau", [0.5, 2.0, 4.0])
def test_frame_distillation_loss_at_a_temperature_matches_naive_and_finite_differences(tau):
    """temperature τ: τ² · KL(p_T ‖ softmax(logits / τ)), gradient τ · (softmax(logits / τ) − p_T)."""
    rng = np.random.default_rng(6)
    B, T, C = 2, 5, 4
    z = 3.0 * rng.standard_normal((B, T, C))
    p = rng.dirichlet(np.full(C, 0.5), size=(B, T))
    lengths = np.array([5, 3])
    loss, g = frame_distillation_loss(z, p, lengths, temperature=tau)
    np.testing.assert_allclose(loss, naive.frame_kl(z, p, lengths, tau), rtol=1e-12, atol=1e-12)
    assert not np.allclose(loss, naive.frame_kl(z, p, lengths))  # the temperature does something
    num = naive.central_difference_grad(lambda v: naive.frame_kl(v, p, lengths, tau).sum(), z)
    np.testing.assert_allclose(g, num, atol=1e-6)
    # a student whose softened posteriors are the teacher's: zero loss, zero gradient
    l0, g0 = frame_distillation_loss(tau * np.log(p), p, lengths, temperature=tau)
    np.testing.assert_allclose(l0, 0.0, atol=1e-12)
    np.testing.assert_allclose(g0, 0.0, atol=1e-12)
    # τ = 1 is the plain term, bit for bit
    l1, g1 = frame_distillation_loss(z, p, lengths, temperature=1.0)
    l_, g_ = frame_distillation_loss(z, p, lengths)
    assert np.array_equal(l1, l_) and np.array_equal(g1, g_)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), "2"])
def test_frame_distillation_loss_refuses_a_bad_temperature(bad):
    z = np.zeros((1, 2, 3))
    with pytest.raises(ParameterError, match="temperature"):
        frame_distillation_loss(z, np.full_like(z, 1 / 3), np.array([2]), temperature=bad)


def _toy_task(rng, n):
    """Class = which of 3 channels carries a pulse; the pulse sits at a random time."""
    X = 0.3 * rng.standard_normal((n, 20, 3)).astype(np.float32)
    y = rng.integers(0, 3, n)
    t = rng.integers(0, 20, n)
    X[np.arange(n), t, y] += 3.0
    return X, y


def test_sequence_classifier_learns():
    rng = np.random.default_rng(0)
    X, y = _toy_task(rng, 300)
    Xv, yv = _toy_task(rng, 100)
    model = SequenceClassifier(3, 3, units=(32, 16), lr=0.01, seed=0)
    loss0, acc0 = model.evaluate(Xv, yv)
    hist = model.fit(X, np.eye(3)[y], epochs=12, batch_size=32, validation_data=(Xv, yv))
    loss1, acc1 = model.evaluate(Xv, yv)
    assert hist["loss"][-1] < hist["loss"][0]
    assert loss1 < loss0 and acc1 >= 0.9 > acc0
    assert model.predict(Xv[:4]).shape == (4, 3)
    with pytest.raises(ParameterError, match="labels"):
        model.fit(X, y + 5, epochs=1)


@pytest.mark.parametrize("bad", [0, -1e-3, float("inf"), float("nan"), "0.1", None])
def test_adam_refuses_a_bad_learning_rate(bad):
    with pytest.raises(ParameterError, match=r"lr must be a number in \(0, inf\), got"):
        Adam({"w": np.zeros(3)}, lr=bad)


@pytest.mark.parametrize("kw, msg", [
    ({"betas": (1.0, 0.999)}, r"betas\[0\] must be a number in \[0, 1\), got 1.0"),
    ({"betas": (0.9, -0.1)}, r"betas\[1\] must be a number in \[0, 1\), got -0.1"),
    ({"betas": 0.9}, r"betas must be a pair \(beta1, beta2\), got 0.9"),
    ({"betas": (0.9, 0.99, 0.999)}, r"betas must be a pair"),
    ({"eps": 0.0}, r"eps must be a number in \(0, inf\), got 0.0"),
    ({"eps": float("nan")}, r"eps must be a number in \(0, inf\), got nan"),
    ({"weight_decay": -0.01}, r"weight_decay must be a number in \[0, inf\), got -0.01"),
    ({"weight_decay": "0.1"}, r"weight_decay must be a number in \[0, inf\), got '0.1'"),
])
def test_adam_refuses_bad_betas_eps_and_weight_decay(kw, msg):
    with pytest.raises(ParameterError, match=msg):
        Adam({"w": np.zeros(3)}, lr=1e-3, **kw)


def test_adam_state_round_trip():
    p = {"w": np.ones(3)}
    a = Adam(p, lr=0.1)
    a.step({"w": np.array([1.0, -1.0, 0.5])})
    st = a.state_dict()
    q = {"w": p["w"].copy()}
    b = Adam(q, lr=0.1)
    b.load_state_dict(st)
    g = {"w": np.array([0.3, 0.2, -0.1])}
    a.step(g)
    b.step(g)
    assert np.array_equal(p["w"], q["w"])
