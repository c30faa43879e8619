// Pooling parameters (crate::pool::params) and the window arithmetic of
// origami_kernels::window::Axis. Words 0..POOL_BLOCK hold per-op values; the pool geometry
// starts at `POOL_BLOCK`, so the same divisor code serves every pooling shader.
const POOL_BLOCK: u32 = 32u;

fn pool_kind() -> u32 { return p(POOL_BLOCK); } // 0 max, 1 average, 2 sum
fn planes() -> u32 { return p(POOL_BLOCK + 1u); }
fn pool_in_plane() -> u32 { return p(POOL_BLOCK + 2u); }
fn pool_out_plane() -> u32 { return p(POOL_BLOCK + 3u); }
fn pool_axis(a: u32) -> Axis { return axis_at(POOL_BLOCK + 6u + 6u * a); }
fn count_include_pad() -> bool { return p(POOL_BLOCK + 4u) != 0u; }
fn divisor_override() -> u32 { return p(POOL_BLOCK + 5u); }

fn first_valid_tap(o: u32, a: Axis) -> i32 {
    let start = o * a.stride;
    var before = 0u;
    if (a.pad > start) {
        before = a.pad - start;
    }
    let t = (before + a.dilation - 1u) / a.dilation;
    if (t < a.kernel && start + t * a.dilation < a.input + a.pad) {
        return i32(t);
    }
    return -1;
}

fn last_valid_tap(o: u32, a: Axis) -> i32 {
    let first = first_valid_tap(o, a);
    if (first < 0) {
        return -1;
    }
    let room = a.input - 1u + a.pad - o * a.stride;
    return max(i32(min(room / a.dilation, a.kernel - 1u)), first);
}

fn taps_in_input(o: u32, a: Axis) -> u32 {
    let first = first_valid_tap(o, a);
    if (first < 0) {
        return 0u;
    }
    return u32(last_valid_tap(o, a) - first + 1);
}

fn taps_in_padded(o: u32, a: Axis) -> u32 {
    let end = a.input + 2u * a.pad;
    let start = o * a.stride;
    if (start >= end) {
        return 0u;
    }
    return min((end - start - 1u) / a.dilation + 1u, a.kernel);
}

// The average's divisor at output coordinates `o`, as PoolNd::divisor_at.
fn divisor_at(o: vec3<u32>) -> f32 {
    if (divisor_override() != 0u) {
        return f32(divisor_override());
    }
    var count = 1u;
    for (var a = 0u; a < 3u; a++) {
        if (count_include_pad()) {
            count *= taps_in_padded(o[a], pool_axis(a));
        } else {
            count *= taps_in_input(o[a], pool_axis(a));
        }
    }
    return f32(count);
}

// The divisor of the output at flat index `flat` of an [planes, OD, OH, OW] tensor.
fn divisor_of_flat(flat: u32) -> f32 {
    return divisor_at(coords(flat % pool_out_plane(), pool_axis(1u).output, pool_axis(2u).output));
}
