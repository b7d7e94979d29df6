"""Benchmark the Numba LSTM against PyTorch's CPU LSTM, same process, same thread count.

    python pipelines/bench_lstm.py --threads 2 --repeats 7

Prints median wall times and the ratio speechlstm / PyTorch (lower is better) for
R1 streaming inference, R2 batch inference and R3 a training step (forward+backward+Adam).
PyTorch (the test extra) is only the baseline here; speechlstm never imports it.
"""
import json
import os
import statistics

import click
import numpy as np
from benchutil import median_time

SCENARIOS = {
    "R1": dict(B=1, T=300, I=117, H=128, L=2, bi=False, train=False, doc="streaming inference"),
    "R2": dict(B=32, T=300, I=117, H=256, L=3, bi=True, train=False, doc="batch inference"),
    "R3": dict(B=32, T=100, I=117, H=128, L=2, bi=True, train=True, doc="training step (fwd+bwd+Adam)"),
}


def run(threads, repeats, only=None, rounds=3):
    import numba
    import torch

    from speechlstm.nn import LSTM, Adam

    torch.set_num_threads(threads)
    numba.set_num_threads(threads)
    rng = np.random.default_rng(0)
    rows = []
    for name, s in SCENARIOS.items():
        if only and name not in only:
            continue
        x = rng.standard_normal((s["B"], s["T"], s["I"])).astype(np.float32)
        g = rng.standard_normal((s["B"], s["T"], s["H"] * (2 if s["bi"] else 1))).astype(np.float32)
        ref = torch.nn.LSTM(s["I"], s["H"], s["L"], batch_first=True, bidirectional=s["bi"])
        ours = LSTM(s["I"], s["H"], num_layers=s["L"], bidirectional=s["bi"])
        ours.load_state_dict({k: v.detach().numpy().copy() for k, v in ref.state_dict().items()})
        xt, gt = torch.from_numpy(x), torch.from_numpy(g)
        if s["train"]:
            opt_t = torch.optim.Adam(ref.parameters(), lr=1e-4)
            opt = Adam(ours.params, lr=1e-4)

            def torch_fn():
                opt_t.zero_grad()
                y, _ = ref(xt)
                (y * gt).sum().backward()
                opt_t.step()

            def ours_fn():  # the same work: x has no requires_grad in torch_fn, so no input gradient here
                ours.zero_grad()
                ours.forward(x)
                ours.backward(g, input_grad=False)
                opt.step(ours.grads)
            ours.train()
        else:
            def torch_fn():
                with torch.no_grad():
                    ref(xt)

            def ours_fn():
                ours.forward(x)
            ours.eval()
        # alternate the two so machine noise hits both alike
        t_t, t_o = [], []
        for _ in range(rounds):
            t_t.append(median_time(torch_fn, repeats))
            t_o.append(median_time(ours_fn, repeats))
        tt, to = statistics.median(t_t), statistics.median(t_o)
        rows.append({"scenario": name, "what": s["doc"], "shape": f"B={s['B']} T={s['T']} I={s['I']} H={s['H']} "
                     f"L={s['L']} {'bi' if s['bi'] else 'uni'}", "speechlstm_ms": to * 1e3, "pytorch_ms": tt * 1e3,
                     "ratio": to / tt})
    return rows


@click.command()
@click.option("--threads", default=2, show_default=True, help="Threads for both libraries.")
@click.option("--repeats", default=7, show_default=True, help="Timed runs per median.")
@click.option("--rounds", default=3, show_default=True, help="Alternating rounds (PyTorch, then ours) per scenario.")
@click.option("--only", multiple=True, help="Scenario(s) to run (R1, R2, R3).")
@click.option("--json-out", type=click.Path(dir_okay=False), help="Also write the rows as JSON.")
def main(threads, repeats, rounds, only, json_out):
    import torch

    rows = run(threads, repeats, only, rounds)
    print(f"threads={threads}  torch={torch.__version__}  cpu_count={os.cpu_count()}  "
          f"(median of {repeats} runs, median of {rounds} alternating rounds)")
    print("| scenario | shape | speechlstm ms | PyTorch ms | ratio |")
    print("|---|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['scenario']} {r['what']} | {r['shape']} | {r['speechlstm_ms']:.2f} | {r['pytorch_ms']:.2f} "
              f"| {r['ratio']:.2f} |")
    if json_out:
        with open(json_out, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
