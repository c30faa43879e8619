#!/usr/bin/env python3
"""Make the golden case files of datasets/golden/ with PyTorch (format: origami-cases/1).

Every case holds the inputs, the parameters and PyTorch's forward result and gradients
(autograd of sum(output * grad_output)), in float32 and float64. Asymmetric convolution
padding goes through F.pad; sum pooling is average pooling with divisor_override=1 (1-D
pooling that needs divisor_override runs as 2-D over a unit axis, since avg_pool1d has no
such argument).

Needs: torch, h5py, numpy (e.g. `python3 -m venv .venv && .venv/bin/pip install torch h5py`).
Usage: .venv/bin/python scripts/make_golden.py [OUT_DIR]   (default datasets/golden)
Deterministic: torch.manual_seed(SEED) before each case.
"""

import os
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F

SEED = 20261126
FORMAT = "origami-cases/1"
DTYPES = {"f32": torch.float32, "f64": torch.float64}


def ints(v):
    return np.asarray(v, dtype=np.int64)


def write_tensor(g, name, t):
    g.create_dataset(name, data=t.detach().cpu().numpy())


def conv_case(g, dims, dtype, n, c, k, size, kernel, stride, lo, hi, dilation, groups, bias):
    x = torch.randn(n, c, *size, dtype=dtype, requires_grad=True)
    w = torch.randn(k, c // groups, *kernel, dtype=dtype, requires_grad=True)
    b = torch.randn(k, dtype=dtype, requires_grad=True) if bias else None
    pad = []
    for d in reversed(range(dims)):
        pad += [lo[d], hi[d]]
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[dims]
    y = conv(F.pad(x, pad), w, b, stride=stride, dilation=dilation, groups=groups)
    dy = torch.randn_like(y)
    y.backward(dy)
    g.attrs["op"] = "conv"
    g.attrs["dims"] = dims
    g.attrs["stride"] = ints(stride)
    g.attrs["dilation"] = ints(dilation)
    g.attrs["padding_lo"] = ints(lo)
    g.attrs["padding_hi"] = ints(hi)
    g.attrs["groups"] = groups
    for name, t in [("input", x), ("weight", w), ("grad_output", dy), ("output", y),
                    ("grad_input", x.grad), ("grad_weight", w.grad)]:
        write_tensor(g, name, t)
    if bias:
        write_tensor(g, "bias", b)
        write_tensor(g, "grad_bias", b.grad)


def avg_pool(x, dims, kernel, stride, padding, ceil, cip, divisor):
    if dims == 1 and divisor:
        y = F.avg_pool2d(x.unsqueeze(2), (1, kernel[0]), (1, stride[0]), (0, padding[0]),
                         ceil_mode=ceil, count_include_pad=cip, divisor_override=divisor)
        return y.squeeze(2)
    if dims == 1:
        return F.avg_pool1d(x, kernel, stride, padding, ceil_mode=ceil, count_include_pad=cip)
    fn = {2: F.avg_pool2d, 3: F.avg_pool3d}[dims]
    return fn(x, kernel, stride, padding, ceil_mode=ceil, count_include_pad=cip,
              divisor_override=divisor or None)


def pool_case(g, op, dims, dtype, n, c, size, kernel, stride, padding, dilation=None,
              ceil=False, cip=True, divisor=0):
    x = torch.randn(n, c, *size, dtype=dtype, requires_grad=True)
    dilation = dilation or [1] * dims
    idx = None
    if op == "max_pool":
        fn = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[dims]
        y, idx = fn(x, kernel, stride, padding, dilation=dilation, ceil_mode=ceil,
                    return_indices=True)
    elif op == "avg_pool":
        y = avg_pool(x, dims, kernel, stride, padding, ceil, cip, divisor)
    else:  # sum_pool: the average's numerator
        y = avg_pool(x, dims, kernel, stride, padding, ceil, True, 1)
    dy = torch.randn_like(y)
    y.backward(dy)
    g.attrs["op"] = op
    g.attrs["dims"] = dims
    g.attrs["kernel_size"] = ints(kernel)
    g.attrs["stride"] = ints(stride)
    g.attrs["padding"] = ints(padding)
    g.attrs["ceil_mode"] = int(ceil)
    if op == "max_pool":
        g.attrs["dilation"] = ints(dilation)
    if op == "avg_pool":
        g.attrs["count_include_pad"] = int(cip)
        g.attrs["divisor_override"] = divisor
    for name, t in [("input", x), ("grad_output", dy), ("output", y), ("grad_input", x.grad)]:
        write_tensor(g, name, t)
    if idx is not None:
        g.create_dataset("indices", data=idx.numpy().astype(np.int64))


# (name, dims, n, c, k, size, kernel, stride, lo, hi, dilation, groups, bias)
CONV = [
    ("conv1d_basic", 1, 2, 3, 4, [17], [3], [1], [0], [0], [1], 1, True),
    ("conv1d_left_anchored", 1, 1, 2, 3, [12], [4], [1], [0], [3], [1], 1, False),
    ("conv1d_stride_dilation", 1, 2, 4, 6, [23], [3], [2], [2], [1], [2], 2, True),
    ("conv1d_depthwise", 1, 1, 5, 5, [19], [5], [1], [2], [2], [1], 5, True),
    ("conv2d_3x3_pad1", 2, 2, 3, 5, [9, 11], [3, 3], [1, 1], [1, 1], [1, 1], [1, 1], 1, True),
    ("conv2d_stride2_asym", 2, 1, 4, 6, [10, 13], [3, 3], [2, 2], [0, 1], [1, 0], [1, 1], 1, True),
    ("conv2d_dilated_groups", 2, 2, 6, 4, [11, 9], [3, 2], [1, 2], [2, 1], [2, 1], [2, 1], 2, False),
    ("conv2d_depthwise", 2, 1, 8, 8, [12, 12], [3, 3], [1, 1], [1, 1], [1, 1], [1, 1], 8, True),
    ("conv2d_1x1", 2, 2, 16, 8, [5, 7], [1, 1], [1, 1], [0, 0], [0, 0], [1, 1], 1, True),
    ("conv2d_7x7_stride2", 2, 1, 3, 4, [20, 20], [7, 7], [2, 2], [3, 3], [3, 3], [1, 1], 1, False),
    ("conv2d_temporal_9x1", 2, 1, 3, 4, [30, 5], [9, 1], [1, 1], [4, 0], [4, 0], [1, 1], 1, True),
    ("conv3d_3x3x3_pad1", 3, 1, 2, 3, [5, 6, 7], [3, 3, 3], [1, 1, 1], [1, 1, 1], [1, 1, 1], [1, 1, 1], 1, True),
    ("conv3d_strided_groups", 3, 2, 4, 4, [6, 7, 8], [2, 3, 2], [1, 2, 2], [0, 1, 1], [1, 0, 1], [2, 1, 1], 2, False),
]

# (name, op, dims, n, c, size, kernel, stride, padding, extra)
POOL = [
    ("max1d_basic", "max_pool", 1, 2, 3, [20], [3], [2], [1], {}),
    ("max1d_dilated_ceil", "max_pool", 1, 1, 2, [19], [3], [2], [1], {"dilation": [2], "ceil": True}),
    ("max2d_resnet_3x3s2", "max_pool", 2, 2, 3, [14, 14], [3, 3], [2, 2], [1, 1], {}),
    ("max2d_2x2", "max_pool", 2, 1, 2, [8, 10], [2, 2], [2, 2], [0, 0], {}),
    ("max2d_7x7s1", "max_pool", 2, 1, 2, [15, 16], [7, 7], [1, 1], [3, 3], {}),
    ("max2d_dilated", "max_pool", 2, 1, 2, [13, 12], [3, 2], [1, 2], [1, 1], {"dilation": [2, 3], "ceil": True}),
    ("max3d_basic", "max_pool", 3, 1, 2, [6, 7, 8], [2, 3, 3], [2, 2, 1], [1, 1, 1], {}),
    ("avg1d_basic", "avg_pool", 1, 2, 3, [21], [4], [3], [2], {"ceil": True}),
    ("avg1d_no_pad_count", "avg_pool", 1, 1, 2, [17], [5], [2], [2], {"cip": False}),
    ("avg1d_divisor", "avg_pool", 1, 1, 2, [16], [3], [1], [1], {"divisor": 2}),
    ("avg2d_2x2", "avg_pool", 2, 2, 3, [8, 8], [2, 2], [2, 2], [0, 0], {}),
    ("avg2d_3x3s1_pad", "avg_pool", 2, 1, 2, [11, 13], [3, 3], [1, 1], [1, 1], {"cip": False}),
    ("avg2d_ceil_pad", "avg_pool", 2, 1, 2, [10, 9], [3, 2], [2, 2], [1, 1], {"ceil": True}),
    ("avg2d_15x15s1", "avg_pool", 2, 1, 2, [20, 21], [15, 15], [1, 1], [7, 7], {}),
    ("avg2d_divisor", "avg_pool", 2, 1, 2, [9, 9], [3, 3], [2, 2], [1, 1], {"divisor": 5}),
    ("avg3d_basic", "avg_pool", 3, 1, 2, [6, 6, 7], [2, 3, 3], [2, 1, 2], [1, 1, 1], {"cip": False}),
    ("sum1d_basic", "sum_pool", 1, 1, 3, [18], [4], [2], [1], {}),
    ("sum2d_9x9s1", "sum_pool", 2, 1, 2, [16, 15], [9, 9], [1, 1], [4, 4], {}),
    ("sum2d_tiling", "sum_pool", 2, 2, 2, [10, 10], [2, 1], [2, 1], [0, 0], {}),
    ("sum3d_basic", "sum_pool", 3, 1, 2, [5, 6, 6], [3, 2, 2], [1, 2, 2], [1, 0, 1], {"ceil": True}),
]


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "datasets", "golden")
    os.makedirs(out, exist_ok=True)
    for tag, dtype in DTYPES.items():
        path = os.path.join(out, f"conv_{tag}.h5")
        with h5py.File(path, "w") as f:
            f.attrs["format"] = FORMAT
            for i, (name, *args) in enumerate(CONV):
                torch.manual_seed(SEED + i)
                conv_case(f.create_group(name), args[0], dtype, *args[1:])
        print("wrote", path)
        path = os.path.join(out, f"pool_{tag}.h5")
        with h5py.File(path, "w") as f:
            f.attrs["format"] = FORMAT
            for i, (name, op, dims, n, c, size, kernel, stride, padding, extra) in enumerate(POOL):
                torch.manual_seed(SEED + 100 + i)
                pool_case(f.create_group(name), op, dims, dtype, n, c, size, kernel, stride,
                          padding, **extra)
        print("wrote", path)
    print(f"torch {torch.__version__}, h5py {h5py.__version__}, numpy {np.__version__}, seed {SEED}")


if __name__ == "__main__":
    main()
