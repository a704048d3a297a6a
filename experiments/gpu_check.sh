#!/usr/bin/env bash
# One-GPU check, under 8 minutes on an H200: install attrnet editable, run the whole test suite
# on the GPU (accelerator=auto picks it; tests marked `gpu` run), then the training benchmark
# (presets against the plain loop, the NaN guard's cost, a real run's epoch against steady state).
#   bash experiments/gpu_check.sh [WHEELS_DIR] [OUT_DIR]
# WHEELS_DIR: wheels to install first on a machine without a package registry (e.g. Hydra's:
# hydra-core, omegaconf, antlr4-python3-runtime). The install is editable on purpose: a plain
# `pip install .` run from the checkout would import attrnet from the source folder.
set -uo pipefail
cd "$(dirname "$0")/.."
wheels=${1:-}
out=${2:-experiments/results}
mkdir -p "$out"
if [ -n "$wheels" ]; then
    python3 -m pip install -q --no-index --no-deps "$wheels"/*.whl || exit 1
fi
python3 -m pip install -q --no-deps --no-build-isolation -e . || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
export PYTHONUNBUFFERED=1 ATTRNET_CACHE=${ATTRNET_CACHE:-/tmp/attrnet-gpu-check-cache}

workers=""
python3 -c "import xdist" 2>/dev/null && workers="-n 8"
timeout 300 python3 -m pytest -q $workers -rs 2>&1 | tee "$out/gpu_check_tests.log" | tail -15
suite=${PIPESTATUS[0]}

bench="python3 experiments/bench_train.py --skip-data-path --sizes 256x128"
timeout 200 $bench --presets gpu gpu_4gb --memory-cap-gib 3.5 --profile 10 \
    --out "$out/bench_train_gpu.json" 2>&1 | tail -12
# the NaN guard's cost: the same gpu run without it
timeout 60 $bench --presets gpu --models resnet50 --skip-plain --skip-pil \
    --override '~callbacks.nonfinite_loss' --out "$out/bench_train_gpu_noguard.json" 2>&1 | tail -3
# the CUDA-graph switch: the same gpu run with the trunk captured in CUDA graphs
timeout 120 $bench --presets gpu --models resnet50 --skip-plain --skip-pil \
    --override model.net.compile=reduce-overhead --out "$out/bench_train_gpu_graphs.json" 2>&1 | tail -3
# a real run's epoch (validation, checkpoints, logging) against steady state x steps
timeout 150 $bench --presets gpu --models resnet50 --skip-plain --skip-pil --real-epochs 3 \
    --out "$out/bench_train_real_epoch.json" 2>&1 | tail -3
# timm backbones beside ResNet50 (needs timm on the machine; skipped rows say why)
timeout 120 python3 experiments/bench_backbones.py --size 256x128 --batch 64 --steps 20 \
    --out "$out/bench_backbones_gpu.json" 2>&1 | tail -8
echo "test suite exit status: $suite"
exit "$suite"
