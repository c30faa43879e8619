#!/usr/bin/env python3
"""The origami-vs-cuDNN table of scripts/gpu-check.sh, from JSON lines alone (no h5py).

    python3 scripts/gpu_table.py ORIGAMI.jsonl CUDNN.jsonl GPU.json

ORIGAMI.jsonl: `origami-bench sweep --backend cuda --json` rows; CUDNN.jsonl:
`scripts/torch_baseline.py --device cuda --json-out` rows; GPU.json: the `{"gpu": ...}` line
with the measured copy bandwidth and float32 matrix-multiply rate. Prints a Markdown table:
per point and direction, origami's fastest variant, its time, cuDNN's, their ratio
(origami / cuDNN: below 1 origami is faster), and the fraction of the float32 peak
(convolution) or of the copy bandwidth (pooling) origami reaches; then the geometric mean
ratio per family.
"""

import json
import math
import sys


def rows(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip().startswith("{")]


def main():
    ours, theirs, gpu_path = sys.argv[1:4]
    gpu = next(r["gpu"] for r in rows(gpu_path) if "gpu" in r)
    best = {}
    for r in rows(ours):
        if r.get("status") != "ok" or r.get("backend") == "cpu":
            continue
        k = (r["family"], r["shape"], r["direction"])
        if k not in best or r["median_s"] < best[k]["median_s"]:
            best[k] = r
    cudnn = {(r["family"], r["shape"], r["direction"]): r for r in rows(theirs)}
    print(f"GPU: {gpu['name']}; measured copy {gpu['copy_gbps']:.0f} GB/s, "
          f"float32 matmul {gpu['sgemm_gflops'] / 1e3:.1f} TFLOP/s\n")
    print("| family | shape | direction | origami (variant) | ms | cuDNN ms | origami/cuDNN "
          "| of peak |")
    print("| --- | --- | --- | --- | ---: | ---: | ---: | ---: |")
    per_family = {}
    for k, r in best.items():
        c = cudnn.get(k)
        ratio = r["median_s"] / c["median_s"] if c else float("nan")
        if r["op"] == "conv":
            share = r["flop"] / r["median_s"] / 1e9 / gpu["sgemm_gflops"]
            what = "FP32"
        else:
            share = r["bytes"] / r["median_s"] / 1e9 / gpu["copy_gbps"]
            what = "copy BW"
        if c:
            per_family.setdefault(k[0], []).append(ratio)
        cudnn_ms = f"{c['median_s'] * 1e3:.3f}" if c else "-"
        print(f"| {k[0]} | {k[1]} | {k[2]} | {r['variant']} | {r['median_s'] * 1e3:.3f} "
              f"| {cudnn_ms} | {ratio:.2f} | {share:.0%} {what} |")
    print("\n| family | geometric mean origami/cuDNN |")
    print("| --- | ---: |")
    for fam, rs in per_family.items():
        g = math.exp(sum(math.log(x) for x in rs) / len(rs))
        print(f"| {fam} | {g:.2f} |")


if __name__ == "__main__":
    main()
