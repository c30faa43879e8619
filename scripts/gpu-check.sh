#!/usr/bin/env bash
# The CUDA backend on a real GPU, in two steps:
#
#   scripts/gpu-check.sh build     here (Rust, no GPU): builds the CUDA test binary and
#                                  origami-bench with --features cuda for any x86-64-v3 CPU,
#                                  into target/gpu-check/bundle
#   scripts/gpu-check.sh [run]     on the GPU machine (NVIDIA driver, PyTorch; no Rust, no
#                                  network), from the repository root with the bundle in
#                                  place: the CUDA tests against the CPU kernels, the golden
#                                  cases (eval --backend cuda), then every op of the GPU
#                                  families timed against PyTorch's cuDNN on the same shapes,
#                                  printed as a table of origami/cuDNN ratios and fractions of
#                                  the measured copy bandwidth and float32 peak.
#
# Results go to $OUT (the device runner's output folder) or target/gpu-check/out. The run
# step is sized to finish in about 5 minutes on an H100; each step has a time limit (about
# 10 minutes in all), and a step that fails or runs out does not stop the next one.
set -euo pipefail
cd "$(dirname "$0")/.."

bundle=target/gpu-check/bundle
families=(resnet_3x3 mobilenet_depthwise sequence_conv1d resnet_maxpool avg_2x2 max_window avg_window)

build() {
    local target=target/gpu-check/build
    export CARGO_TARGET_DIR="$target"
    # Portable: the GPU machine's CPU is not this one.
    export RUSTFLAGS="-C target-cpu=x86-64-v3"
    cargo build --release -q -p origami-bench --features cuda
    local test_bin
    test_bin=$(cargo test --release -q -p origami-gpu --features cuda --test against_cpu \
        --no-run --message-format=json |
        python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "against_cpu":
        print(m["executable"])')
    rm -rf "$bundle"
    mkdir -p "$bundle"
    cp "$target/release/origami-bench" "$bundle/"
    cp "$test_bin" "$bundle/against_cpu"
    # Symbols off: the bundle travels to the GPU machine (about 16 MB instead of 66).
    strip "$bundle/origami-bench" "$bundle/against_cpu"
    du -sh "$bundle"
    echo "bundle ready: run 'scripts/gpu-check.sh' on the GPU machine with $bundle carried along"
}

run() {
    local out="${OUT:-target/gpu-check/out}"
    mkdir -p "$out"
    local start=$SECONDS
    step() { printf '\n=== %s (%d s) ===\n' "$*" $((SECONDS - start)); }
    if [ ! -x "$bundle/origami-bench" ]; then
        echo "error: no $bundle: run 'scripts/gpu-check.sh build' first (on a machine with Rust)" >&2
        exit 2
    fi
    step "device"
    if ! nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; then
        echo "error: no NVIDIA GPU or driver here (nvidia-smi failed): run this on the GPU machine" >&2
        exit 2
    fi

    # One lease is short: a failing step is recorded and the next one still runs, so one
    # call brings back everything; the exit status says whether any step failed.
    local failed=()
    attempt() { local name=$1; shift; "$@" || { echo "FAILED: $name" >&2; failed+=("$name"); }; }

    step "CUDA tests against the CPU kernels"
    attempt tests cuda_tests "$out"

    step "golden cases on CUDA"
    attempt golden golden_cases "$out"

    local fam=()
    for f in "${families[@]}"; do fam+=(--family "$f"); done

    step "origami on CUDA: the GPU families (checked against the f64 reference, then timed)"
    attempt sweep sweep_cuda "$out" "${fam[@]}"

    step "cuDNN (PyTorch) on the same points"
    attempt cudnn cudnn_baseline "$out" "${fam[@]}"

    step "origami / cuDNN"
    attempt table python3 scripts/gpu_table.py "$out/origami.jsonl" "$out/cudnn.jsonl" \
        "$out/gpu.json" > "$out/table.md"
    cat "$out/table.md" 2>/dev/null || true
    step "done"
    if [ ${#failed[@]} -gt 0 ]; then
        echo "failed steps: ${failed[*]}" >&2
        exit 1
    fi
}

cuda_tests() {
    ORIGAMI_REQUIRE_CUDA=1 timeout 150 "$bundle/against_cpu" --test-threads 1 > "$1/tests.txt" 2>&1
    local rc=$?
    grep -v XDG_RUNTIME_DIR "$1/tests.txt" | grep -E 'FAILED|panicked|test result|failures' | tail -n 15
    return $rc
}

golden_cases() {
    local rc=0
    timeout 90 "$bundle/origami-bench" eval --backend cuda datasets/golden/*.h5 > "$1/eval-cuda.txt" || rc=$?
    grep -v ' pass$' "$1/eval-cuda.txt" | grep -v 'computes in f32' | grep -v '^#' | tail -n 20 || true
    tail -n 1 "$1/eval-cuda.txt"
    return $rc
}

sweep_cuda() {
    local out=$1
    shift
    # The sweep's HDF5 and charts stay on the machine but for the results file: the runner
    # brings back only a few files.
    timeout 200 "$bundle/origami-bench" sweep --backend cuda --profile quick "$@" \
        --out target/gpu-check/cuda-sweep --json > "$out/origami.jsonl" || return
    cp target/gpu-check/cuda-sweep/*.h5 "$out/" 2>/dev/null || true
    echo "$(wc -l < "$out/origami.jsonl") rows"
}

cudnn_baseline() {
    local out=$1
    shift
    timeout 150 python3 scripts/torch_baseline.py --device cuda --profile quick "$@" \
        --bench-bin "$bundle/origami-bench" --target-s 0.1 \
        --json-out "$out/cudnn.jsonl" > "$out/gpu.json" 2> "$out/cudnn.log" || return
    cat "$out/gpu.json"
}

case "${1:-run}" in
    build) build ;;
    run) run ;;
    *) echo "usage: scripts/gpu-check.sh [build|run]" >&2; exit 2 ;;
esac
