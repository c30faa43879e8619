// Shared by every origami shader: the parameter block and the window index arithmetic of
// origami_kernels::window, in 3-D (a 1-D or 2-D op has leading axes of extent 1).

@group(0) @binding(0) var<uniform> P: array<vec4<u32>, 16>;

fn p(i: u32) -> u32 {
    return P[i / 4u][i % 4u];
}

struct Axis {
    input: u32,
    output: u32,
    kernel: u32,
    stride: u32,
    dilation: u32,
    pad: u32,
}

fn axis_at(base: u32) -> Axis {
    return Axis(p(base), p(base + 1u), p(base + 2u), p(base + 3u), p(base + 4u), p(base + 5u));
}

// The input coordinate output `o` reads through tap `k`, or -1 in the padding:
// i = o * stride + k * dilation - pad.
fn tap(o: u32, k: u32, a: Axis) -> i32 {
    let i = i32(o * a.stride + k * a.dilation) - i32(a.pad);
    if (i < 0 || i >= i32(a.input)) {
        return -1;
    }
    return i;
}

// The output that reads input `i` through tap `k`, or -1 when none does.
fn inverse_tap(i: u32, k: u32, a: Axis) -> i32 {
    let t = i32(i + a.pad) - i32(k * a.dilation);
    if (t < 0 || u32(t) % a.stride != 0u) {
        return -1;
    }
    let o = u32(t) / a.stride;
    if (o >= a.output) {
        return -1;
    }
    return i32(o);
}

// (z, y, x) of a flat index into a box of extents (_, ey, ex).
fn coords(flat: u32, ey: u32, ex: u32) -> vec3<u32> {
    return vec3<u32>(flat / (ey * ex), (flat / ex) % ey, flat % ex);
}

// Workgroups are dispatched as a 2-D grid so that any count fits the per-dimension limit.
fn group_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

// NaN by its bits: WGSL lets compilers assume `v != v` is false.
fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}
