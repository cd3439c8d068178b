#!/usr/bin/env bash
# The GPU check in one command, on a machine with an NVIDIA GPU (CUDA 12 driver): installs deltanet, CuPy and
# PyTorch (the default Linux wheel, built for CUDA), then runs benchmarks/gpu_check.py (parity with the CPU,
# throughput against PyTorch CUDA eager). Under 8 minutes. Results: $OUT/gpu.md or benchmarks/results/gpu.md.
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || { echo "no NVIDIA GPU visible"; exit 2; }
python -m pip install -q -e ".[gpu]"
python -m pip install -q torch
python -c "import cupy; print('CuPy', cupy.__version__, 'sees', cupy.cuda.runtime.getDeviceCount(), 'GPU(s)')"
DELTANET_FAST=1 timeout 450 python benchmarks/gpu_check.py
