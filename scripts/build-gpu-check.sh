#!/usr/bin/env bash
# Builds what scripts/gpu-check.sh needs on a GPU machine without Rust: a release thaw (and the
# step_time bench) with --features tch against PyTorch 2.11.0 (the GPU machines' version; burn-tch is made for 2.9,
# hence LIBTORCH_BYPASS_VERSION_CHECK), stripped, in gpu-check/ (ignored by git; carried to
# the machine as it is). The venv and the build live in the CI cache outside the clone.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${THAW_CI_CACHE:-$HOME/.cache/thaw-ci}"
venv="$cache/venv-torch211"
if ! "$venv/bin/python" -c 'import sys, torch; sys.exit(torch.__version__.split("+")[0] != "2.11.0")' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet torch==2.11.0
fi
export PATH="$venv/bin:$PATH" LIBTORCH_USE_PYTORCH=1 LIBTORCH_BYPASS_VERSION_CHECK=1
unset LIBTORCH
export CARGO_TARGET_DIR="$cache/target-gpu"
cargo build --release --features tch
# The step-time bench too: thaw's phases against PyTorch's on the GPU, each alone on it.
bench="$(cargo bench --features tch --bench step_time --no-run --message-format=json-render-diagnostics |
  python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "step_time" and m.get("executable"):
        print(m["executable"])')"
mkdir -p gpu-check
cp "$CARGO_TARGET_DIR/release/thaw" gpu-check/thaw
cp "$bench" gpu-check/step_time
strip gpu-check/thaw gpu-check/step_time
ls -l gpu-check/thaw gpu-check/step_time
