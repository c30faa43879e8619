// Direct input gradient: one invocation per input element, gathering from every output
// whose window reads it (the "reversed anchor"), over the group's output channels.
@group(0) @binding(1) var<storage, read> grad_output: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read_write> grad_input: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let gid = group_index(wid, nwg) * 256u + lid;
    if (gid >= batch() * cin() * in_plane()) {
        return;
    }
    let y = ay(); let x = ax(); let z = az();
    let sp = gid % in_plane();
    let cf = (gid / in_plane()) % cin();
    let n = gid / (in_plane() * cin());
    let i = coords(sp, y.input, x.input);
    let g = cf / cg();
    let c = cf % cg();
    var acc = 0.0;
    for (var kk = 0u; kk < kg(); kk++) {
        let k = g * kg() + kk;
        let dyb = (n * cout() + k) * out_plane();
        var wi = (k * cg() + c) * taps();
        for (var tz = 0u; tz < z.kernel; tz++) {
            for (var ty = 0u; ty < y.kernel; ty++) {
                for (var tx = 0u; tx < x.kernel; tx++) {
                    let o = output_of_tap(i, vec3<u32>(tz, ty, tx));
                    if (o >= 0) {
                        acc = fma(weight[wi], grad_output[dyb + u32(o)], acc);
                    }
                    wi++;
                }
            }
        }
    }
    grad_input[gid] = acc;
}
