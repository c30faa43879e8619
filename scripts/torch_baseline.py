#!/usr/bin/env python3
"""Time PyTorch on the sweep's shape families and write a baseline results file.

The points come from `origami-bench plan` (so labels, FLOP and byte counts are exactly the
sweep's), and the file has the sweep's layout (`origami-results/1`, see
bench-suite/src/results.rs) with backend "pytorch" and variant "pytorch", so

    origami-bench report DIR --baseline baseline.h5

overlays it on every chart. Each pass is timed like the sweep times ours: float32, NCHW,
buffers allocated once, warm-up, then the median of repeats of single calls.

- forward: F.conv{1,2,3}d; F.max_pool{d}d with indices (what training runs, and what
  origami computes); F.avg_pool{d}d; sum pooling is avg_pool with divisor_override=1
  (1-D runs as 2-D with a 1 x k window, since avg_pool1d has no divisor_override).
- backward_input / backward_weight: torch.autograd.grad of the forward output with respect
  to the input or the weight alone, so autograd computes only that gradient.

With `--device cuda` it times cuDNN (via PyTorch) on the GPU instead: tensors on the
device, each call followed by a synchronize, TF32 off (float32 as origami computes), rows
with backend and variant "cudnn"; it also measures the GPU's device-to-device copy bandwidth
and its float32 matrix-multiply peak and prints them as one JSON line `{"gpu": ...}`.

Usage:
    python scripts/torch_baseline.py --out baseline.h5 [--profile quick] [--family F]...
        [--threads 1] [--bench-bin target/release/origami-bench] [--device cpu|cuda]
        [--json-out rows.jsonl]

With `--cases FILE...` it times the cases of case files instead (origami-cases/1, as
`origami-bench time` does: forward, and backward = every gradient of the op), writing JSON
lines {case, variant: "pytorch", direction, median_s} for `origami-bench time --baseline`.

Needs torch; the HDF5 file needs numpy and h5py (`--json-out` alone does not), and so do
case files.

PyTorch allocates each call's outputs. glibc serves blocks over its mmap threshold (128 KiB
at first) with fresh pages, so a call with a 12.8 MB output spent most of its time in page
faults in this project's VM (a depthwise conv2d of N8 C128 56x56: 22 ms where its kernel
takes 3.3). The script therefore runs itself with glibc's heap keeping freed blocks (a 32
MiB mmap threshold, no trimming): outputs reuse memory that is already mapped, as in a
training loop's steady state and as the speed issue measured PyTorch ("large buffers
reused, not page-faulted per call"). Set ORIGAMI_TORCH_MALLOC=default to time it without.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time


def plan(args):
    if args.bench_bin:
        cmd = [args.bench_bin]
    else:
        cmd = ["cargo", "run", "--release", "-q", "-p", "origami-bench", "--"]
    cmd += ["plan", "--profile", args.profile]
    for f in args.family:
        cmd += ["--family", f]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def synced(torch, device, fn):
    """`fn` followed by a device synchronize, so a GPU call is timed to its end."""
    if device == "cpu":
        return fn

    def call():
        fn()
        torch.cuda.synchronize()

    return call


def gpu_ceilings(torch):
    """Device-to-device copy bandwidth (bytes read + written per second) and the float32
    matrix-multiply rate, both measured, as the ceilings origami's GPU rows are judged by."""
    n = 1 << 28  # 1 GiB of float32
    a = torch.empty(n, device="cuda")
    b = torch.empty_like(a)
    copy, _, _, _ = timed(synced(torch, "cuda", lambda: b.copy_(a)), 1.0, 5, 50)
    del a, b
    m = 8192
    x = torch.rand(m, m, device="cuda")
    y = torch.rand(m, m, device="cuda")
    mm, _, _, _ = timed(synced(torch, "cuda", lambda: x @ y), 1.0, 5, 50)
    return {
        "name": torch.cuda.get_device_name(),
        "copy_gbps": 2 * 4 * n / copy / 1e9,
        "sgemm_gflops": 2 * m**3 / mm / 1e9,
    }


def timed(fn, target_s, min_repeats, max_repeats):
    fn()
    t = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t, 1e-7)
    repeats = int(min(max(target_s / once, min_repeats), max_repeats))
    samples = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples), min(samples), max(samples), repeats


