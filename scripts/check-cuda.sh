#!/usr/bin/env bash
# `cargo check --features cuda` without a GPU or a system CUDA install: the CUDA 13.0 compiler
# and headers come from NVIDIA's Python wheels (a package registry), and the kernels are built
# for a compute capability given here (no GPU is queried).
#
# candle 0.11.1 uses cudarc 0.19, which has bindings up to CUDA 13.4; the 13.0 wheels match
# (nvcc, runtime headers, CCCL, NVVM and the CRT headers, all pinned to 13.0 so pip does not
# mix in a newer NVVM).
#
# Environment: CUDA_WHEELS (install folder, default ~/.cache/tensor-frames/cuda-13.0),
# CUDA_COMPUTE_CAP (default 90, an H100), CARGO_TARGET_DIR (default target/cuda, so the CPU
# build is not invalidated).
set -euo pipefail
wheels="${CUDA_WHEELS:-$HOME/.cache/tensor-frames/cuda-13.0}"
if [ ! -x "$wheels/nvidia/cu13/bin/nvcc" ]; then
  python3 -m pip install --quiet --target "$wheels" \
    "nvidia-cuda-nvcc==13.0.*" "nvidia-cuda-runtime==13.0.*" "nvidia-cuda-cccl==13.0.*" \
    "nvidia-nvvm==13.0.*" "nvidia-cuda-crt==13.0.*"
fi
cuda="$wheels/nvidia/cu13"
# nvcc looks for cicc under ../nvvm/bin and for headers under ../include.
export CUDA_HOME="$cuda" CUDA_PATH="$cuda" NVCC="$cuda/bin/nvcc"
export PATH="$cuda/bin:$PATH"
export CPATH="$cuda/include:$cuda/include/cccl${CPATH:+:$CPATH}"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
export CUDARC_CUDA_VERSION=13000
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/cuda}"
"$NVCC" --version | tail -1
cargo check --locked -p tensor-frames -p nbody --features cuda "$@"
