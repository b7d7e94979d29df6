"""Benchmark the Numba LSTM against PyTorch's CPU LSTM, same process, same thread count.

    python pipelines/bench_lstm.py --threads 2 --repeats 7

Prints median wall times and the ratio speechlstm / PyTorch (lower is better) for
R1 streaming inference, R2 batch inference and R3 a training step (forward+backward+Adam).
"ratio" is the median of our per-round times over the median of PyTorch's; "paired" the median
of the per-round ratios (each round times PyTorch, then us, back to back), which a slow drift of
the machine's load between rounds moves less.

``--floor`` also times, for R2, only the matrix products an LSTM forward cannot avoid (the input
projection of every layer, one ``W_hh`` product per step and direction), once through the BLAS
speechlstm calls and once through PyTorch's, beside PyTorch's whole LSTM: how far below PyTorch's
time any implementation of the same arithmetic on these BLAS libraries can go.

``--no-onednn-too`` also times PyTorch with oneDNN turned off (``torch.backends.mkldnn.flags(
enabled=False)``), in the same alternation: PyTorch's CPU LSTM runs each layer and direction through
oneDNN's fused RNN primitive (``aten::mkldnn_rnn_layer``) by default, and through its own per-step
BLAS calls (``aten::addmm``) without it. The ratio that counts stays the one against default PyTorch.
PyTorch (the test extra) is only the baseline here; speechlstm never imports it.

``--blas both`` times speechlstm once with each BLAS its kernels can call (SciPy's OpenBLAS, and
MKL from the optional ``mkl`` wheel), in the same alternation; ``--blas openblas|mkl`` one of them;
the default ``auto`` whatever the process picks (MKL when installed, on an Intel CPU).

``--layer`` splits one inner R2 layer's forward time: the input projection, the recurrence (the
layer less the projection), the recurrence's per-step products alone, and what is left (gate
loops, reads of the projected inputs, writes of the outputs).
"""
import json
import os
import statistics

import click
import numpy as np
from benchutil import cpu_name, median_time

SCENARIOS = {
    "R1": dict(B=1, T=300, I=117, H=128, L=2, bi=False, train=False, doc="streaming inference"),
    "R2": dict(B=32, T=300, I=117, H=256, L=3, bi=True, train=False, doc="batch inference"),
    "R3": dict(B=32, T=100, I=117, H=128, L=2, bi=True, train=True, doc="training step (fwd+bwd+Adam)"),
}


def run(threads, repeats, only=None, rounds=3, no_onednn_too=False, backends=("auto",)):
    import numba
    import torch

    from speechlstm import linalg
    from speechlstm.nn import LSTM, Adam

    backends = [linalg.set_blas(b) for b in backends]  # "auto" resolved; refuses "mkl" without MKL

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
        def plain_fn(fn=torch_fn):
            with torch.backends.mkldnn.flags(enabled=False):
                fn()

        # alternate them so machine noise hits all alike
        t_t, t_p, t_o = [], [], {b: [] for b in backends}
        for _ in range(rounds):
            t_t.append(median_time(torch_fn, repeats))
            for b in backends:
                linalg.set_blas(b)
                t_o[b].append(median_time(ours_fn, repeats))
            if no_onednn_too:
                t_p.append(median_time(plain_fn, repeats))
        tt = statistics.median(t_t)
        row = {"scenario": name, "what": s["doc"], "shape": f"B={s['B']} T={s['T']} I={s['I']} H={s['H']} "
               f"L={s['L']} {'bi' if s['bi'] else 'uni'}", "pytorch_ms": tt * 1e3}
        for b in backends:
            to = statistics.median(t_o[b])
            paired = statistics.median(o / t for o, t in zip(t_o[b], t_t))  # each round's own ratio
            row.update({f"speechlstm_{b}_ms": to * 1e3, f"ratio_{b}": to / tt, f"paired_{b}": paired})
            if no_onednn_too:
                row[f"ratio_{b}_no_onednn"] = to / statistics.median(t_p)
        if no_onednn_too:
            row["pytorch_no_onednn_ms"] = statistics.median(t_p) * 1e3
        rows.append(row)
    return rows


def _step_gemms():
    import numba

    from speechlstm.linalg import mkl_gemm_packed, mkl_pack_b

    @numba.njit(parallel=True)
    def steps(whh, whh_t, h_t, acc_t, h, acc, n_steps, mkl):  # one task per direction, as in lstm._forward_layer
        for d in numba.prange(whh.shape[0]):
            # the MKL path's form: W_hh.T packed once per sequence, h @ it straight into the gate rows
            wp = mkl_pack_b(h.shape[1], whh_t[d]) if mkl else np.empty(0, whh.dtype)
            for _ in range(n_steps):
                if mkl:
                    mkl_gemm_packed(h[d], wp, acc[d], 0.0)
                else:
                    np.dot(whh[d], h_t[d], acc_t[d])
    return steps


