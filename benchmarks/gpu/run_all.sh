#!/usr/bin/env bash
# Every GPU check and benchmark of resfx in one run, for the device machine (H100/H200).
# Writes its logs and the benchmark report under $OUT (default ./gpu-out).
# Dry run on a CPU machine: DEVICE=cpu BENCH_FLAGS="--quick" bash benchmarks/gpu/run_all.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-$PWD/gpu-out}"
DEVICE="${DEVICE:-cuda}"
BENCH_FLAGS="${BENCH_FLAGS:---num-workers 8}"
mkdir -p "$OUT/bench"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src:${PYTHONPATH:-}" MPLBACKEND=Agg
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
    export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
{
    date -u
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 || true
    python3 -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')"
} 2>&1 | tee "$OUT/machine.txt"
python3 -m pytest tests/test_cuda.py -q -p no:cacheprovider 2>&1 | tee "$OUT/cuda_tests.txt"
RESFX_BENCH_DEVICE="$DEVICE" python3 -m pytest -c benchmarks/pytest.ini benchmarks --benchmark-only \
    --benchmark-columns=min,median,max,rounds 2>&1 | tee "$OUT/pytest_benchmarks.txt"
# the resfx/torchvision comparison alone, in a fresh process, to separate it from the suite's state
RESFX_BENCH_DEVICE="$DEVICE" python3 -m pytest -c benchmarks/pytest.ini benchmarks/bench_resnet.py \
    --benchmark-only --benchmark-columns=min,median,max,rounds 2>&1 | tee "$OUT/pytest_bench_resnet.txt"
# shellcheck disable=SC2086
python3 -m resfx bench --device "$DEVICE" --out "$OUT/bench" --no-progress $BENCH_FLAGS 2>&1 \
    | tee "$OUT/resfx_bench.txt"
