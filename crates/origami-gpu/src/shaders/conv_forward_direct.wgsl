// Direct forward: one invocation per output, zip-reducing its window over the group's
// channels. Padding taps multiply zero, as on the CPU (so 0 * inf = NaN there too).
@group(0) @binding(1) var<storage, read> conv_input: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> output: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let gid = group_index(wid, nwg) * 256u + lid;
    if (gid >= batch() * cout() * out_plane()) {
        return;
    }
    let y = ay(); let x = ax(); let z = az();
    let sp = gid % out_plane();
    let k = (gid / out_plane()) % cout();
    let n = gid / (out_plane() * cout());
    let o = coords(sp, y.output, x.output);
    let g = k / kg();
    var acc = 0.0;
    for (var c = 0u; c < cg(); c++) {
        let xb = (n * cin() + g * cg() + c) * in_plane();
        var wi = (k * cg() + c) * taps();
        for (var tz = 0u; tz < z.kernel; tz++) {
            for (var ty = 0u; ty < y.kernel; ty++) {
                for (var tx = 0u; tx < x.kernel; tx++) {
                    acc = fma(read_input_tap(xb, o, vec3<u32>(tz, ty, tx)), weight[wi], acc);
                    wi++;
                }
            }
        }
    }
    if (has_bias()) {
        acc += bias[k];
    }
    output[gid] = acc;
}
