import numpy as np
import pytest
import torch

import naive
from speechlstm import ParameterError
from speechlstm.ctc import ctc_loss


@pytest.mark.parametrize("target", [[1], [1, 2], [1, 1], [2, 1, 2], [], [1, 1, 1]])
@pytest.mark.parametrize("T", [1, 2, 3, 5, 6])
def test_against_brute_force(target, T):
    rng = np.random.default_rng(T * 10 + len(target))
    z = rng.standard_normal((1, T, 3))
    tg = np.array([target + [0] * (3 - len(target))])
    loss, grad = ctc_loss(z, tg, [T], [len(target)])
    ref = naive.ctc_loss_bruteforce(z[0], target)
    if np.isinf(ref):
        assert np.isinf(loss[0]) and not grad.any()
    else:
        assert loss[0] == pytest.approx(ref, rel=1e-10)
        assert np.all(np.isfinite(grad))


def test_exactly_long_enough():
    # "aa" needs 3 frames (a, blank, a); "ab" needs 2
    z = np.zeros((2, 3, 3))
    loss, _ = ctc_loss(z, np.array([[1, 1], [1, 2]]), [3, 2], [2, 2])
    assert loss[0] == pytest.approx(-np.log((1 / 3) ** 3))  # exactly one path
    assert loss[1] == pytest.approx(-np.log((1 / 3) ** 2))
    loss, grad = ctc_loss(z[:1], np.array([[1, 1]]), [2], [2])
    assert np.isinf(loss[0]) and not grad.any() and not np.isnan(grad).any()


def test_gradient_finite_differences():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((2, 6, 4))
    tg = np.array([[1, 2, 2], [3, 1, 0]])
    il, tl = np.array([6, 4]), np.array([3, 2])
    _, grad = ctc_loss(z, tg, il, tl)
    eps = 1e-6
    for idx in [(0, 0, 0), (0, 3, 2), (1, 1, 3), (1, 3, 0), (0, 5, 1)]:
        zp, zm = z.copy(), z.copy()
        zp[idx] += eps
        zm[idx] -= eps
        num = (ctc_loss(zp, tg, il, tl)[0].sum() - ctc_loss(zm, tg, il, tl)[0].sum()) / (2 * eps)
        assert grad[idx] == pytest.approx(num, abs=1e-6)
    assert not grad[1, 4:].any()  # padding


def test_matches_torch_loss_and_autograd():
    rng = np.random.default_rng(1)
    B, T, C, S = 5, 30, 8, 10
    z = rng.standard_normal((B, T, C)) * 3
    il = np.array([30, 25, 12, 30, 7])
    tl = np.array([10, 4, 6, 0, 3])
    tg = rng.integers(1, C, (B, S))
    tg[0, 3] = tg[0, 2]  # repeats
    zt = torch.tensor(z, requires_grad=True)
    lt = torch.nn.functional.ctc_loss(torch.log_softmax(zt, -1).transpose(0, 1), torch.tensor(tg),
                                      torch.tensor(il), torch.tensor(tl), blank=0, reduction="none")
    lt.sum().backward()
    loss, grad = ctc_loss(z, tg, il, tl)
    np.testing.assert_allclose(loss, lt.detach().numpy(), rtol=1e-9)
    np.testing.assert_allclose(grad, zt.grad.numpy(), atol=1e-9)
    loss32, grad32 = ctc_loss(z.astype(np.float32), tg, il, tl)
    assert grad32.dtype == np.float32
    np.testing.assert_allclose(loss32, loss, rtol=1e-5)


def test_long_sequences_stay_finite():
    rng = np.random.default_rng(2)
    z = (rng.standard_normal((2, 2000, 29)) * 30).astype(np.float32)
    tg = rng.integers(1, 29, (2, 300))
    loss, grad = ctc_loss(z, tg, [2000, 2000], [300, 300])
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))


def test_validation():
    z = np.zeros((1, 4, 3), np.float32)
    with pytest.raises(ParameterError, match="blank=0"):
        ctc_loss(z, np.array([[0, 1]]), [4], [2])
    with pytest.raises(ParameterError, match="input_lengths"):
        ctc_loss(z, np.array([[1]]), [5], [1])
    with pytest.raises(ParameterError, match="NaN"):
        ctc_loss(np.full((1, 2, 3), np.nan), np.array([[1]]), [2], [1])
