// Direct pooling: one invocation per output, reducing over its window's valid taps.
// Max keeps PyTorch's choice: the first maximum in row-major window order, or the last NaN.
@group(0) @binding(1) var<storage, read> pool_input: array<f32>;
@group(0) @binding(2) var<storage, read_write> pool_output: array<f32>;
@group(0) @binding(3) var<storage, read_write> indices: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let gid = group_index(wid, nwg) * 256u + lid;
    if (gid >= planes() * pool_out_plane()) {
        return;
    }
    let z = pool_axis(0u); let y = pool_axis(1u); let x = pool_axis(2u);
    let plane = gid / pool_out_plane();
    let o = coords(gid % pool_out_plane(), y.output, x.output);
    let base = plane * pool_in_plane();
    let is_max = pool_kind() == 0u;
    var acc = 0.0;
    var best = 0u;
    var found = false;
    let tz1 = last_valid_tap(o.x, z);
    let ty1 = last_valid_tap(o.y, y);
    let tx1 = last_valid_tap(o.z, x);
    for (var tz = first_valid_tap(o.x, z); tz <= tz1; tz++) {
        let iz = o.x * z.stride + u32(tz) * z.dilation - z.pad;
        for (var ty = first_valid_tap(o.y, y); ty <= ty1; ty++) {
            let iy = o.y * y.stride + u32(ty) * y.dilation - y.pad;
            for (var tx = first_valid_tap(o.z, x); tx <= tx1; tx++) {
                let ix = o.z * x.stride + u32(tx) * x.dilation - x.pad;
                let at = (iz * y.input + iy) * x.input + ix;
                let v = pool_input[base + at];
                if (is_max) {
                    if (!found || v > acc || is_nan(v)) {
                        acc = v;
                        best = at;
                        found = true;
                    }
                } else {
                    acc += v;
                }
            }
        }
    }
    if (pool_kind() == 1u) {
        acc = acc / divisor_at(o);
    }
    pool_output[gid] = acc;
    if (is_max) {
        indices[gid] = best;
    }
}
