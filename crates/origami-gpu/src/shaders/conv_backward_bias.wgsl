// Bias gradient: one workgroup per output channel sums its gradient over the batch and the
// plane, each invocation a fixed strided share, then a tree in workgroup memory: the order
// of additions is fixed, so the result is the same on every run.
@group(0) @binding(1) var<storage, read> grad_output: array<f32>;
@group(0) @binding(2) var<storage, read_write> grad_bias: array<f32>;

var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let k = group_index(wid, nwg);
    if (k >= cout()) {
        return;
    }
    var acc = 0.0;
    let per_channel = batch() * out_plane();
    for (var e = lid; e < per_channel; e += 256u) {
        let n = e / out_plane();
        acc += grad_output[(n * cout() + k) * out_plane() + e % out_plane()];
    }
    partial[lid] = acc;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s >>= 1u) {
        if (lid < s) {
            partial[lid] += partial[lid + s];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        grad_bias[k] = partial[0];
    }
}
