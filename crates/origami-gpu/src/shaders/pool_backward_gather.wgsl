// Pooling's backward by gathering: one invocation per input element sums the gradient of
// every window that reads it, visited in increasing output order (the order in which the
// CPU scatters them), so there are no atomics and the sum's order is fixed. Average divides
// each window's gradient by its divisor; max takes a window's gradient only where its index
// names this element (an index outside its window routes nowhere). `Direct` uses it for every
// kind, `PrefixSum` for max.
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
    let kind = pool_kind();
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
                let o = vec3<u32>(u32(oz), u32(oy), u32(ox));
                let at_o = base + (o.x * y.output + o.y) * x.output + o.z;
                if (kind == 0u) {
                    if (indices[at_o] == at) {
                        acc += grad_output[at_o];
                    }
                } else if (kind == 1u) {
                    acc += grad_output[at_o] / divisor_at(o);
                } else {
                    acc += grad_output[at_o];
                }
            }
        }
    }
    grad_input[gid] = acc;
}
