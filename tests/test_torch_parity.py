"""Parity with PyTorch (installed as the test extra, CPU build): weights move both ways."""
import numpy as np
import pytest
import torch

from speechlstm.nn import LSTM, AcousticModel, Adam, clip_grad_norm

torch.set_num_threads(1)


@pytest.mark.parametrize("layers,bi", [(1, False), (2, True), (3, False)])
def test_lstm_matches_torch_outputs_states_and_grads(layers, bi):
    torch.manual_seed(layers)
    B, T, I, H = 3, 11, 5, 6
    ref = torch.nn.LSTM(I, H, layers, batch_first=True, bidirectional=bi).double()
    ours = LSTM(I, H, num_layers=layers, bidirectional=bi, dtype=np.float64)
    sd = {k: v.detach().numpy() for k, v in ref.state_dict().items()}
    assert list(sd) == list(ours.params)  # the same names, in the same order
    ours.load_state_dict(sd)
    D = 2 if bi else 1
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, I))
    lens = np.array([11, 4, 8])
    h0 = rng.standard_normal((layers * D, B, H))
    c0 = rng.standard_normal((layers * D, B, H))
    gy = rng.standard_normal((B, T, D * H))
    ghn = rng.standard_normal((layers * D, B, H))

    xt = torch.tensor(x, requires_grad=True)
    h0t = torch.tensor(h0, requires_grad=True)
    c0t = torch.tensor(c0, requires_grad=True)
    packed = torch.nn.utils.rnn.pack_padded_sequence(xt, torch.tensor(lens), batch_first=True, enforce_sorted=False)
    out, (hnt, cnt) = ref(packed, (h0t, c0t))
    yt, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=T)
    (yt * torch.tensor(gy)).sum().add_((hnt * torch.tensor(ghn)).sum()).backward()

    y, (hn, cn) = ours.forward(x, lens, (h0, c0))
    np.testing.assert_allclose(y, yt.detach().numpy(), atol=1e-10)
    np.testing.assert_allclose(hn, hnt.detach().numpy(), atol=1e-10)
    np.testing.assert_allclose(cn, cnt.detach().numpy(), atol=1e-10)
    gx = ours.backward(gy, (ghn, None))
    np.testing.assert_allclose(gx, xt.grad.numpy(), atol=1e-9)
    np.testing.assert_allclose(ours.grad_state[0], h0t.grad.numpy(), atol=1e-9)
    np.testing.assert_allclose(ours.grad_state[1], c0t.grad.numpy(), atol=1e-9)
    for name, p in ref.named_parameters():
        np.testing.assert_allclose(ours.grads[name], p.grad.numpy(), atol=1e-8, err_msg=name)
    # and back: our weights load into torch
    ref2 = torch.nn.LSTM(I, H, layers, batch_first=True, bidirectional=bi)
    ref2.load_state_dict({k: torch.from_numpy(v.astype(np.float32)) for k, v in ours.state_dict().items()})


def test_float32_parity_with_torch():
    torch.manual_seed(0)
    ref = torch.nn.LSTM(7, 16, 2, batch_first=True, bidirectional=True)
    ours = LSTM(7, 16, num_layers=2, bidirectional=True)
    ours.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    x = np.random.default_rng(1).standard_normal((4, 30, 7)).astype(np.float32)
    with torch.no_grad():
        yt, (hnt, _) = ref(torch.from_numpy(x))
    y, (hn, _) = ours.eval().forward(x)
    np.testing.assert_allclose(y, yt.numpy(), atol=2e-6)
    np.testing.assert_allclose(hn, hnt.numpy(), atol=2e-6)


def test_default_init_matches_torch_range():
    ours = LSTM(10, 64, num_layers=2)
    k = 1 / np.sqrt(64)
    for v in ours.params.values():
        assert v.dtype == np.float32 and np.abs(v).max() <= k and np.abs(v).max() > 0.9 * k


