"""Timing helpers shared by the benchmark pipelines."""
import platform
import statistics
import time


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else ``platform.processor()``): ratios
    against PyTorch depend on it (README, Speed)."""
    from speechlstm.linalg import cpuinfo_field

    return cpuinfo_field("model name") or platform.processor() or "unknown CPU"


def median_time(fn, repeats: int, warmup: bool = True) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs (after one warm-up call)."""
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
