"""Hyper-parameter search: short training runs over a grid (or random draws from it), ranked on the
dev set, written as ``results.csv`` and ``results.md``.

Each row reports the dev WER, sentence accuracy and loss, the parameter count, and the inference
CPU time per second of audio (the model's forward pass over the dev set, measured with
``time.process_time``)."""
from __future__ import annotations

import csv
import dataclasses
import itertools
import os
import time
from typing import Dict, List, Sequence

import numpy as np

from .errors import ParameterError, check_int
from .train import TrainConfig, Trainer

__all__ = ["parse_grid", "run_search"]

TUNABLE = ("hidden_size", "num_layers", "bidirectional", "lr", "batch_size", "augment_copies", "weight_decay",
           "dropout")


def _value(s: str):
    low = s.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(s)
        except ValueError:
            pass
    return s.strip()


def parse_grid(items: Sequence[str]) -> Dict[str, list]:
    """``["hidden_size=64,128", "lr=1e-3,3e-3"]`` → ``{"hidden_size": [64, 128], "lr": [0.001, 0.003]}``."""
    grid = {}
    for it in items:
        key, sep, vals = it.partition("=")
        key = key.strip()
        if not sep or not vals:
            raise ParameterError(f"bad grid entry {it!r}: expected KEY=V1,V2,...")
        if key not in TUNABLE:
            raise ParameterError(f"cannot tune {key!r}; tunable: {', '.join(TUNABLE)}")
        grid[key] = [_value(v) for v in vals.split(",") if v.strip()]
    if not grid:
        raise ParameterError("empty search grid: give at least one --grid KEY=V1,V2")
    return grid


def _inference_cpu_per_audio_second(trainer: Trainer, model) -> float:
    xs = trainer.dev_x or trainer.train_x[:200]
    model.eval()
    t0 = time.process_time()
    for s in range(0, len(xs), 32):
        X, _, il, _ = trainer._pad(xs[s:s + 32], [np.zeros(1, np.int64)] * len(xs[s:s + 32]))
        model.forward(X, il)
    cpu = time.process_time() - t0
    audio = sum(x.shape[0] for x in xs) * float(trainer.fcfg.frame_period)
    return cpu / max(audio, 1e-9)


def run_search(base: TrainConfig, grid: Dict[str, list], out_dir: str, *, epochs: int = 3, n_random: int = 0,
               seed: int = 0) -> List[dict]:
    check_int("n_random", n_random, 0)
    check_int("seed", seed, 0)
    keys = sorted(grid)
    combos = [dict(zip(keys, vals)) for vals in itertools.product(*(grid[k] for k in keys))]
    if n_random:
        rng = np.random.default_rng(seed)
        combos = [combos[i] for i in rng.choice(len(combos), min(n_random, len(combos)), replace=False)]
    shared_cache = base.cache_dir or os.path.join(out_dir, "cache")
    # every trial's config made (so checked, epochs too) before the first trains: a bad grid value fails now
    cfgs = [dataclasses.replace(base, out_dir=os.path.join(out_dir, f"trial_{i:03d}"), cache_dir=shared_cache,
                                epochs=epochs, patience=epochs + 1, progress=False, **combo)
            for i, combo in enumerate(combos)]
    os.makedirs(out_dir, exist_ok=True)
    rows = []
    for i, (combo, cfg) in enumerate(zip(combos, cfgs)):
        tr = Trainer(cfg)
        t0 = time.process_time()
        state = tr.run()
        from .model import load_model

        model = load_model(os.path.join(cfg.out_dir, "model.npz"))
        last = state["history"][-1]
        rows.append({"trial": i, **combo, "dev_wer": last.get("dev_wer", float("nan")),
                     "dev_accuracy": last.get("dev_accuracy", float("nan")),
                     "dev_loss": last.get("dev_loss", float("nan")), "parameters": model.acoustic.num_parameters(),
                     "cpu_s_per_audio_s": _inference_cpu_per_audio_second(tr, model.acoustic),
                     "train_cpu_s": round(time.process_time() - t0, 1)})
    rows.sort(key=lambda r: (r["dev_wer"], r["dev_loss"]))
    cols = ["rank", "trial"] + keys + ["dev_wer", "dev_accuracy", "dev_loss", "parameters", "cpu_s_per_audio_s",
                                       "train_cpu_s"]
    with open(os.path.join(out_dir, "results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for rank, r in enumerate(rows, 1):
            w.writerow({"rank": rank, **r})
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n")
        for rank, r in enumerate(rows, 1):
            vals = [rank] + [r[c] for c in cols[1:]]
            f.write("| " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in vals) + " |\n")
    return rows
