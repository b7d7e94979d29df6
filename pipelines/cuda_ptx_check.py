"""Compile every numba.cuda kernel of speechlstm to PTX for a real GPU target, on a host with no GPU.

    pip install nvidia-cuda-nvcc-cu12          # NVVM + libdevice (part of the test extra)
    python pipelines/cuda_ptx_check.py --cc 9.0

The CUDA simulator runs kernels as Python, so it cannot catch what only the CUDA target refuses
(non-constant shared-array shapes, unsupported builtins, types that do not lower). This check runs
numba's real CUDA front end and NVVM on each kernel with the argument types the library launches
it with, and prints one line per kernel. Numba asks the current device for its compute capability
while compiling device functions; with no driver, a stand-in answers with ``--cc``. Exit status:
the number of kernels that failed.
"""
import os
import sys
import types as _types

import click


def _point_numba_at_pip_nvvm() -> None:
    if "NUMBA_CUDA_NVVM" in os.environ:
        return
    try:
        import nvidia.cuda_nvcc as nvcc
    except ImportError:
        sys.exit("cuda_ptx_check: NVVM not found; pip install nvidia-cuda-nvcc-cu12 (or set NUMBA_CUDA_NVVM "
                 "and NUMBA_CUDA_LIBDEVICE)")
    root = os.path.join(list(nvcc.__path__)[0], "nvvm")
    os.environ["NUMBA_CUDA_NVVM"] = os.path.join(root, "lib64", "libnvvm.so")
    os.environ["NUMBA_CUDA_LIBDEVICE"] = os.path.join(root, "libdevice")


def kernel_signatures():
    from numba import types
    from numba.types import boolean, int64

    f32 = {n: types.Array(types.float32, n, "C") for n in (1, 2, 3, 4)}
    f32a = {n: types.Array(types.float32, n, "A") for n in (2, 3)}  # device-array slices
    i64 = types.Array(types.int64, 1, "C")
    return {
        "_gemm_kernel": (f32[2], f32[2], f32[1], f32[2], boolean, boolean, int64, int64),
        "_gemm_kernel (strided operand)": (f32a[2], f32[2], f32[1], f32[2], boolean, boolean, int64, int64),
        "_lstm_layer": (f32[3], f32[3], i64, f32[3], f32[3], f32[3], f32[3], f32[3], boolean, f32[4], f32[4]),
        "_lstm_layer_backward": (f32[4], f32[4], f32a[3], f32[3], i64, f32[3], f32[3], f32[3], f32[3], f32[3],
                                 f32[3]),
        "_lstm_step": (int64, f32[3], f32[3], i64, f32[3], f32[3], f32[3], f32[3], f32[3], boolean, f32[4], f32[4]),
        "_lstm_back_gates": (int64, f32[4], f32[4], f32a[3], i64, f32[3], f32[3], f32[3], f32[3]),
        "_lstm_back_hidden": (int64, f32[3], f32[3], i64, f32[3]),
        "_previous_h": (f32[3], f32a[3], i64, int64, f32[3]),
        "_column_sums": (f32[2], f32[1]),
        "_fill_zero": (f32[1],),
        "_multiply": (f32[1], f32[1], f32[1]),
        "_log_softmax_rows": (f32[2],),
        "_greedy_ctc": (f32[3], i64, int64, types.Array(types.int64, 2, "C"), i64),
    }


@click.command()
@click.option("--cc", default="9.0", show_default=True, help="Compute capability to compile for (major.minor).")
def main(cc):
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        sys.exit("cuda_ptx_check: unset NUMBA_ENABLE_CUDASIM (the simulator compiles nothing)")
    _point_numba_at_pip_nvvm()
    major, minor = (int(v) for v in cc.split("."))
    import numba.cuda.dispatcher as dispatcher
    from numba import cuda

    if not cuda.is_available():  # no driver: answer numba's compute-capability question ourselves
        dispatcher.get_current_device = lambda: _types.SimpleNamespace(compute_capability=(major, minor))
    from speechlstm import gpu_lstm

    failed = 0
    for name, sig in kernel_signatures().items():
        kernel = getattr(gpu_lstm, name.split()[0])
        try:
            ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=(major, minor))
            spill = " (uses local memory)" if ".local " in ptx else ""
            print(f"ok    {name}: {len(ptx.splitlines())} lines of PTX for sm_{major}{minor}{spill}")
        except Exception as exc:  # report every kernel, then fail
            failed += 1
            print(f"FAIL  {name}: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
    sys.exit(failed)


if __name__ == "__main__":
    main()