def _step_operands(whh, h_t):
    """The per-step products' operands for recurrent weights ``whh [D, 4H, H]`` and a state
    ``h_t [D, H, B]``: ``(whh_t, h_t, acc_t, h, acc)`` in both the BLAS (W_hh @ h_t) and the MKL
    (h @ W_hh.T) layouts that ``_step_gemms`` takes."""
    D, G, _ = whh.shape
    B = h_t.shape[2]
    whh_t = np.ascontiguousarray(whh.transpose(0, 2, 1))
    h = np.ascontiguousarray(h_t.transpose(0, 2, 1))
    return whh_t, h_t, np.empty((D, G, B), whh.dtype), h, np.empty((D, B, G), whh.dtype)


def floor(threads, repeats, rounds, name="R2"):
    """Median times of the unavoidable matrix products of scenario ``name``'s forward pass
    (ours: speechlstm.linalg.matmul + per-step BLAS in Numba tasks; torch: torch.mm / torch.bmm)
    and of PyTorch's whole nn.LSTM forward, alternating."""
    import numba
    import torch

    from speechlstm.linalg import matmul, mkl_info, prepare_blas, set_blas

    torch.set_num_threads(threads)
    numba.set_num_threads(threads)
    prepare_blas()
    s = SCENARIOS[name]
    B, T, I, H, L, D = s["B"], s["T"], s["I"], s["H"], s["L"], 2 if s["bi"] else 1
    rng = np.random.default_rng(0)
    f32 = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    inputs = [f32(B * T, I if l == 0 else D * H) for l in range(L)]
    w_cat_t = [np.ascontiguousarray(f32(D * 4 * H, a.shape[1]).T) for a in inputs]
    gx = np.empty((B * T, D * 4 * H), np.float32)
    whh = f32(D, 4 * H, H)
    whh_t, h_t, acc_t, h, acc = _step_operands(whh, f32(D, H, B))
    steps = _step_gemms()
    backends = ["openblas"] + (["mkl"] if mkl_info() else [])

    def ours_with(backend):
        def ours():
            set_blas(backend)
            for l in range(L):
                matmul(inputs[l], w_cat_t[l], out=gx)
                steps(whh, whh_t, h_t, acc_t, h, acc, T, backend == "mkl")
        ours()
        return ours

    tin = [torch.from_numpy(a) for a in inputs]
    tw = [torch.from_numpy(w) for w in w_cat_t]
    tgx, twhh, th, tacc = torch.from_numpy(gx.copy()), torch.from_numpy(whh), torch.from_numpy(h_t), torch.from_numpy(acc_t.copy())

    def theirs():
        with torch.no_grad():
            for l in range(L):
                torch.mm(tin[l], tw[l], out=tgx)
                for _ in range(T):
                    torch.bmm(twhh, th, out=tacc)

    ref = torch.nn.LSTM(I, H, L, batch_first=True, bidirectional=s["bi"])
    xt = torch.from_numpy(f32(B, T, I))

    def lstm():
        with torch.no_grad():
            ref(xt)

    fns = [("torch_lstm", lstm)] + [(f"ours_{b}", ours_with(b)) for b in backends] + [("torch_blas", theirs)]
    times = {k: [] for k, _ in fns}
    for _ in range(rounds):
        for k, fn in fns:
            times[k].append(median_time(fn, repeats))
    set_blas("auto")
    out = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    gflop = 2 * B * T * 4 * H * D * (I + (L - 1) * D * H + L * H) / 1e9
    return out, gflop


def layer_breakdown(threads, repeats, rounds, name="R2"):
    """Median times for one inner layer of scenario ``name`` (input D*H wide): its input projection
    (one ``linalg.matmul``), the whole layer (``lstm_forward`` with one layer's weights) and its
    per-step recurrent products alone, alternating; the layer less the projection is the
    recurrence, and the recurrence less its products the gate loops with their memory traffic."""
    import numba

    from speechlstm.linalg import matmul, prepare_blas, use_mkl
    from speechlstm.lstm import Workspace, lstm_forward

    numba.set_num_threads(threads)
    prepare_blas()
    s = SCENARIOS[name]
    B, T, H, D = s["B"], s["T"], s["H"], 2 if s["bi"] else 1
    rng = np.random.default_rng(0)
    f32 = lambda *shape: (0.1 * rng.standard_normal(shape)).astype(np.float32)  # noqa: E731
    x = f32(B, T, D * H)
    weights = [[(f32(4 * H, D * H), f32(4 * H, H), f32(4 * H), f32(4 * H)) for _ in range(D)]]
    w_cat_t = np.ascontiguousarray(np.concatenate([w[0] for w in weights[0]]).T)
    gx = np.empty((B * T, D * 4 * H), np.float32)
    whh = np.stack([w[1] for w in weights[0]])
    whh_t, h_t, acc_t, h, acc = _step_operands(whh, f32(D, H, B))
    steps = _step_gemms()
    mkl = use_mkl()
    ws = Workspace()
    fns = [("projection", lambda: matmul(x.reshape(B * T, -1), w_cat_t, out=gx)),
           ("layer", lambda: lstm_forward(x, weights, workspace=ws)),  # reused scratch, as nn.LSTM keeps
           ("products", lambda: steps(whh, whh_t, h_t, acc_t, h, acc, T, mkl))]
    times = {k: [] for k, _ in fns}
    for _ in range(rounds):
        for k, fn in fns:
            times[k].append(median_time(fn, repeats))
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


