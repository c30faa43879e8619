#!/usr/bin/env bash
# Compiles the CUDA kernels (crates/origami-gpu/src/cuda/kernels.cu) with NVRTC 13.0 into
# the PTX the crate embeds (src/cuda/kernels.ptx). NVRTC comes from PyPI into a venv under
# target/, so no CUDA toolkit and no GPU are needed.
#
#   scripts/make-ptx.sh           regenerate kernels.ptx (commit it with kernels.cu)
#   scripts/make-ptx.sh --check   fail if kernels.ptx is stale or an entry point is missing
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/nvrtc-venv
lib="$venv/lib/python3*/site-packages/nvidia/cu13/lib"
if ! compgen -G "$lib/libnvrtc.so.13" >/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet 'nvidia-cuda-nvrtc==13.0.*'
fi
lib_dir=$(echo "$PWD"/$lib)
export LD_LIBRARY_PATH="$lib_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

if [ "${1:-}" = "--check" ]; then
    cargo run -q -p origami-gpu --features cuda --example make_ptx -- --check
else
    cargo run -q -p origami-gpu --features cuda --example make_ptx -- \
        "$PWD/crates/origami-gpu/src/cuda/kernels.ptx"
fi
