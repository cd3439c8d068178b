#!/usr/bin/env bash
# The GPU check in one command, on a machine with an NVIDIA GPU (a CUDA 12 or newer driver), under 8 minutes:
#
#   bash benchmarks/gpu_check.sh            # results: $OUT/gpu.md, $OUT/gpu.json, $OUT/gpu_check.log
#                                           # (OUT unset: benchmarks/results/)
#
# 1. finds a Python with NumPy and Numba (PYTHON, else python3), and runs deltanet from src/ (no install: no
#    build backend to fetch);
# 2. CuPy: used if it imports and runs a kernel and a cuBLAS product; else pip installs cupy-cuda12x, and, if
#    CuPy then finds no CUDA libraries, cupy-cuda12x[ctk] (the CUDA libraries from pip). None of these: exit 3;
# 3. PyTorch for the comparison, optional: used if it imports with CUDA; else (GPU_CHECK_TORCH=auto, the default)
#    one pip install within the time left (at most TORCH_INSTALL_SECONDS, 150), and skipped with a line in the
#    report if that fails; GPU_CHECK_TORCH=skip never installs it;
# 4. runs benchmarks/gpu_check.py with the time left (it writes its report after every section).
#
# Exit status: gpu_check.py's (0 passed, 1 a parity check failed or raised), 2 no GPU, 3 no CuPy.
set -uo pipefail
cd "$(dirname "$0")/.."
START=$(date +%s)
BUDGET=${GPU_CHECK_SECONDS:-470}                      # the whole script: under 8 minutes
OUT_DIR=${OUT:-benchmarks/results}
mkdir -p "$OUT_DIR"
LOG="$OUT_DIR/gpu_check.log"
left() { echo $((BUDGET - ($(date +%s) - START))); }
say() { echo "gpu_check.sh [$(($(date +%s) - START)) s]: $*"; }

PY=${PYTHON:-python3}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export PIP_DISABLE_PIP_VERSION_CHECK=1
pip_install() {  # pip into this Python; where the system refuses (PEP 668), the same with --break-system-packages
    "$PY" -m pip install -q "$@" || "$PY" -m pip install -q --break-system-packages "$@"
}

main() {
if ! nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; then
    say "FAILED: no NVIDIA GPU visible (nvidia-smi)"; return 2
fi
"$PY" -c "import numpy, numba" 2>/dev/null || { say "installing numpy, numba"; pip_install "numpy>=1.26" "numba>=0.60"; }
"$PY" -c "import deltanet, sys; print('deltanet from', deltanet.__file__, '| Python', sys.version.split()[0])" \
    || { say "FAILED: deltanet does not import from src/"; return 3; }

CUPY_PROBE='
import cupy
x = cupy.arange(4, dtype=cupy.float32)
assert float(x @ x) == 14.0                                             # cuBLAS
k = cupy.ElementwiseKernel("T x", "T y", "y = x * x + 1", "deltanet_probe", options=("--fmad=false",))
assert float(k(x).sum()) == 18.0                                        # NVRTC
print("CuPy", cupy.__version__, "runs kernels on", cupy.cuda.runtime.getDeviceCount(), "GPU(s)")
'
if ! "$PY" -c "$CUPY_PROBE" 2>/dev/null; then
    say "installing cupy-cuda12x"
    timeout 150 bash -c "$(declare -f pip_install); PY='$PY'; pip_install cupy-cuda12x" || say "pip install cupy-cuda12x failed"
    if ! "$PY" -c "$CUPY_PROBE"; then
        say "CuPy does not run yet (error above): installing cupy-cuda12x[ctk] (the CUDA libraries from pip)"
        timeout 200 bash -c "$(declare -f pip_install); PY='$PY'; pip_install 'cupy-cuda12x[ctk]'" || say "pip install cupy-cuda12x[ctk] failed"
        "$PY" -c "$CUPY_PROBE" || { say "FAILED: CuPy cannot run on this GPU (see above)"; return 3; }
    fi
fi

TORCH_PROBE='import torch; assert torch.cuda.is_available(), "no CUDA in this PyTorch build"; print("PyTorch", torch.__version__, "CUDA", torch.version.cuda)'
if ! "$PY" -c "$TORCH_PROBE" 2>/dev/null; then
    room=$(( $(left) - 300 ))                          # keep 5 minutes for the check itself
    cap=${TORCH_INSTALL_SECONDS:-150}
    (( room > cap )) && room=$cap
    if [[ "${GPU_CHECK_TORCH:-auto}" == "skip" ]]; then
        say "PyTorch: not installed, GPU_CHECK_TORCH=skip: the comparison will be skipped"
    elif (( room < 30 )); then
        say "PyTorch: $room s left for its install (TORCH_INSTALL_SECONDS, the budget): the comparison will be skipped"
    else
        say "installing torch (at most $room s)"
        timeout "$room" bash -c "$(declare -f pip_install); PY='$PY'; pip_install torch" \
            || say "PyTorch could not be installed in $room s: the comparison will be skipped"
        "$PY" -c "$TORCH_PROBE" || say "PyTorch has no CUDA here: the comparison will be skipped"
    fi
fi

remaining=$(( $(left) - 10 ))
say "running benchmarks/gpu_check.py (budget $remaining s)"
OUT="$OUT_DIR" DELTANET_FAST=1 timeout $((remaining + 5)) "$PY" benchmarks/gpu_check.py --budget $((remaining - 60))
status=$?
(( status == 124 )) && say "FAILED: gpu_check.py ran out of time; $OUT_DIR/gpu.md holds the sections it finished"
say "done, exit status $status; report: $OUT_DIR/gpu.md"
return $status
}

main "$@" 2>&1 | tee "$LOG"
exit "${PIPESTATUS[0]}"
