#!/usr/bin/env bash
# GPU check (issue 12): each task's default model on CUDA vs CPU (fp32 within 1e-3 relative,
# bf16/fp16 same top-1), the app's handlers on CUDA, and a throughput table. A few minutes on a
# CUDA machine; on a CPU-only machine it runs the CPU parts, says "no CUDA device" and exits 0.
#   bash scripts/gpu_check.sh [--quick] [--json out.json]
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}" GRADIO_ANALYTICS_ENABLED=False
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
exec python scripts/gpu_check.py "$@"
