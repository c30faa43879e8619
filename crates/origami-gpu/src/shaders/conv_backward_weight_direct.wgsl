// Direct weight gradient: one invocation per weight element, reducing over the batch and
// every output position. Padding taps multiply zero, as on the CPU.
@group(0) @binding(1) var<storage, read> conv_input: array<f32>;
@group(0) @binding(2) var<storage, read> grad_output: array<f32>;
@group(0) @binding(3) var<storage, read_write> grad_weight: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let gid = group_index(wid, nwg) * 256u + lid;
    if (gid >= cout() * cg() * taps()) {
        return;
    }
    let y = ay(); let x = ax(); let z = az();
    let t = coords(gid % taps(), y.kernel, x.kernel);
    let c = (gid / taps()) % cg();
    let k = gid / (taps() * cg());
    let g = k / kg();
    var acc = 0.0;
    for (var n = 0u; n < batch(); n++) {
        let xb = (n * cin() + g * cg() + c) * in_plane();
        var dyi = (n * cout() + k) * out_plane();
        for (var oz = 0u; oz < z.output; oz++) {
            for (var oy = 0u; oy < y.output; oy++) {
                for (var ox = 0u; ox < x.output; ox++) {
                    let v = read_input_tap(xb, vec3<u32>(oz, oy, ox), t);
                    acc = fma(grad_output[dyi], v, acc);
                    dyi++;
                }
            }
        }
    }
    grad_weight[gid] = acc;
}