def passes(torch, F, p, device="cpu"):
    """Callables for each direction of one point."""
    d = p["dims"]
    shape = [p["batch"], p["channels"], *p["size"]]
    g = torch.Generator().manual_seed(20261127)

    def rand(shape):
        return (torch.rand(shape, generator=g) * 2 - 1).to(device)

    x = rand(shape).requires_grad_(True)
    op = p["op"]
    if op == "conv":
        w_shape = [p["out_channels"], p["channels"] // p["groups"], *p["kernel"]]
        w = rand(w_shape).requires_grad_(True)
        b = rand(p["out_channels"])
        conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[d]

        def fwd():
            return conv(x, w, b, p["stride"], p["padding"], p["dilation"], p["groups"])

        with torch.no_grad():
            y_shape = fwd().shape
        dy = rand(y_shape)
        y = fwd()

        def forward():
            with torch.no_grad():
                fwd()

        return {
            "forward": forward,
            "backward_input": lambda: torch.autograd.grad(y, x, dy, retain_graph=True),
            "backward_weight": lambda: torch.autograd.grad(y, w, dy, retain_graph=True),
        }
    k, s, pad = p["kernel"], p["stride"], p["padding"]
    if op == "max_pool":
        pool = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[d]

        def fwd():
            return pool(x, k, s, pad, p["dilation"], p["ceil_mode"], return_indices=True)[0]

    elif op == "avg_pool":
        if d == 1:

            def fwd():
                return F.avg_pool1d(x, k, s, pad, p["ceil_mode"], p["count_include_pad"])

        else:
            pool = {2: F.avg_pool2d, 3: F.avg_pool3d}[d]

            def fwd():
                return pool(x, k, s, pad, p["ceil_mode"], p["count_include_pad"])

    elif op == "sum_pool":
        if d == 1:

            def fwd():
                y = F.avg_pool2d(x[:, :, None, :], (1, k[0]), (1, s[0]), (0, pad[0]),
                                 p["ceil_mode"], True, 1)
                return y[:, :, 0, :]

        else:
            pool = {2: F.avg_pool2d, 3: F.avg_pool3d}[d]

            def fwd():
                return pool(x, k, s, pad, p["ceil_mode"], True, 1)

    else:
        raise ValueError(f"unknown op {op}")
    with torch.no_grad():
        y_shape = fwd().shape
    dy = rand(y_shape)
    y = fwd()

    def forward():
        # Max pooling keeps its indices (return_indices) like a training forward pass.
        with torch.no_grad():
            fwd()

    return {
        "forward": forward,
        "backward_input": lambda: torch.autograd.grad(y, x, dy, retain_graph=True),
    }


def case_passes(torch, F, g, device="cpu"):
    """forward and backward callables for one case group of a case file."""
    import numpy as np

    a = g.attrs
    op = a["op"].decode() if isinstance(a["op"], bytes) else str(a["op"])
    d = int(a["dims"])
    tensor = lambda n: torch.from_numpy(np.asarray(g[n], dtype=np.float64)).to(  # noqa: E731
        dtype=torch.float32 if g[n].dtype == np.float32 else torch.float64, device=device)
    ints = lambda n, default: [int(v) for v in np.atleast_1d(a[n])] if n in a else default  # noqa: E731
    x = tensor("input").requires_grad_(True)
    stride = ints("stride", [1] * d)
    dilation = ints("dilation", [1] * d)
    wants = [x]
    if op == "conv":
        w = tensor("weight").requires_grad_(True)
        b = tensor("bias").requires_grad_(True) if "bias" in g else None
        wants += [w] + ([b] if b is not None else [])
        lo, hi = ints("padding_lo", [0] * d), ints("padding_hi", [0] * d)
        pad = [p for i in reversed(range(d)) for p in (lo[i], hi[i])]
        conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[d]
        groups = int(a["groups"]) if "groups" in a else 1

        def fwd():
            return conv(F.pad(x, pad), w, b, stride, 0, dilation, groups)
    else:
        k, pad = ints("kernel_size", None), ints("padding", [0] * d)
        ceil = bool(int(a["ceil_mode"])) if "ceil_mode" in a else False
        cip = bool(int(a["count_include_pad"])) if "count_include_pad" in a else True
        div = int(a["divisor_override"]) if "divisor_override" in a else 0
        div = div or None
        if op == "max_pool":
            pool = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[d]

            def fwd():
                return pool(x, k, stride, pad, dilation, ceil, return_indices=True)[0]
        else:
            if op == "sum_pool":
                cip, div = True, 1
            if d == 1:
                def fwd():
                    y = F.avg_pool2d(x[:, :, None, :], (1, k[0]), (1, stride[0]), (0, pad[0]),
                                     ceil, cip, div)
                    return y[:, :, 0, :]
            else:
                pool = {2: F.avg_pool2d, 3: F.avg_pool3d}[d]

                def fwd():
                    return pool(x, k, stride, pad, ceil, cip, div)
    with torch.no_grad():
        shape = fwd().shape
    dy = tensor("grad_output") if "grad_output" in g else torch.rand(shape, device=device) * 2 - 1
    y = fwd()

    def forward():
        with torch.no_grad():
            fwd()

    return {
        "forward": forward,
        "backward": lambda: torch.autograd.grad(y, wants, dy, retain_graph=True),
    }


def time_cases(args, torch, F):
    import h5py

    name = "cudnn" if args.device == "cuda" else "pytorch"
    rows = []
    for path in args.cases:
        with h5py.File(path, "r") as f:
            for case in sorted(f.keys()):
                fns = case_passes(torch, F, f[case], args.device)
                for d in ["forward", "backward"]:
                    median, _, _, n = timed(synced(torch, args.device, fns[d]),
                                            args.target_s, 5, 1000)
                    rows.append({"file": path, "case": case, "variant": name,
                                 "direction": d, "median_s": median, "repeats": n})
                    print(f"{case:<28} {d:<9} {median * 1e3:10.4f} ms", file=sys.stderr)
    return rows


STRINGS = ["family", "op", "shape", "variant", "backend", "direction", "status", "note"]
INTS = ["dims", "batch", "window", "threads", "repeats"]
FLOATS = ["median_s", "min_s", "max_s", "flop", "bytes", "gflops", "gbps", "peak_fraction",
          "max_error"]


def write(path, rows, torch):
    import h5py
    import numpy as np

    with h5py.File(path, "w") as f:
        f.attrs["format"] = "origami-results/1"
        f.attrs["baseline"] = f"pytorch {torch.__version__}"
        f.attrs["baseline_host"] = platform.processor() or platform.machine()
        g = f.create_group("results")
        for name in STRINGS:
            values = [r[name].encode() for r in rows]
            width = max([len(v) for v in values] + [1])
            g.create_dataset(name, data=np.array(values, dtype=f"S{width}"))
        for name in INTS:
            g.create_dataset(name, data=np.array([r[name] for r in rows], dtype=np.int64))
        for name in FLOATS:
            g.create_dataset(name, data=np.array([r[name] for r in rows], dtype=np.float64))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=None, help="HDF5 results file (needs h5py)")
    ap.add_argument("--json-out", default=None, help="JSON lines of the rows")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--cases", nargs="+", default=[],
                    help="time the cases of these case files instead of the sweep's points")
    ap.add_argument("--profile", default="quick", choices=["smoke", "quick", "full"])
    ap.add_argument("--family", action="append", default=[])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--bench-bin", default=None,
                    help="an origami-bench binary (default: cargo run --release)")
    ap.add_argument("--target-s", type=float, default=0.3,
                    help="seconds to aim for per measurement")
    args = ap.parse_args()

    import torch
    import torch.nn.functional as F

    if not args.out and not args.json_out:
        ap.error("give --out or --json-out")
    torch.set_num_threads(args.threads)
    if args.cases:
        if not args.json_out:
            ap.error("--cases writes --json-out")
        rows = time_cases(args, torch, F)
        with open(args.json_out, "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
        print(f"wrote {len(rows)} rows to {os.path.abspath(args.json_out)}", file=sys.stderr)
        return
    name = "pytorch"
    if args.device == "cuda":
        name = "cudnn"
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = True
        print(json.dumps({"gpu": gpu_ceilings(torch)}), flush=True)
    points = plan(args)
    rows = []
    # Rows are written as they are measured, so a run cut short keeps what it timed.
    json_out = open(args.json_out, "w") if args.json_out else None
    for i, p in enumerate(points):
        fns = passes(torch, F, p, args.device)
        for w in p["work"]:
            d = w["direction"]
            median, lo, hi, n = timed(synced(torch, args.device, fns[d]), args.target_s, 5, 200)
            rows.append({
                "family": p["family"], "op": p["op"], "shape": p["shape"],
                "variant": name, "backend": name, "direction": d,
                "status": "ok", "note": f"torch {torch.__version__}",
                "dims": p["dims"], "batch": p["batch"], "window": p["window"],
                "threads": args.threads, "repeats": n,
                "median_s": median, "min_s": lo, "max_s": hi,
                "flop": w["flop"], "bytes": w["bytes"],
                "gflops": w["flop"] / median / 1e9, "gbps": w["bytes"] / median / 1e9,
                "peak_fraction": float("nan"), "max_error": float("nan"),
            })
            if json_out:
                json_out.write(json.dumps(rows[-1]) + "\n")
                json_out.flush()
            print(f"[{i + 1}/{len(points)}] {p['family']:<20} {p['shape']:<34} {d:<15} "
                  f"{median * 1e3:10.3f} ms", file=sys.stderr)
    if args.out:
        write(args.out, rows, torch)
        print(f"wrote {len(rows)} rows to {os.path.abspath(args.out)}", file=sys.stderr)
    if json_out:
        json_out.close()
        print(f"wrote {len(rows)} rows to {os.path.abspath(args.json_out)}", file=sys.stderr)


# glibc reads these when the process starts, so the script re-runs itself with them.
STEADY_MALLOC = {
    "MALLOC_MMAP_THRESHOLD_": str(32 << 20),
    "MALLOC_TRIM_THRESHOLD_": str(1 << 40),
    "MALLOC_TOP_PAD_": str(256 << 20),
}


def with_steady_malloc():
    """Re-executes the script with STEADY_MALLOC unless it is set (or opted out of)."""
    if os.environ.get("ORIGAMI_TORCH_MALLOC") == "default":
        return
    if all(os.environ.get(k) == v for k, v in STEADY_MALLOC.items()):
        return
    env = dict(os.environ, **STEADY_MALLOC)
    os.execve(sys.executable, [sys.executable] + sys.argv, env)


if __name__ == "__main__":
    with_steady_malloc()
    main()
