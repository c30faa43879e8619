// Convolution parameters (crate::conv::params): tensors are [N, C, D, H, W], weights
// [K, C / groups, kD, kH, kW].
fn batch() -> u32 { return p(0u); }
fn cin() -> u32 { return p(1u); }
fn cout() -> u32 { return p(2u); }
fn groups() -> u32 { return p(3u); }
fn cg() -> u32 { return p(4u); }
fn kg() -> u32 { return p(5u); }
fn has_bias() -> bool { return p(6u) != 0u; }
fn in_plane() -> u32 { return p(7u); }
fn out_plane() -> u32 { return p(8u); }
fn taps() -> u32 { return p(9u); }
fn az() -> Axis { return axis_at(12u); }
fn ay() -> Axis { return axis_at(18u); }
fn ax() -> Axis { return axis_at(24u); }

// The output position (flat in its plane) input `i` receives from through tap `t`, or -1.
fn output_of_tap(i: vec3<u32>, t: vec3<u32>) -> i32 {
    let z = az(); let y = ay(); let x = ax();
    let oz = inverse_tap(i.x, t.x, z);
    let oy = inverse_tap(i.y, t.y, y);
    let ox = inverse_tap(i.z, t.z, x);
    if (oz < 0 || oy < 0 || ox < 0) {
        return -1;
    }
    return i32((u32(oz) * y.output + u32(oy)) * x.output + u32(ox));
}
