// Max pooling's backward, for every algorithm: one invocation per input element gathers the
// gradient of each window whose index names it (no atomics, so the sum's order is fixed:
// increasing output order, as the CPU scatters). An index outside its window routes nowhere.
@group(0) @binding(1) var<storage, read> grad_output: array<f32>;
@group(0) @binding(2) var<storage, read> indices: array<u32>;
@group(0) @binding(3) var<storage, read_write> grad_input: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let gid = group_index(wid, nwg) * 256u + lid;
    if (gid >= planes() * pool_in_plane()) {
        return;
    }
    let z = pool_axis(0u); let y = pool_axis(1u); let x = pool_axis(2u);
    let plane = gid / pool_in_plane();
    let at = gid % pool_in_plane();
    let i = coords(at, y.input, x.input);
    let base = plane * pool_out_plane();
    var acc = 0.0;
    for (var tz = i32(z.kernel) - 1; tz >= 0; tz--) {
        let oz = inverse_tap(i.x, u32(tz), z);
        if (oz < 0) { continue; }
        for (var ty = i32(y.kernel) - 1; ty >= 0; ty--) {
            let oy = inverse_tap(i.y, u32(ty), y);
            if (oy < 0) { continue; }
            for (var tx = i32(x.kernel) - 1; tx >= 0; tx--) {
                let ox = inverse_tap(i.z, u32(tx), x);
                if (ox < 0) { continue; }
                let o = base + (u32(oz) * y.output + u32(oy)) * x.output + u32(ox);
                if (indices[o] == at) {
                    acc += grad_output[o];
                }
            }
        }
    }
    grad_input[gid] = acc;
}
