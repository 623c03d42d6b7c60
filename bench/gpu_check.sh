#!/usr/bin/env bash
# The GPU check in one call, for a fresh GPU machine (the device tool's H100 or H200): build with
# CUDA, run the whole test suite (the CUDA tests included), compute-sanitizer memcheck over the
# CUDA kernel tests, then the two GPU bench suites (gpu-kernels, gpu-train).
#
# Usage: bash bench/gpu_check.sh [all|bench|test] [--quick]
#   all    (default) build, tests, sanitizer, gpu-kernels, gpu-train
#   bench  only the two bench suites, against the build already installed on this (warm)
#          machine, with more time each; it builds first when no fastnn with CUDA is installed
#   test   build, tests, sanitizer
#   --quick  the suites' quick mode (smaller sizes, fewer repeats)
#
# Time: everything stays inside GPU_CHECK_BUDGET seconds (default 540: one device `run` call is
# cut at 600). Each phase has a cap (CAP_* below); `timeout` stops it at its cap or at the
# budget's end, whichever comes first, and the script goes on with the next phase. The bench
# suites also get a deadline (FASTNN_BENCH_DEADLINE) so that they stop measuring in time to
# print and write their tables. A phase that fails or times out is recorded in the report.
#
# Output in $OUT (default ./gpu_out), 7 files (the device tool brings back at most 8):
#   report.md                        date, nvidia-smi, versions, each phase's status and time,
#                                    and both suites' markdown tables
#   gpu-kernels.md, gpu-train.md     the tables alone, for bench/RESULTS.md
#   gpu-kernels.json, gpu-train.json every number the suites measured
#   check.log                        build, tests and sanitizer output
#   bench.log                        both suites' output (rows are printed as they are measured)
# GPU_CHECK_DRY=1 prints the phases with their caps and runs none of them (for tests).
set -uo pipefail
cd "$(dirname "$0")/.."

MODE=all
QUICK=""
for arg in "$@"; do
  case "$arg" in
    all|bench|test) MODE=$arg ;;
    --quick) QUICK=--quick ;;
    *) echo "usage: bash bench/gpu_check.sh [all|bench|test] [--quick]" >&2; exit 2 ;;
  esac
done

OUT="${OUT:-gpu_out}"
mkdir -p "$OUT"
BUDGET=${GPU_CHECK_BUDGET:-540}
DRY=${GPU_CHECK_DRY:-}
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
T0=$SECONDS
STARTED="$(date -u '+%Y-%m-%d %H:%M:%S UTC')"

# Phase caps in seconds. In "bench" mode the suites have the whole budget to themselves.
CAP_BUILD=${CAP_BUILD:-200}
CAP_TESTS=${CAP_TESTS:-150}
CAP_SANITIZER=${CAP_SANITIZER:-90}
if [ "$MODE" = bench ]; then
  CAP_KERNELS=${CAP_KERNELS:-180}
  CAP_TRAIN=${CAP_TRAIN:-330}
else
  CAP_KERNELS=${CAP_KERNELS:-90}
  CAP_TRAIN=${CAP_TRAIN:-150}
fi

REPORT="$OUT/report.md"
CHECK_LOG="$OUT/check.log"
BENCH_LOG="$OUT/bench.log"
: >"$CHECK_LOG"
: >"$BENCH_LOG"
PHASES="| phase | status | seconds | cap s |
| --- | --- | ---: | ---: |"

machine_info() {
  echo '```'
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi 2>&1
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem \
      --format=csv 2>&1
  else
    echo "nvidia-smi: not found"
  fi
  nvcc --version 2>&1 | tail -2 || true
  "$PY" -c "import sys, torch; print('python', sys.version.split()[0], '| torch', torch.__version__, '| cuda', torch.version.cuda)" 2>&1 || true
  "$PY" -c "import fastnn; fastnn.show_config(print_out=True)" 2>&1 | tail -20 || true
  echo "fastnn commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo '```'
}

write_report() {
  {
    echo "# fastnn GPU check, $STARTED"
    echo
    echo "Mode \`$MODE\`${QUICK:+ (quick)}, budget ${BUDGET} s, $((SECONDS - T0)) s used."
    echo
    echo "## Machine"
    echo
    echo "$MACHINE"
    echo
    echo "## Phases"
    echo
    echo "$PHASES"
    echo
    for suite in gpu-kernels gpu-train; do
      if [ -s "$OUT/$suite.md" ]; then
        cat "$OUT/$suite.md"
        echo
      fi
    done
  } >"$REPORT"
}

