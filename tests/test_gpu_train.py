"""Training with the LSTM on CUDA (numba's simulator in CI, a real GPU under requires_cuda)."""
import json
import os

import numpy as np
import pytest

from speechlstm import ParameterError, config
from speechlstm.device import simulated
from speechlstm.nn import Adam, AcousticModel, clip_grad_norm


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    if simulated():
        monkeypatch.setattr(config, "CUDA_THREADS_PER_BLOCK", 8)


def _step(model, x, lens, grad_logits, opt):
    model.zero_grad()
    logits, _ = model.forward(x, lens)
    gx = model.backward(grad_logits)
    norm = clip_grad_norm(model.grads, 1.0)
    grads = {k: v.copy() for k, v in model.grads.items()}
    opt.step(model.grads)
    return logits, gx, norm, grads


def test_acoustic_model_training_step_on_cuda_equals_cpu():
    """Same weights, same batch: logits, every gradient, the gradient norm and the parameters
    after an Adam step agree between device='cuda' and the CPU kernels."""
    rng = np.random.default_rng(0)
    cpu = AcousticModel(6, 5, 7, num_layers=2, bidirectional=True, seed=1)
    gpu = AcousticModel(6, 5, 7, num_layers=2, bidirectional=True, seed=1).to("cuda")
    assert gpu.lstm.device == "cuda"
    x = rng.standard_normal((3, 8, 6)).astype(np.float32)
    lens = np.array([8, 3, 6])
    g = rng.standard_normal((3, 8, 7)).astype(np.float32)
    oc, og = Adam(cpu.params, lr=1e-2), Adam(gpu.params, lr=1e-2)
    lc, gxc, nc, gc = _step(cpu, x, lens, g, oc)
    lg, gxg, ng, gg = _step(gpu, x, lens, g, og)
    np.testing.assert_allclose(lg, lc, atol=1e-5)
    np.testing.assert_allclose(gxg, gxc, atol=1e-5)
    assert abs(ng - nc) < 1e-4 * max(1.0, nc)
    for k in cpu.params:
        np.testing.assert_allclose(gg[k], gc[k], atol=2e-5, err_msg=k)
        # Adam's first step is about lr * sign(grad): a float32 rounding difference on a near-zero
        # gradient may move it by up to a step, so compare at a share of lr
        np.testing.assert_allclose(gpu.params[k], cpu.params[k], atol=1e-3, err_msg=k)


def test_dropout_training_step_on_cuda_equals_cpu():
    """With dropout both devices run the masked all-layer call; the masks come from dropout_rng in
    layer order, so the same seed gives the same masks, and logits and gradients agree."""
    rng = np.random.default_rng(3)
    cpu = AcousticModel(6, 5, 7, num_layers=2, bidirectional=True, seed=1, dropout=0.3)
    gpu = AcousticModel(6, 5, 7, num_layers=2, bidirectional=True, seed=1, dropout=0.3).to("cuda")
    x = rng.standard_normal((3, 8, 6)).astype(np.float32)
    lens = np.array([8, 3, 6])
    g = rng.standard_normal((3, 8, 7)).astype(np.float32)
    cpu.dropout_rng = np.random.default_rng(5)
    gpu.dropout_rng = np.random.default_rng(5)
    lc, gxc, nc, gc = _step(cpu, x, lens, g, Adam(cpu.params, lr=1e-2))
    lg, gxg, ng, gg = _step(gpu, x, lens, g, Adam(gpu.params, lr=1e-2))
    np.testing.assert_allclose(lg, lc, atol=1e-5)
    np.testing.assert_allclose(gxg, gxc, atol=1e-5)
    for k in cpu.params:
        np.testing.assert_allclose(gg[k], gc[k], atol=2e-5, err_msg=k)


def test_cuda_needs_float32():
    from speechlstm.nn import LSTM

    with pytest.raises(ParameterError, match="float32"):
        LSTM(3, 4, dtype=np.float64).to("cuda")


def test_trainer_on_cuda(tmp_path):
    """``TrainConfig(device="cuda")``: a whole (tiny) run trains the LSTM on the CUDA kernels, the
    loss falls, and the result is a model file like any other."""
    import soundfile as sf

    from conftest import chirp, tone
    from speechlstm.data import write_manifest
    from speechlstm.model import load_model
    from speechlstm.train import TrainConfig, Trainer

    # the simulator runs every CUDA thread in Python: 4 short clips (tones and chirps, so that a GPU
    # host without espeak-ng runs this too), 4-dim features, no dev set
    rows = []
    for i, (text, y) in enumerate([("yes", tone(0.4, freq=300.0)), ("no", chirp(0.4, f0=2000.0, f1=500.0)),
                                   ("yes", tone(0.5, freq=350.0, seed=1)), ("no", chirp(0.5, f0=1800.0, f1=400.0))]):
        p = str(tmp_path / f"{i}.wav")
        sf.write(p, y, 16000)
        rows.append({"path": p, "text": text, "speaker": str(i), "duration": y.size / 16000})
    train = write_manifest(rows, str(tmp_path / "train.jsonl"))
    cfg = TrainConfig(train=[train], out_dir=str(tmp_path / "run"), hidden_size=3, num_layers=1,
                      epochs=3, batch_size=4, lr=2e-2, warmup_steps=1, workers=1, progress=False,
                      augment_copies=0, spec_augment=False, device="cuda",
                      features={"n_mfcc": 4, "delta_order": 0, "stack": 1, "subsample": 4})  # 4-dim input
    state = Trainer(cfg).run()
    losses = [h["train_loss"] for h in state["history"]]
    assert losses[-1] < losses[0], losses
    log = [json.loads(l) for l in open(tmp_path / "run" / "log.jsonl")]
    assert len(log) == 3
    assert load_model(os.path.join(cfg.out_dir, "model.npz")).acoustic.lstm.hidden_size == 3
