#!/usr/bin/env bash
# The kernel crate on embedded and non-x86 targets, all of it checked by running:
#   1. the firmware (crates/origami-firmware) runs the small golden cases through every
#      algorithm on an emulated Cortex-M4F (qemu-system-arm, mps2-an386), no heap;
#   2. the kernel crate's own tests cross-compiled for aarch64 and run under qemu-aarch64
#      (wide's NEON paths);
#   3. builds for thumbv6m-none-eabi (Cortex-M0, no FPU) and riscv32imac-unknown-none-elf;
#   4. the code size of each op family on Cortex-M4F at opt-level 3 and "s".
# Installs the rustup targets and Debian packages it needs when missing; exits non-zero on
# any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

start=$SECONDS
section() { printf '\n=== %s (at %d s) ===\n' "$*" $((SECONDS - start)); }

section "targets and packages"
rustup target add thumbv7em-none-eabihf thumbv6m-none-eabi riscv32imac-unknown-none-elf \
    aarch64-unknown-linux-gnu >/dev/null
rustup component add llvm-tools >/dev/null 2>&1 || rustup component add llvm-tools-preview >/dev/null
missing=()
command -v qemu-system-arm >/dev/null || missing+=(qemu-system-arm)
command -v qemu-aarch64 >/dev/null || missing+=(qemu-user)
command -v aarch64-linux-gnu-gcc >/dev/null || missing+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
qemu-system-arm --version | head -n 1

section "Cortex-M4F (qemu-system-arm, mps2-an386): golden cases, every algorithm"
(cd crates/origami-firmware && cargo run --profile golden --bin golden)

section "aarch64 (qemu-aarch64): the kernel crate's tests on NEON"
# A quarter of the randomized cases: under emulation each costs ~10x, and the native run
# covers the geometries; the fixed-shape tests all run.
ORIGAMI_TEST_CASE_DIVISOR=4 cargo test -p origami-kernels --target aarch64-unknown-linux-gnu

section "portability builds: thumbv6m (no FPU), riscv32imac"
cargo build -p origami-kernels --release --target thumbv6m-none-eabi
cargo build -p origami-kernels --release --target riscv32imac-unknown-none-elf

section "code size on Cortex-M4F (text + rodata, bytes, over the runtime alone)"
size="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/llvm-size"
(
    cd crates/origami-firmware
    printf '%-40s %12s %12s\n' "probe" "opt-level 3" "opt-level s"
    # The probes only: the golden firmware (every algorithm) is the slowest build and not a probe.
    for p in release release-s; do
        cargo build -q --profile "$p" --bin size_base --bin size_conv --bin size_pool
    done
    for probe in size_conv size_pool; do
        row=()
        for p in release release-s; do
            dir=target/thumbv7em-none-eabihf/$p
            base=$("$size" "$dir/size_base" | awk 'NR==2 {print $1}')
            this=$("$size" "$dir/$probe" | awk 'NR==2 {print $1}')
            row+=($((this - base)))
        done
        case $probe in
            size_conv) name="conv 2-D f32: fwd + 3 gradients, 2 algos" ;;
            size_pool) name="pool 2-D f32: 3 kinds x 3 algos, fwd+bwd" ;;
        esac
        printf '%-40s %12s %12s\n' "$name" "${row[0]}" "${row[1]}"
    done
)
echo "embedded checks passed in $((SECONDS - start)) s"
