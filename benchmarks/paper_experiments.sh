#!/usr/bin/env bash
# The experiments recorded in docs/results.md: compare (all methods, 3 seeds) and the ablation,
# on Fashion-MNIST and on the CIFAR-10 preset, at a CPU budget; then the Fig. 6-7 maps.
# Resumable: re-run the same command after an interruption.
#   bash benchmarks/paper_experiments.sh [OUT_DIR]        (default: experiments/)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-experiments}
hcal=.venv/bin/hcal
budget=(--epochs "${EPOCHS:-1}" --limit-batches "${LIMIT_BATCHES:-400}" --no-progress)
methods=$($hcal methods | awk '{print $1}' | paste -sd, -)
cifar=${CIFAR10:-../shared/data/cifar10-jpeg.tar.gz}

$hcal experiment compare --dataset fashion-mnist --methods "$methods" --seeds 0,1,2 "${budget[@]}" --out "$out/compare-fashion-mnist"
$hcal experiment ablation --dataset fashion-mnist --seeds 0,1,2 "${budget[@]}" --out "$out/ablation-fashion-mnist"
if [ -e "$cifar" ]; then
  $hcal experiment compare --dataset cifar10 --data-dir "$cifar" --backbone small-cnn --methods "$methods" --seeds 0,1,2 "${budget[@]}" --out "$out/compare-cifar10"
  $hcal experiment ablation --dataset cifar10 --data-dir "$cifar" --backbone small-cnn --seeds 0,1,2 "${budget[@]}" --out "$out/ablation-cifar10"
else
  echo "skipping CIFAR-10: $cifar not found (set CIFAR10=/path/to/cifar10-jpeg.tar.gz)" >&2
fi
# Fig. 6-7: a longer HCAL run on Fashion-MNIST, then its prototype maps at initialisation and after training.
run="$out/fashion-mnist-hcal-maps"
[ -f "$run/metrics.json" ] || $hcal fit --dataset fashion-mnist --epochs "${MAP_EPOCHS:-3}" --no-progress --run-dir "$run" --overwrite
$hcal visualize --ckpt "$run/checkpoints/best.ckpt" --samples 2000 --out "$out/figures"
