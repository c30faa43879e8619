#!/usr/bin/env python3
"""origami against PyTorch on the speed issue's dense convolutions, timed side by side.

On a shared machine whose speed drifts by 1.5x over seconds (this project's VMs), a sweep
and a PyTorch baseline run minutes apart compare two different machines. This script
alternates: each round times every pass of one shape with origami (the `conv_gflops`
example, `ORIGAMI_AB`: its passes alternated call by call) and then with PyTorch (this
process), and a pass's time is the fastest call over all rounds, the one least disturbed.
It prints a Markdown table of PyTorch's time over origami's (above 1: origami faster) per
shape and direction, and the geometric mean.

Needs torch; run it with the PyTorch of the project's venv:

    cargo build --release -p origami-kernels --features rayon --example conv_gflops
    .venv/bin/python scripts/side_by_side.py [--threads 1] [--rounds 3] [--calls 15]

With `--pool` it times the issue's pooling points instead (n8 c64 112x112; the
`pool_time` example, fastest of its repeats, built likewise), forward and backward; max
pooling's backward routes PyTorch's 64-bit indices, as origami's does. With `--other` it
times depthwise 3x3 (c128 56x56) and the 7x7/2 stem (c3 224x224) like the dense shapes.

float32, NCHW, batch 8; PyTorch with its outputs' memory kept between calls (glibc's heap
keeps freed blocks, as `torch_baseline.py` runs it); `backward_input` and `backward_weight`
through `torch.ops.aten.convolution_backward` computing that gradient alone.
"""

import argparse
import math
import os
import re
import subprocess
import sys
import time

# name: (batch, channels, (H, W), out channels, (kH, kW), (padH, padW), stride, groups).
SHAPES = {
    "3x3 c128 28x28": (8, 128, (28, 28), 128, (3, 3), (1, 1), 1, 1),
    "3x3 c64 56x56": (8, 64, (56, 56), 64, (3, 3), (1, 1), 1, 1),
    "conv1d k9 c64 T1024": (8, 64, (1, 1024), 64, (1, 9), (0, 4), 1, 1),
    "temporal (9,1) c64 300x25": (8, 64, (300, 25), 64, (9, 1), (4, 0), 1, 1),
}
# The other convolutions (`--other`): 2x PyTorch asked, depthwise both ways and the
# stem's backward.
OTHER = {
    "depthwise 3x3 c128 56x56": (8, 128, (56, 56), 128, (3, 3), (1, 1), 1, 128),
    "stem 7x7/2 c3 224x224": (8, 3, (224, 224), 64, (7, 7), (3, 3), 2, 1),
}
DIRECTIONS = ["forward", "backward_input", "backward_weight"]

# name: (kind, window, stride, padding) on n8 c64 112x112.
POOLS = {
    "max 3x3/2": ("max", 3, 2, 1),
    "avg 2x2/2": ("avg", 2, 2, 0),
    "max 2x2/2": ("max", 2, 2, 0),
    "avg 15x15/1": ("avg", 15, 1, 7),
    "avg 31x31/1": ("avg", 31, 1, 15),
}
POOL_INPUT = (8, 64, 112)

STEADY_MALLOC = {
    "MALLOC_MMAP_THRESHOLD_": str(32 << 20),
    "MALLOC_TRIM_THRESHOLD_": str(1 << 40),
    "MALLOC_TOP_PAD_": str(256 << 20),
}


def origami(binary, shape, threads):
    """The fastest call of each direction in one alternated run of `conv_gflops`."""
    n, c, (h, w), k, (kh, kw), (ph, pw), stride, groups = shape
    args = [binary, str(n), str(c), f"{h}x{w}", str(k), f"{kh}x{kw}", f"{ph}x{pw}", str(stride),
            str(groups)]
    ab = ",".join(f"auto:{d}" for d in DIRECTIONS)
    return run_example(args, threads, r"auto:(\w+)\s+min\s+([0-9.]+) ms", ORIGAMI_AB=ab)


def run_example(args, threads, pattern, **env):
    """Runs an example binary and reads `{direction: seconds}` from the lines `pattern`
    matches (direction, milliseconds)."""
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads), **env)
    out = subprocess.run(args, env=env, check=True, capture_output=True, text=True).stdout
    best = {}
    for line in out.splitlines():
        m = re.match(pattern, line)
        if m:
            best[m.group(1)] = float(m.group(2)) / 1e3
    return best


def fastest(fns, calls, budget_s=math.inf):
    """`{direction: fastest seconds}` over up to `calls` calls of each of `fns` after a
    warm-up, fewer once a direction has taken `budget_s`. With a budget the warm-up counts
    as a call too: a call of seconds (PyTorch's 31 x 31 average pooling) is timed once."""
    best = {}
    for d, fn in fns.items():
        start = time.perf_counter()
        fn()
        spent = time.perf_counter() - start
        t = spent if budget_s < math.inf else math.inf
        for _ in range(calls):
            if spent > budget_s:
                break
            start = time.perf_counter()
            fn()
            took = time.perf_counter() - start
            t, spent = min(t, took), spent + took
        best[d] = t
    return best


