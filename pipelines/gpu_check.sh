#!/usr/bin/env bash
# One prepared check for a GPU host (under 5 minutes): the CUDA tests on the real GPU (every test in
# tests/test_gpu_*.py, requires_cuda included), the numba.cuda vs cuDNN benchmark (inference, a training step, and one
# with dropout), and every shipped model on CUDA against the CPU on audio_samples/ (pipelines/cuda_models_check.py).
#   bash pipelines/gpu_check.sh            # from the repository root
# On a host with no network (numba, numba-cuda, torch and scipy there, but no librosa or soundfile),
# bring wheels in a folder named by GPU_WHEELS (default .gpuwheels), made here with e.g.
#   pip download -d .gpuwheels --no-deps --only-binary=:all: --python-version 3.12 \
#     --platform manylinux_2_28_x86_64 --implementation cp \
#     numpy==2.4.6 librosa==0.11.0 audioread soxr pooch decorator platformdirs soundfile cffi pycparser
# (numpy 2.4: the numba-cuda seen on such a host still calls np.row_stack, which numpy 2.5 removed).
set -euo pipefail
cd "$(dirname "$0")/.."
unset NUMBA_ENABLE_CUDASIM
export PYTHONUNBUFFERED=1
WHEELS="${GPU_WHEELS:-.gpuwheels}"
if [ -d "$WHEELS" ]; then
    python3 -m pip install -q --no-index --find-links "$WHEELS" "$WHEELS"/*.whl 2>&1 | grep -v WARNING || true
fi
(cd / && python3 -c "import speechlstm" 2>/dev/null) || export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
python3 -c "import numba, numpy; print('numba', numba.__version__, 'numpy', numpy.__version__)"
python3 -c "from numba import cuda; assert cuda.is_available(), 'numba.cuda sees no GPU'; print(cuda.get_current_device().name)"
timeout 200 python3 -m pytest -q -p no:cacheprovider -o addopts="" tests/test_gpu_lstm.py tests/test_gpu_train.py
timeout 150 python3 pipelines/bench_gpu.py --batch 32 --batch 256 --repeats 3 --dropout 0.2
timeout 150 python3 pipelines/cuda_models_check.py cuda
