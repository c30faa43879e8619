// The tiled ("implicit GEMM") convolution: each direction is, per group g, a matrix product
// C[m][n] = sum_r A[m][r] * B[r][n] whose operands are read straight from the tensors
// (load_a, load_b, defined by the direction's prelude) with no im2col buffer. A workgroup
// owns a 64 x 64 tile of C; it stages 64 x 16 of A and 16 x 64 of B in workgroup memory per
// step of r, and each of its 16 x 16 invocations accumulates a 4 x 4 block in registers.

const TM: u32 = 64u;
const TN: u32 = 64u;
const TK: u32 = 16u;

var<workgroup> a_tile: array<f32, 1024>; // [TK][TM]
var<workgroup> b_tile: array<f32, 1024>; // [TK][TN]

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid3: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let dims = gemm_dims(); // (M, N, R) of one group
    let tiles_n = (dims.y + TN - 1u) / TN;
    let tiles_m = (dims.x + TM - 1u) / TM;
    let tile = group_index(wid, nwg);
    if (tile >= tiles_n * tiles_m * groups()) {
        return;
    }
    let n0 = (tile % tiles_n) * TN;
    let m0 = ((tile / tiles_n) % tiles_m) * TM;
    let g = tile / (tiles_n * tiles_m);
    var acc: array<f32, 16>;
    for (var r0 = 0u; r0 < dims.z; r0 += TK) {
        for (var e = 0u; e < 4u; e++) {
            let idx = lid + e * 256u;
            // A: consecutive invocations read consecutive r (contiguous in the tensors).
            let am = idx / TK;
            let ar = idx % TK;
            var av = 0.0;
            if (m0 + am < dims.x && r0 + ar < dims.z) {
                av = load_a(g, m0 + am, r0 + ar);
            }
            a_tile[ar * TM + am] = av;
            // B: consecutive invocations read consecutive n.
            let br = idx / TN;
            let bn = idx % TN;
            var bv = 0.0;
            if (r0 + br < dims.z && n0 + bn < dims.y) {
                bv = load_b(g, r0 + br, n0 + bn);
            }
            b_tile[br * TN + bn] = bv;
        }
        workgroupBarrier();
        for (var k = 0u; k < TK; k++) {
            var a: array<f32, 4>;
            var b: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) {
                a[i] = a_tile[k * TM + lid3.y + 16u * i];
                b[i] = b_tile[k * TN + lid3.x + 16u * i];
            }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) {
                    acc[i * 4u + j] = fma(a[i], b[j], acc[i * 4u + j]);
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let m = m0 + lid3.y + 16u * i;
        for (var j = 0u; j < 4u; j++) {
            let n = n0 + lid3.x + 16u * j;
            if (m < dims.x && n < dims.y) {
                store_c(g, m, n, acc[i * 4u + j]);
            }
        }
    }
}
