#!/usr/bin/env bash
# One prepared check for a GPU host (under 5 minutes): the CUDA tests on the real GPU (every test in
# tests/test_gpu_*.py, requires_cuda included) and the numba.cuda vs cuDNN benchmark (inference and a training step).
#   bash pipelines/gpu_check.sh            # from the repository root
set -euo pipefail
cd "$(dirname "$0")/.."
unset NUMBA_ENABLE_CUDASIM
export PYTHONUNBUFFERED=1
python3 -c "import speechlstm" 2>/dev/null || python3 -m pip install -q -e . --no-deps
python3 -c "from numba import cuda; assert cuda.is_available(), 'numba.cuda sees no GPU'; print(cuda.get_current_device().name)"
timeout 200 python3 -m pytest -q -p no:cacheprovider -o addopts="" tests/test_gpu_lstm.py tests/test_gpu_train.py
timeout 90 python3 pipelines/bench_gpu.py --batch 32 --batch 256 --repeats 3
