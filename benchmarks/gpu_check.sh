#!/usr/bin/env bash
# The GPU checks of the performance work, in one run on a CUDA machine:
#   1. benchmarks/bench.py on the GPU (step ratios with and without --compile, loader vs model, scaling);
#   2. short `hcal fit` runs through every GPU path: precision 32 / bf16-mixed / 16-mixed,
#      channels-last, --compile, and --augment-on loader vs device at full epochs, with their
#      training times (the in-memory pipeline's point: the GPU is not starved by per-image work);
#   3. the test files that touch those paths, with CUDA visible.
#
# usage: bash benchmarks/gpu_check.sh OUT_DIR [PYTHON]
#   HCAL_FASHION_MNIST  folder of the Fashion-MNIST idx files (default: the dataset's own lookup)
#   HCAL_CIFAR10        the CIFAR-10 JPEG folders or .tar.gz (default: ../shared/data/cifar10-jpeg.tar.gz)
#   DEVICE              cuda (default) or cpu, to dry-run this script on a machine without a GPU
#   QUICK=1             tiny sizes everywhere (the dry run)
#   FULL=1              also fits with --compile, 16-mixed, 32 and the per-image loader on Fashion-MNIST
# Each step has its own time limit and failures do not stop the later steps; OUT_DIR/summary.txt
# lists every step with its exit status and seconds.
set -u
OUT=${1:?usage: gpu_check.sh OUT_DIR [PYTHON]}
PY=${2:-python3}
DEVICE=${DEVICE:-cuda}
QUICK=${QUICK:-0}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
FMNIST=${HCAL_FASHION_MNIST:-}
CIFAR=${HCAL_CIFAR10:-$ROOT/../shared/data/cifar10-jpeg.tar.gz}
RUNS=$(mktemp -d)
mkdir -p "$OUT"
: > "$OUT/summary.txt"

step() {  # step NAME LIMIT_S LOG CMD...
    local name=$1 limit=$2 log=$3; shift 3
    local t0=$SECONDS
    echo "=== $name: $*" >> "$log"
    timeout "$limit" "$@" >> "$log" 2>&1
    local rc=$?
    echo "$name rc=$rc $((SECONDS - t0)) s" >> "$OUT/summary.txt"
    echo "=== $name rc=$rc $((SECONDS - t0)) s" >> "$log"
}

{
    date -u
    command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    nproc
    "$PY" -c "import torch, torchvision, lightning, torchmetrics; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'lightning', lightning.__version__, 'torchmetrics', torchmetrics.__version__); print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')"
} > "$OUT/env.txt" 2>&1

# 1. the benchmark
bench_args=(--device "$DEVICE" --json "$OUT/bench.json" --compile)
[ "$QUICK" = 1 ] && bench_args+=(--quick --only step)
step bench 300 "$OUT/bench.txt" env HCAL_FASHION_MNIST="$FMNIST" HCAL_CIFAR10="$CIFAR" "$PY" benchmarks/bench.py "${bench_args[@]}"

# 2. fits through the GPU paths
fit() {  # fit NAME LIMIT_S ARGS...
    local name=$1 limit=$2; shift 2
    step "fit-$name" "$limit" "$OUT/fits.txt" "$PY" -m hcal fit --no-progress --device "$DEVICE" --run-dir "$RUNS/$name" "$@"
}
fm=(--dataset fashion-mnist); [ -n "$FMNIST" ] && fm+=(--data-dir "$FMNIST")
cf=(--dataset cifar10 --data-dir "$CIFAR" --backbone resnet18-cifar)
if [ "$QUICK" = 1 ]; then lim=(--limit-batches 3); cf=(--dataset cifar10 --data-dir "$CIFAR" --backbone small-cnn); else lim=(); fi
fit fmnist-fp32-device 90 "${fm[@]}" --epochs 1 --augment-on device "${lim[@]}"
fit cifar-bf16-cl-device 120 "${cf[@]}" --epochs 1 --batch-size 128 --precision bf16-mixed --channels-last --augment-on device "${lim[@]}"
fit cifar-bf16-cl-loader8 120 "${cf[@]}" --epochs 1 --batch-size 128 --precision bf16-mixed --channels-last --augment-on loader --num-workers 8 "${lim[@]}"
[ "${FULL:-0}" = 1 ] && {  # the other paths, each seen working on an H100 on 2026-11-26
    fit fmnist-fp32-loader 90 "${fm[@]}" --epochs 1 --augment-on loader "${lim[@]}"
    fit fmnist-bf16-compile 150 "${fm[@]}" --epochs 1 --precision bf16-mixed --compile --limit-batches 200
    fit cifar-fp16-device 90 "${cf[@]}" --epochs 1 --batch-size 128 --precision 16-mixed --limit-batches 100
    fit cifar-fp32-device 90 "${cf[@]}" --epochs 1 --batch-size 128 --precision 32 --limit-batches 100
}

# 3. the tests of those paths, with CUDA visible (needs pytest there)
step tests 150 "$OUT/tests.txt" "$PY" -m pytest -q -x -p no:cacheprovider tests/unit/methods/test_hcal_gpu.py tests/unit/test_augment.py tests/e2e/test_fit_options.py tests/unit/engine/test_module.py tests/unit/methods/test_hcal.py
rm -rf "$RUNS"
cat "$OUT/summary.txt"
