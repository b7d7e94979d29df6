"""Choosing the compute device."""
from __future__ import annotations

from .errors import DeviceError, ParameterError

__all__ = ["resolve_device", "check_device_name", "cuda_available", "DEVICES"]

DEVICES = ("cpu", "cuda", "auto")


def cuda_available() -> bool:
    """True when numba.cuda sees a usable GPU (or the CUDA simulator is enabled)."""
    try:
        from numba import cuda

        return bool(cuda.is_available())
    except Exception:  # pragma: no cover - broken driver installs
        return False


def simulated() -> bool:
    """True when numba.cuda is its CPU simulator (NUMBA_ENABLE_CUDASIM=1)."""
    from numba import config

    return bool(config.ENABLE_CUDASIM)


def check_device_name(device) -> str:
    """``device`` itself, if it is one of :data:`DEVICES` (whether a GPU exists is not checked)."""
    if device not in DEVICES:
        raise ParameterError(f"device must be 'cpu', 'cuda' or 'auto', got {device!r}")
    return device


def resolve_device(device: str) -> str:
    """Map "cpu" / "cuda" / "auto" to "cpu" or "cuda"; CUDA without a GPU is a clear error.

    "auto" never picks the CUDA simulator (it is for tests, and slow); "cuda" accepts it.
    """
    check_device_name(device)
    if device == "cpu":
        return "cpu"
    if device == "auto":
        return "cuda" if cuda_available() and not simulated() else "cpu"
    if cuda_available():
        return "cuda"
    raise DeviceError("device='cuda' was requested but no CUDA GPU is available (numba.cuda.is_available() is False)")