def test_acoustic_model_grads_match_torch():
    torch.manual_seed(3)
    B, T, I, H, C = 2, 9, 4, 5, 6

    class Ref(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(I, H, 2, batch_first=True, bidirectional=True)
            self.fc = torch.nn.Linear(2 * H, C)

        def forward(self, x):
            return torch.log_softmax(self.fc(self.lstm(x)[0]), -1)

    ref = Ref().double()
    ours = AcousticModel(I, H, C, num_layers=2, bidirectional=True, dtype=np.float64)
    sd = {k: v.detach().numpy() for k, v in ref.state_dict().items()}
    assert sorted(sd) == sorted(ours.params)
    for k, v in sd.items():
        ours.params[k][...] = v
    x = np.random.default_rng(2).standard_normal((B, T, I))
    g = np.random.default_rng(3).standard_normal((B, T, C))
    xt = torch.tensor(x, requires_grad=True)
    lp_t = ref(xt)
    (lp_t * torch.tensor(g)).sum().backward()
    lp, _ = ours.log_probs(x)
    np.testing.assert_allclose(lp, lp_t.detach().numpy(), atol=1e-10)
    from speechlstm.nn import log_softmax_backward

    ours.zero_grad()
    gx = ours.backward(log_softmax_backward(g, lp))
    np.testing.assert_allclose(gx, xt.grad.numpy(), atol=1e-9)
    for name, p in ref.named_parameters():
        np.testing.assert_allclose(ours.grads[name], p.grad.numpy(), atol=1e-8, err_msg=name)


def test_adam_and_clipping_match_torch():
    rng = np.random.default_rng(0)
    shapes = {"a": (3, 4), "b": (5,)}
    p_np = {k: rng.standard_normal(s) for k, s in shapes.items()}
    p_t = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in p_np.items()}
    opt_t = torch.optim.Adam(p_t.values(), lr=0.01, betas=(0.9, 0.98), eps=1e-8)
    opt = Adam(p_np, lr=0.01, betas=(0.9, 0.98), eps=1e-8)
    for step in range(5):
        grads = {k: rng.standard_normal(s) * (10 if step == 2 else 1) for k, s in shapes.items()}
        for k in shapes:
            p_t[k].grad = torch.tensor(grads[k].copy())
        n_t = torch.nn.utils.clip_grad_norm_(p_t.values(), 2.0)
        n = clip_grad_norm(grads, 2.0)
        assert n == pytest.approx(float(n_t), rel=1e-12)
        for k in shapes:
            np.testing.assert_allclose(grads[k], p_t[k].grad.numpy(), rtol=1e-6)
        opt_t.step()
        opt.step(grads)
        for k in shapes:
            np.testing.assert_allclose(p_np[k], p_t[k].detach().numpy(), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("tau", [1.0, 2.0])
def test_frame_distillation_loss_matches_torch_kl_div(tau):
    """τ² · KL(p ‖ softmax(logits / τ)) summed over valid frames, and its gradient, against
    ``torch.nn.functional.kl_div`` with autograd in float64."""
    from speechlstm.nn import frame_distillation_loss

    rng = np.random.default_rng(11)
    B, T, C = 3, 7, 6
    z = 2.5 * rng.standard_normal((B, T, C))
    p = rng.dirichlet(np.full(C, 0.4), size=(B, T))
    lengths = np.array([7, 5, 2])
    loss, g = frame_distillation_loss(z, p, lengths, temperature=tau)
    zt = torch.tensor(z, requires_grad=True)
    mask = torch.tensor((np.arange(T)[None, :] < lengths[:, None])[:, :, None].astype(np.float64))
    kl = torch.nn.functional.kl_div(torch.log_softmax(zt / tau, -1), torch.tensor(p), reduction="none")
    per_utt = (kl * mask).sum(dim=(1, 2)) * tau ** 2
    per_utt.sum().backward()
    np.testing.assert_allclose(loss, per_utt.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(g, zt.grad.numpy(), atol=1e-12)
