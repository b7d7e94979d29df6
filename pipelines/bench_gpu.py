"""Benchmark the numba.cuda LSTM against PyTorch cuDNN on a GPU host.

    python pipelines/bench_gpu.py --batch 32 --batch 256

Shape: T=300, I=117, H=256, 3 layers, bidirectional (inference).  Prints median times, throughput
(sequences/s) and the ratio of throughputs numba.cuda / cuDNN (higher is better; target >= 0.5).
Both sides are timed from host float32 input to host output, after a warm-up call.
With ``--train-batch B`` it also times a training step (forward + backward through time, host
gradients out) at T=100 against cuDNN's forward + autograd backward.
"""
import click
import numpy as np
from benchutil import median_time


@click.command()
@click.option("--batch", "batches", multiple=True, type=int, default=(32, 256), show_default=True)
@click.option("--repeats", default=5, show_default=True)
@click.option("--train-batch", default=32, show_default=True, help="Batch of the training-step timing (0: skip).")
@click.option("--dropout", default=0.0, show_default=True,
              help="Also time a training step of both LSTMs built with this dropout (0: skip).")
def main(batches, repeats, train_batch, dropout):
    import torch
    from numba import cuda

    from speechlstm.gpu_lstm import gpu_lstm_forward
    from speechlstm.nn import LSTM

    assert torch.cuda.is_available() and cuda.is_available(), "needs a CUDA GPU"
    T, I, H, L = 300, 117, 256, 3
    print(f"GPU: {torch.cuda.get_device_name(0)}  torch {torch.__version__}  cuDNN {torch.backends.cudnn.version()}")
    print("| batch | numba.cuda ms | cuDNN ms | numba seq/s | cuDNN seq/s | throughput ratio |")
    print("|---:|---:|---:|---:|---:|---:|")
    for B in batches:
        ref = torch.nn.LSTM(I, H, L, batch_first=True, bidirectional=True).cuda().eval()
        ours = LSTM(I, H, num_layers=L, bidirectional=True)
        ours.load_state_dict({k: v.detach().cpu().numpy() for k, v in ref.state_dict().items()})
        x = np.random.default_rng(0).standard_normal((B, T, I)).astype(np.float32)
        W = ours.weights()

        def run_ours():
            gpu_lstm_forward(x, W)
            cuda.synchronize()

        def run_torch():
            with torch.no_grad():
                y, _ = ref(torch.from_numpy(x).cuda())
                y.cpu()
            torch.cuda.synchronize()

        res = {name: median_time(fn, repeats) for name, fn in (("ours", run_ours), ("torch", run_torch))}
        y_o, _, _ = gpu_lstm_forward(x[:4], W)
        with torch.no_grad():
            y_t = ref(torch.from_numpy(x[:4]).cuda())[0].cpu().numpy()
        err = float(np.abs(y_o - y_t).max())
        print(f"| {B} | {res['ours'] * 1e3:.1f} | {res['torch'] * 1e3:.1f} | {B / res['ours']:.1f} | "
              f"{B / res['torch']:.1f} | {res['torch'] / res['ours']:.3f} |  (max |diff| {err:.1e})")

    if train_batch:
        train_step(torch, train_batch, repeats)
        if dropout:
            train_step(torch, train_batch, repeats, dropout=dropout)


def train_step(torch, B, repeats, T=100, I=117, H=256, L=3, dropout=0.0):
    from speechlstm.gpu_lstm import gpu_lstm_backward, gpu_lstm_forward
    from speechlstm.nn import LSTM

    ref = torch.nn.LSTM(I, H, L, batch_first=True, bidirectional=True, dropout=dropout).cuda().train()
    ours = LSTM(I, H, num_layers=L, bidirectional=True, dropout=dropout, seed=0)
    ours.load_state_dict({k: v.detach().cpu().numpy() for k, v in ref.state_dict().items()})
    rng = np.random.default_rng(1)
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    gy = rng.standard_normal((B, T, 2 * H)).astype(np.float32)
    W = ours.weights()

    def run_ours():
        if dropout:  # nn.LSTM draws the masks; the CUDA forward applies them between its layers
            ours.forward(x)
            ours.backward(gy)
        else:
            _, _, cache = gpu_lstm_forward(x, W, training=True)
            gpu_lstm_backward(gy, cache)

    if dropout:
        ours.to("cuda").train()

    def run_torch():
        ref.zero_grad()
        xt = torch.from_numpy(x).cuda().requires_grad_()
        y, _ = ref(xt)
        y.backward(torch.from_numpy(gy).cuda())
        xt.grad.cpu()
        [p.grad.cpu() for p in ref.parameters()]
        torch.cuda.synchronize()

    res = {name: median_time(fn, repeats) for name, fn in (("ours", run_ours), ("torch", run_torch))}
    what = f"with dropout {dropout} " if dropout else ""
    print(f"\ntraining step {what}(forward + backward), B={B} T={T}: numba.cuda {res['ours'] * 1e3:.1f} ms, "
          f"cuDNN {res['torch'] * 1e3:.1f} ms, throughput ratio {res['torch'] / res['ours']:.3f}")


if __name__ == "__main__":
    main()
