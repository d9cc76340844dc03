#!/usr/bin/env bash
# Every GPU check and benchmark of resfx in one run, for the device machine (one H100/H200),
# sized for its 10-minute command limit: each part has its own timeout, the most important
# first, and what a part printed is kept even when it runs out of time.
#
#   bash benchmarks/gpu/run_all.sh          # writes $OUT (default ./gpu-out)
#   PART=2 bash benchmarks/gpu/run_all.sh   # the second part alone (a second command)
#
# Part 1: the CUDA tests (compiled and CUDA-graphed paths included), then `resfx bench` with
# every step mode eager and compiled, fp32 and bf16, interleaved, and the seed job against
# the seed's loop as written (0 workers), eager and compiled. Part 2: the seed job against
# the loop with 8 workers, and the other compile mode for the frozen path.
# Everything is written under $WORK and packed into $OUT/results.tgz at the end (the
# device tool brings back at most 8 files); the logs are also printed.
# Dry run on a CPU machine: DEVICE=cpu QUICK=1 bash benchmarks/gpu/run_all.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-$PWD/gpu-out}"
WORK="${WORK:-/tmp/resfx-gpu-work}"  # outside $OUT: the device brings back at most 8 files
DEVICE="${DEVICE:-cuda}"
PART="${PART:-1}"
COMPILE="${COMPILE:-max-autotune-no-cudagraphs}"
OTHER_COMPILE="${OTHER_COMPILE:-reduce-overhead}"
mkdir -p "$WORK"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src:${PYTHONPATH:-}" MPLBACKEND=Agg
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
    export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
if [ -n "${QUICK:-}" ]; then
    SIZES=(--quick --batch-size 4 --image-size 32 --job-trainset-size 64 --job-testset-size 32)
    TESTS=(tests/test_compiled_path.py)
else
    SIZES=(--warmup 5 --repeats 20 --steps-per-round 2)
    TESTS=(tests/test_cuda.py tests/test_compiled_path.py)
fi
# The suite's shape checks need typeguard 2.13.3 (carried as a wheel); without it the tests
# run unchecked, as users run.
PYTEST_OVERRIDE=()
python3 -c "import typeguard" 2>/dev/null || PYTEST_OVERRIDE=(-o "addopts=-p no:cacheprovider")

part() {  # part NAME SECONDS COMMAND...: run with a time limit, log to $WORK/NAME.txt
    local name=$1 seconds=$2
    shift 2
    echo "=== $name (limit ${seconds}s): $*" | tee -a "$WORK/parts.txt"
    local began=$SECONDS
    timeout "$seconds" "$@" 2>&1 | tee "$WORK/$name.txt"
    echo "=== $name: exit ${PIPESTATUS[0]} after $((SECONDS - began))s" | tee -a "$WORK/parts.txt"
}

{
    date -u
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 || true
    python3 -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')"
    git log -1 --format='resfx commit %H %s' 2>/dev/null || true
} 2>&1 | tee "$WORK/machine.txt"

if [ "$PART" = 1 ]; then
    part cuda_tests 150 python3 -m pytest "${TESTS[@]}" -q -p no:cacheprovider "${PYTEST_OVERRIDE[@]}"
    part bench 330 python3 -m resfx bench --device "$DEVICE" --compile "$COMPILE" --no-sweep \
        --num-workers 0 --out "$WORK/bench" --overwrite --no-progress "${SIZES[@]}"
else
    part job_8_workers 300 python3 -m resfx bench --device "$DEVICE" --compile "$COMPILE" \
        --no-steps --num-workers 8 --out "$WORK/job8" --overwrite --no-progress "${SIZES[@]}"
    part other_compile 200 python3 -m resfx bench --device "$DEVICE" --compile "$OTHER_COMPILE" \
        --no-job --no-sweep --mode frozen-folded --mode forward-only --mode head-step \
        --mode frozen-compiled --mode forward-compiled --mode head-graphed \
        --out "$WORK/other_compile" --overwrite --no-progress "${SIZES[@]}"
fi
tar czf "$OUT/results-part$PART.tgz" -C "$WORK" .
cp "$WORK/parts.txt" "$OUT/parts-part$PART.txt"
