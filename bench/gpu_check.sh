#!/usr/bin/env bash
# One go on a fresh GPU machine (the device tool's H100): build with CUDA, run the whole test
# suite (the CUDA tests included), compute-sanitizer over the CUDA tests, and the GPU benchmarks.
# Everything it prints also lands in $OUT (or ./gpu_out) for the record in bench/RESULTS.md and
# bench/GPU_NOTES.md. Usage: bash bench/gpu_check.sh [--quick]
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu_out}"
mkdir -p "$OUT"
QUICK="${1:-}"
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || true
  nvcc --version | tail -2
} 2>&1 | tee "$OUT/machine.txt"

FASTNN_CUDA=ON pip install --no-build-isolation --no-deps -q . 2>&1 | tail -20 | tee "$OUT/build.txt"
python -c "import fastnn; fastnn.show_config(print_out=True)" 2>&1 | tee "$OUT/config.txt"

python -m pytest -q tests -x -p no:cacheprovider 2>&1 | tail -30 | tee "$OUT/tests.txt"

if command -v compute-sanitizer >/dev/null; then
  compute-sanitizer --tool memcheck --error-exitcode 3 \
    python -m pytest -q -p no:cacheprovider tests/test_cuda_*.py 2>&1 | tail -30 \
    | tee "$OUT/sanitizer.txt"
fi

python -m bench gpu-kernels $QUICK --json "$OUT/gpu-kernels.json" 2>&1 | tee "$OUT/bench.txt"
