#!/usr/bin/env bash
# The GPU check, on a machine with the NVIDIA driver and PyTorch (2.11, CUDA 13) at its python3
# but no Rust: two resnet18 runs on tch:cuda:0 with a freeze and a thaw through the CLI, a
# CUDA out-of-memory run beside a healthy one, and PyTorch eager on the same GPU; everything
# into DIR/gpu-check.json (default gpu-check-result, or $OUT when set).
#
# The thaw binary travels in gpu-check/ (built here by scripts/build-gpu-check.sh, against
# torch 2.11) and runs on the local torch's libraries. THAW_GPU_DEVICE, THAW_GPU_IMAGE_SIZE,
# THAW_GPU_BATCH, THAW_GPU_SECONDS, THAW_GPU_BIN and THAW_GPU_PYTHON change it (the README's
# "GPU check" shows how it is tried on tch:cpu without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
python="${THAW_GPU_PYTHON:-python3}"
torch_lib="$("$python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export THAW_GPU_PYTHON="$python" PYTHONUNBUFFERED=1
exec "$python" scripts/gpu_check.py "${1:-${OUT:-gpu-check-result}}"