@click.command()
@click.option("--threads", default=2, show_default=True, help="Threads for both libraries.")
@click.option("--repeats", default=7, show_default=True, help="Timed runs per median.")
@click.option("--rounds", default=3, show_default=True, help="Alternating rounds (PyTorch, then ours) per scenario.")
@click.option("--only", multiple=True, help="Scenario(s) to run (R1, R2, R3).")
@click.option("--json-out", type=click.Path(dir_okay=False), help="Also write the rows as JSON.")
@click.option("--floor", "with_floor", is_flag=True, help="Also time R2's unavoidable matrix products alone.")
@click.option("--layer", "with_layer", is_flag=True,
              help="Also split one inner R2 layer's time: projection, recurrent products, the rest.")
@click.option("--no-onednn-too", is_flag=True,
              help="Also time PyTorch with oneDNN off (its own per-step BLAS LSTM), in the same alternation.")
@click.option("--blas", type=click.Choice(["auto", "openblas", "mkl", "both"]), default="auto", show_default=True,
              help="BLAS of speechlstm's kernels: auto (MKL when installed, on an Intel CPU), one of them, or both in turn.")
def main(threads, repeats, rounds, only, json_out, with_floor, with_layer, no_onednn_too, blas):
    import torch

    from speechlstm.errors import ParameterError
    from speechlstm.linalg import mkl_info, set_blas

    try:
        backends = [set_blas(b) for b in (["openblas", "mkl"] if blas == "both" else [blas])]
    except ParameterError as exc:
        raise click.UsageError(str(exc))
    rows = run(threads, repeats, only, rounds, no_onednn_too, backends)
    mkl = mkl_info()
    print(f"threads={threads}  torch={torch.__version__}  cpu={cpu_name()} x {os.cpu_count()}  "
          f"MKL: {mkl[1] if mkl else 'not installed'}  "
          f"(median of {repeats} runs, median of {rounds} alternating rounds)")
    names = {"openblas": "OpenBLAS", "mkl": "MKL"}
    head = "".join(f" speechlstm ({names[b]}) ms | ratio | paired |" for b in backends)
    extra = " PyTorch without oneDNN ms |" + "".join(f" ratio to it ({names[b]}) |" for b in backends) if no_onednn_too else ""
    print("| scenario | shape | PyTorch ms |" + head + extra)
    print("|---|---|---:|" + "---:|---:|---:|" * len(backends) + ("---:|" * (1 + len(backends)) if no_onednn_too else ""))
    for r in rows:
        cells = "".join(f" {r[f'speechlstm_{b}_ms']:.2f} | {r[f'ratio_{b}']:.2f} | {r[f'paired_{b}']:.2f} |"
                        for b in backends)
        tail = (f" {r['pytorch_no_onednn_ms']:.2f} |" + "".join(f" {r[f'ratio_{b}_no_onednn']:.2f} |" for b in backends)
                if no_onednn_too else "")
        print(f"| {r['scenario']} {r['what']} | {r['shape']} | {r['pytorch_ms']:.2f} |" + cells + tail)
    if with_floor:
        ms, gflop = floor(threads, repeats, rounds)
        lstm_ms = ms["torch_lstm"]
        print(f"\nR2's matrix products alone ({gflop:.1f} GFLOP: input projections + one W_hh product per step "
              f"and direction), beside PyTorch's whole LSTM forward ({lstm_ms:.1f} ms):")
        print("| products through | ms | GFLOP/s | x PyTorch LSTM |")
        print("|---|---:|---:|---:|")
        labels = (("ours_openblas", "speechlstm's BLAS calls, SciPy OpenBLAS (Numba tasks)"),
                  ("ours_mkl", "speechlstm's BLAS calls, MKL (Numba tasks)"),
                  ("torch_blas", "PyTorch's BLAS (torch.mm / torch.bmm)"))
        for k, label in labels:
            if k in ms:
                print(f"| {label} | {ms[k]:.1f} | {gflop / ms[k] * 1e3:.0f} | {ms[k] / lstm_ms:.2f} |")
        rows.append({"scenario": "R2-floor", **{f"{k}_ms": v for k, v in ms.items()}, "gflop": gflop})
    if with_layer:
        set_blas(backends[-1])
        ms = layer_breakdown(threads, repeats, rounds)
        rec = ms["layer"] - ms["projection"]
        print(f"\nOne inner R2 layer (B=32 T=300, input 512, H=256, bidirectional; BLAS: {backends[-1]}), ms:")
        print("| whole layer | input projection | recurrence | its products alone | gate loops + memory |")
        print("|---:|---:|---:|---:|---:|")
        print(f"| {ms['layer']:.1f} | {ms['projection']:.1f} | {rec:.1f} | {ms['products']:.1f} | {rec - ms['products']:.1f} |")
        rows.append({"scenario": "R2-layer", **{f"{k}_ms": v for k, v in ms.items()}})
    if json_out:
        with open(json_out, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
