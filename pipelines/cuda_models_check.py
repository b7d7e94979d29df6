"""Every shipped model on CUDA against the CPU, on the clips of audio_samples/ (run on a GPU host by
pipelines/gpu_check.sh): the same transcript for each clip and posteriors within 1e-3; exit 1 if not.

    python pipelines/cuda_models_check.py [DEVICE]     # DEVICE: cuda (default) or cpu (a dry run)
"""
import glob
import sys
import time

import click
import numpy as np

import speechlstm
from speechlstm import load_model
from speechlstm.cli import PipelineCommand

SHIPPED = ["commands", "commands-ensemble", "commands-distilled", "commands-stream"]
MAX_POSTERIOR_DIFF = 1e-3  # largest |p_cpu - p_device| allowed in any frame and class


def check(device: str = "cuda") -> int:
    """Compare every shipped model on ``device`` with the CPU; the exit status (1 if any differs)."""
    bad = 0
    for name in SHIPPED:
        cpu, dev = load_model(name), load_model(name, device=device)
        diffs, same, n, t_cpu, t_dev = [], 0, 0, [], []
        for wav in sorted(glob.glob("audio_samples/*.wav")):
            y = speechlstm.load_audio(wav)
            lc, _ = cpu.log_probs(y)
            ld, _ = dev.log_probs(y)
            diffs.append(float(np.max(np.abs(np.exp(lc) - np.exp(ld)))))
            t0 = time.perf_counter()
            a = cpu.transcribe(y)["text"]
            t_cpu.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            b = dev.transcribe(y)["text"]
            t_dev.append(time.perf_counter() - t0)
            same += a == b
            n += 1
            if a != b:
                print(f"  {name} {wav}: cpu {a!r} {dev.device} {b!r}")
        ok = same == n and max(diffs) < MAX_POSTERIOR_DIFF
        bad += not ok
        print(f"{name}: {same}/{n} transcripts equal, max |posterior diff| {max(diffs):.2e}, "
              f"median s/file cpu {np.median(t_cpu):.3f} {dev.device} {np.median(t_dev):.3f} -> {'OK' if ok else 'FAIL'}")
    return 1 if bad else 0


@click.command(cls=PipelineCommand)
@click.argument("device", type=click.Choice(["cuda", "cpu"]), default="cuda")
def main(device):
    """Every shipped model on DEVICE (cuda; cpu: a dry run) against the CPU, on audio_samples/."""
    sys.exit(check(device))


if __name__ == "__main__":
    main()