# phase NAME CAP LOG command...: runs the command under `timeout`, its output appended to LOG.
phase() {
  local name=$1 cap=$2 log=$3
  shift 3
  local left=$((BUDGET - (SECONDS - T0)))
  if ((left < 30)); then
    echo "== $name: skipped, the time budget is spent" | tee -a "$log"
    PHASES+=$'\n'"| $name | skipped: budget spent | 0 | $cap |"
    write_report
    return 1
  fi
  ((cap > left - 5)) && cap=$((left - 5))
  echo "== $name (cap $cap s, $left s of the budget left): $*" | tee -a "$log"
  if [ -n "$DRY" ]; then
    PHASES+=$'\n'"| $name | dry run | 0 | $cap |"
    write_report
    return 0
  fi
  local t=$SECONDS rc status mark
  mark=$(wc -l <"$log")
  # The suites stop starting new measurements 20 s before the cap, to write their tables.
  FASTNN_BENCH_DEADLINE=$(($(date +%s) + cap - 20)) timeout -k 10 "$cap" "$@" >>"$log" 2>&1
  rc=$?
  case $rc in
    0) status=ok ;;
    124 | 137) status="timed out at $cap s" ;;
    *) status="failed (exit $rc)" ;;
  esac
  PHASES+=$'\n'"| $name | $status | $((SECONDS - t)) | $cap |"
  tail -n +"$((mark + 1))" "$log" | tail -n "${TAIL_LINES:-20}"
  echo "== $name: $status after $((SECONDS - t)) s"
  write_report
  return $rc
}

build() {
  phase build "$CAP_BUILD" "$CHECK_LOG" env FASTNN_CUDA=ON CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    "$PY" -m pip install --no-build-isolation --no-deps -q .
  if [ -z "$DRY" ]; then
    MACHINE="$(machine_info)"  # now with fastnn's own view of the GPU
    write_report
  fi
}

tests() {
  local par=()
  # pytest-xdist (in the GPU image) spreads the suite over 4 processes.
  if [ -z "$DRY" ] && "$PY" -c "import xdist" 2>/dev/null; then par=(-n 4); fi
  phase tests "$CAP_TESTS" "$CHECK_LOG" "$PY" -m pytest -q -p no:cacheprovider "${par[@]}" tests
  if ! command -v compute-sanitizer >/dev/null && [ -z "$DRY" ]; then
    PHASES+=$'\n'"| sanitizer | skipped: compute-sanitizer not found | 0 | 0 |"
    return
  fi
  phase sanitizer "$CAP_SANITIZER" "$CHECK_LOG" compute-sanitizer --tool memcheck \
    --error-exitcode 3 --print-limit 20 "$PY" -m pytest -q -x -p no:cacheprovider \
    tests/test_*_gpu.py
}

benches() {
  TAIL_LINES=60 phase gpu-kernels "$CAP_KERNELS" "$BENCH_LOG" "$PY" -m bench gpu-kernels $QUICK \
    --json "$OUT/gpu-kernels.json" --markdown "$OUT/gpu-kernels.md"
  TAIL_LINES=60 phase gpu-train "$CAP_TRAIN" "$BENCH_LOG" "$PY" -m bench gpu-train $QUICK \
    --json "$OUT/gpu-train.json" --markdown "$OUT/gpu-train.md"
}

if [ -n "$DRY" ]; then
  MACHINE="(dry run)"
else
  MACHINE="$(machine_info)"
fi
echo "$MACHINE"
write_report

case $MODE in
  all)
    build
    tests
    benches
    ;;
  test)
    build
    tests
    ;;
  bench)
    if [ -z "$DRY" ] && ! "$PY" -c "import fastnn, sys; sys.exit(not fastnn.cuda.is_compiled())" 2>/dev/null; then
      echo "fastnn with CUDA is not installed here: building first"
      build
    fi
    benches
    ;;
esac

write_report
echo
echo "$PHASES"
echo "report: $REPORT ($((SECONDS - T0)) s)"