def pytorch(torch, shape, calls):
    """The fastest of `calls` calls of each direction."""
    n, c, hw, k, ks, pad, stride, groups = shape
    x = torch.randn(n, c, *hw)
    w = torch.randn(k, c // groups, *ks)
    conv = lambda: torch.nn.functional.conv2d(x, w, padding=pad, stride=stride, groups=groups)
    gy = torch.ones_like(conv())

    def grad(which):
        # output_mask: (grad_input, grad_weight, grad_bias).
        mask = [which == "input", which == "weight", False]
        return lambda: torch.ops.aten.convolution_backward(
            gy, x, w, None, [stride] * 2, list(pad), [1, 1], False, [0, 0], groups, mask
        )

    fns = {
        "forward": conv,
        "backward_input": grad("input"),
        "backward_weight": grad("weight"),
    }
    return fastest(fns, calls)


def origami_pool(binary, pool, threads):
    """`pool_time`'s fastest forward and backward."""
    kind, k, stride, pad = pool
    n, c, h = POOL_INPUT
    args = [binary, str(n), str(c), str(h), str(k), str(stride), str(pad), kind]
    return run_example(args, threads, r"(forward|backward)\s+([0-9.]+) ms")


def pytorch_pool(torch, pool, calls):
    """The fastest calls of forward and backward, at most `calls` of each and about 3 s."""
    kind, k, stride, pad = pool
    n, c, h = POOL_INPUT
    x = torch.randn(n, c, h, h)
    F = torch.nn.functional
    if kind == "max":
        y, idx = F.max_pool2d(x, k, stride, pad, return_indices=True)
        gy = torch.ones_like(y)
        fns = {
            "forward": lambda: F.max_pool2d(x, k, stride, pad, return_indices=True),
            "backward": lambda: torch.ops.aten.max_pool2d_with_indices_backward(
                gy, x, [k, k], [stride, stride], [pad, pad], [1, 1], False, idx
            ),
        }
    else:
        gy = torch.ones_like(F.avg_pool2d(x, k, stride, pad))
        fns = {
            "forward": lambda: F.avg_pool2d(x, k, stride, pad),
            "backward": lambda: torch.ops.aten.avg_pool2d_backward(
                gy, x, [k, k], [stride, stride], [pad, pad], False, True, None
            ),
        }
    return fastest(fns, calls, budget_s=3.0)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--calls", type=int, default=15, help="PyTorch calls per direction a round")
    p.add_argument("--bin", default="target/release/examples/conv_gflops")
    p.add_argument("--pool", action="store_true", help="the pooling points instead")
    p.add_argument("--other", action="store_true", help="depthwise and the stem instead")
    p.add_argument("--pool-bin", default="target/release/examples/pool_time")
    args = p.parse_args()
    if any(os.environ.get(k) != v for k, v in STEADY_MALLOC.items()):
        os.execve(sys.executable, [sys.executable] + sys.argv, dict(os.environ, **STEADY_MALLOC))
    import torch

    torch.set_num_threads(args.threads)
    if args.pool:
        return compare(
            args, torch, POOLS, ["forward", "backward"],
            lambda pool: origami_pool(args.pool_bin, pool, args.threads),
            lambda pool: pytorch_pool(torch, pool, args.calls),
        )
    compare(
        args, torch, OTHER if args.other else SHAPES, DIRECTIONS,
        lambda shape: origami(args.bin, shape, args.threads),
        lambda shape: pytorch(torch, shape, args.calls),
    )


def compare(args, torch, points, directions, ours_of, theirs_of):
    """Alternates `ours_of` and `theirs_of` over `points` for the rounds and prints the
    table of each direction's fastest times."""
    ours = {name: {d: math.inf for d in directions} for name in points}
    theirs = {name: {d: math.inf for d in directions} for name in points}
    for _ in range(args.rounds):
        for name, point in points.items():
            for d, t in ours_of(point).items():
                ours[name][d] = min(ours[name][d], t)
            for d, t in theirs_of(point).items():
                theirs[name][d] = min(theirs[name][d], t)
    print(f"threads: {args.threads}, rounds: {args.rounds}, torch {torch.__version__}")
    print()
    print("| shape | direction | origami ms | PyTorch ms | PyTorch / origami |")
    print("| --- | --- | --- | --- | --- |")
    logs = []
    for name in points:
        for d in directions:
            o, t = ours[name][d], theirs[name][d]
            logs.append(math.log(t / o))
            print(f"| {name} | {d} | {o * 1e3:.2f} | {t * 1e3:.2f} | {t / o:.2f} |")
    print(f"\ngeometric mean of PyTorch / origami: {math.exp(sum(logs) / len(logs)):.3f}")


if __name__ == "__main__":
    main()
