// origami's ops as CUDA C kernels: the same algorithms, parameter block and launch geometry
// as the WGSL shaders (../shaders), so crate::conv and crate::pool drive both backends
// unchanged. Each kernel is named after its shader (Shader::label) and takes the 64-word
// parameter block by value, then its buffers in binding order. Blocks are linearised like
// workgroups: blockIdx.x + blockIdx.y * gridDim.x.
//
// Compiled by NVRTC 13.0 into kernels.ptx (scripts/make-ptx.sh), which the crate embeds.

typedef unsigned int u32;

struct Params {
    u32 w[64];
};

struct Axis {
    u32 input, output, kernel, stride, dilation, pad;
};

__device__ __forceinline__ Axis axis_at(const Params& P, u32 b) {
    Axis a = {P.w[b], P.w[b + 1], P.w[b + 2], P.w[b + 3], P.w[b + 4], P.w[b + 5]};
    return a;
}

__device__ __forceinline__ int tap(u32 o, u32 k, Axis a) {
    int i = (int)(o * a.stride + k * a.dilation) - (int)a.pad;
    return (i < 0 || i >= (int)a.input) ? -1 : i;
}

__device__ __forceinline__ int inverse_tap(u32 i, u32 k, Axis a) {
    int t = (int)(i + a.pad) - (int)(k * a.dilation);
    if (t < 0 || (u32)t % a.stride != 0u) return -1;
    u32 o = (u32)t / a.stride;
    return o >= a.output ? -1 : (int)o;
}

struct U3 {
    u32 x, y, z;
};

__device__ __forceinline__ U3 coords(u32 flat, u32 ey, u32 ex) {
    U3 c = {flat / (ey * ex), (flat / ex) % ey, flat % ex};
    return c;
}

__device__ __forceinline__ u32 group_index() {
    return blockIdx.x + blockIdx.y * gridDim.x;
}

__device__ __forceinline__ bool is_nan_bits(float v) {
    return (__float_as_uint(v) & 0x7fffffffu) > 0x7f800000u;
}

// ---- convolution (crate::conv params) ----

struct Conv {
    u32 batch, cin, cout, groups, cg, kg, has_bias, in_plane, out_plane, taps;
    Axis z, y, x;
};

__device__ __forceinline__ Conv conv_params(const Params& P) {
    Conv c;
    c.batch = P.w[0]; c.cin = P.w[1]; c.cout = P.w[2]; c.groups = P.w[3];
    c.cg = P.w[4]; c.kg = P.w[5]; c.has_bias = P.w[6]; c.in_plane = P.w[7];
    c.out_plane = P.w[8]; c.taps = P.w[9];
    c.z = axis_at(P, 12); c.y = axis_at(P, 18); c.x = axis_at(P, 24);
    return c;
}

// The input value output position o reads through tap t in the plane at `base`, 0 in the
// padding.
__device__ __forceinline__ float read_input_tap(const Conv& c, const float* x, u32 base, U3 o, U3 t) {
    int iz = tap(o.x, t.x, c.z), iy = tap(o.y, t.y, c.y), ix = tap(o.z, t.z, c.x);
    if (iz < 0 || iy < 0 || ix < 0) return 0.0f;
    return x[base + ((u32)iz * c.y.input + (u32)iy) * c.x.input + (u32)ix];
}

__device__ __forceinline__ int output_of_tap(const Conv& c, U3 i, U3 t) {
    int oz = inverse_tap(i.x, t.x, c.z), oy = inverse_tap(i.y, t.y, c.y), ox = inverse_tap(i.z, t.z, c.x);
    if (oz < 0 || oy < 0 || ox < 0) return -1;
    return (int)(((u32)oz * c.y.output + (u32)oy) * c.x.output + (u32)ox);
}

extern "C" __global__ void conv_forward_direct(const Params P, const float* conv_input,
        const float* weight, const float* bias, float* output) {
    Conv c = conv_params(P);
    u32 gid = group_index() * 256u + threadIdx.x;
    if (gid >= c.batch * c.cout * c.out_plane) return;
    u32 sp = gid % c.out_plane, k = (gid / c.out_plane) % c.cout, n = gid / (c.out_plane * c.cout);
    U3 o = coords(sp, c.y.output, c.x.output);
    u32 g = k / c.kg;
    float acc = 0.0f;
    for (u32 ci = 0; ci < c.cg; ci++) {
        u32 xb = (n * c.cin + g * c.cg + ci) * c.in_plane;
        u32 wi = (k * c.cg + ci) * c.taps;
        for (u32 tz = 0; tz < c.z.kernel; tz++)
            for (u32 ty = 0; ty < c.y.kernel; ty++)
                for (u32 tx = 0; tx < c.x.kernel; tx++) {
                    U3 t = {tz, ty, tx};
                    acc = fmaf(read_input_tap(c, conv_input, xb, o, t), weight[wi], acc);
                    wi++;
                }
    }
    if (c.has_bias != 0u) acc += bias[k];
    output[gid] = acc;
}

extern "C" __global__ void conv_backward_input_direct(const Params P, const float* grad_output,
        const float* weight, float* grad_input) {
    Conv c = conv_params(P);
    u32 gid = group_index() * 256u + threadIdx.x;
    if (gid >= c.batch * c.cin * c.in_plane) return;
    u32 sp = gid % c.in_plane, cf = (gid / c.in_plane) % c.cin, n = gid / (c.in_plane * c.cin);
    U3 i = coords(sp, c.y.input, c.x.input);
    u32 g = cf / c.cg, ci = cf % c.cg;
    float acc = 0.0f;
    for (u32 kk = 0; kk < c.kg; kk++) {
        u32 k = g * c.kg + kk;
        u32 dyb = (n * c.cout + k) * c.out_plane;
        u32 wi = (k * c.cg + ci) * c.taps;
        for (u32 tz = 0; tz < c.z.kernel; tz++)
            for (u32 ty = 0; ty < c.y.kernel; ty++)
                for (u32 tx = 0; tx < c.x.kernel; tx++) {
                    U3 t = {tz, ty, tx};
                    int o = output_of_tap(c, i, t);
                    if (o >= 0) acc = fmaf(weight[wi], grad_output[dyb + (u32)o], acc);
                    wi++;
                }
    }
    grad_input[gid] = acc;
}

extern "C" __global__ void conv_backward_weight_direct(const Params P, const float* conv_input,
        const float* grad_output, float* grad_weight) {
    Conv c = conv_params(P);
    u32 gid = group_index() * 256u + threadIdx.x;
    if (gid >= c.cout * c.cg * c.taps) return;
    U3 t = coords(gid % c.taps, c.y.kernel, c.x.kernel);
    u32 ci = (gid / c.taps) % c.cg, k = gid / (c.taps * c.cg), g = k / c.kg;
    float acc = 0.0f;
    for (u32 n = 0; n < c.batch; n++) {
        u32 xb = (n * c.cin + g * c.cg + ci) * c.in_plane;
        u32 dyi = (n * c.cout + k) * c.out_plane;
        for (u32 oz = 0; oz < c.z.output; oz++)
            for (u32 oy = 0; oy < c.y.output; oy++)
                for (u32 ox = 0; ox < c.x.output; ox++) {
                    U3 o = {oz, oy, ox};
                    acc = fmaf(grad_output[dyi], read_input_tap(c, conv_input, xb, o, t), acc);
                    dyi++;
                }
    }
    grad_weight[gid] = acc;
}

extern "C" __global__ void conv_backward_bias(const Params P, const float* grad_output, float* grad_bias) {
    __shared__ float partial[256];
    Conv c = conv_params(P);
    u32 k = group_index();
    if (k >= c.cout) return;
    u32 lid = threadIdx.x;
    float acc = 0.0f;
    u32 per_channel = c.batch * c.out_plane;
    for (u32 e = lid; e < per_channel; e += 256u) {
        u32 n = e / c.out_plane;
        acc += grad_output[(n * c.cout + k) * c.out_plane + e % c.out_plane];
    }
    partial[lid] = acc;
    __syncthreads();
    for (u32 s = 128u; s > 0u; s >>= 1) {
        if (lid < s) partial[lid] += partial[lid + s];
        __syncthreads();
    }
    if (lid == 0u) grad_bias[k] = partial[0];
}

// The tiled ("implicit GEMM") convolution, as gemm_tile.wgsl: per group, C = A B with
// operands gathered from the tensors; 64 x 64 tiles of C, 16-deep steps staged in shared
// memory, a 4 x 4 register block per thread of a 16 x 16 block. `Op` supplies the
// direction's dims (M, N, R), load_a, load_b and store_c.
template <typename Op>
__device__ __forceinline__ void gemm_tile(const Conv& c, const Op& op) {
    __shared__ float a_tile[1024];
    __shared__ float b_tile[1024];
    const u32 TM = 64u, TN = 64u, TK = 16u;
    u32 M = op.m(c), N = op.n(c), R = op.r(c);
    u32 tiles_n = (N + TN - 1u) / TN, tiles_m = (M + TM - 1u) / TM;
    u32 tile = group_index();
    if (tile >= tiles_n * tiles_m * c.groups) return;
    u32 n0 = (tile % tiles_n) * TN, m0 = ((tile / tiles_n) % tiles_m) * TM, g = tile / (tiles_n * tiles_m);
    u32 lx = threadIdx.x, ly = threadIdx.y, lid = ly * 16u + lx;
    float acc[16];
    for (int i = 0; i < 16; i++) acc[i] = 0.0f;
    for (u32 r0 = 0; r0 < R; r0 += TK) {
        for (u32 e = 0; e < 4u; e++) {
            u32 idx = lid + e * 256u;
            u32 am = idx / TK, ar = idx % TK;
            a_tile[ar * TM + am] = (m0 + am < M && r0 + ar < R) ? op.load_a(c, g, m0 + am, r0 + ar) : 0.0f;
            u32 br = idx / TN, bn = idx % TN;
            b_tile[br * TN + bn] = (r0 + br < R && n0 + bn < N) ? op.load_b(c, g, r0 + br, n0 + bn) : 0.0f;
        }
        __syncthreads();
        for (u32 k = 0; k < TK; k++) {
            float a[4], b[4];
            for (u32 i = 0; i < 4u; i++) {
                a[i] = a_tile[k * TM + ly + 16u * i];
                b[i] = b_tile[k * TN + lx + 16u * i];
            }
            for (u32 i = 0; i < 4u; i++)
                for (u32 j = 0; j < 4u; j++) acc[i * 4u + j] = fmaf(a[i], b[j], acc[i * 4u + j]);
        }
        __syncthreads();
    }
    for (u32 i = 0; i < 4u; i++) {
        u32 m = m0 + ly + 16u * i;
        for (u32 j = 0; j < 4u; j++) {
            u32 n = n0 + lx + 16u * j;
            if (m < M && n < N) op.store_c(c, g, m, n, acc[i * 4u + j]);
        }
    }
}

struct ForwardOp {
    const float* x; const float* w; const float* bias; float* y;
    __device__ u32 m(const Conv& c) const { return c.kg; }
    __device__ u32 n(const Conv& c) const { return c.batch * c.out_plane; }
    __device__ u32 r(const Conv& c) const { return c.cg * c.taps; }
    __device__ float load_a(const Conv& c, u32 g, u32 m, u32 r) const {
        return w[(g * c.kg + m) * c.cg * c.taps + r];
    }
    __device__ float load_b(const Conv& c, u32 g, u32 r, u32 n) const {
        u32 ci = r / c.taps;
        U3 t = coords(r % c.taps, c.y.kernel, c.x.kernel);
        u32 b = n / c.out_plane;
        U3 o = coords(n % c.out_plane, c.y.output, c.x.output);
        return read_input_tap(c, x, (b * c.cin + g * c.cg + ci) * c.in_plane, o, t);
    }
    __device__ void store_c(const Conv& c, u32 g, u32 m, u32 n, float v) const {
        u32 k = g * c.kg + m;
        if (c.has_bias != 0u) v += bias[k];
        y[((n / c.out_plane) * c.cout + k) * c.out_plane + n % c.out_plane] = v;
    }
};

struct BackwardInputOp {
    const float* dy; const float* w; float* dx;
    __device__ u32 m(const Conv& c) const { return c.cg; }
    __device__ u32 n(const Conv& c) const { return c.batch * c.in_plane; }
    __device__ u32 r(const Conv& c) const { return c.kg * c.taps; }
    __device__ float load_a(const Conv& c, u32 g, u32 m, u32 r) const {
        u32 k = g * c.kg + r / c.taps;
        return w[(k * c.cg + m) * c.taps + r % c.taps];
    }
    __device__ float load_b(const Conv& c, u32 g, u32 r, u32 n) const {
        u32 k = g * c.kg + r / c.taps;
        U3 t = coords(r % c.taps, c.y.kernel, c.x.kernel);
        u32 b = n / c.in_plane;
        U3 i = coords(n % c.in_plane, c.y.input, c.x.input);
        int o = output_of_tap(c, i, t);
        return o < 0 ? 0.0f : dy[(b * c.cout + k) * c.out_plane + (u32)o];
    }
    __device__ void store_c(const Conv& c, u32 g, u32 m, u32 n, float v) const {
        dx[((n / c.in_plane) * c.cin + g * c.cg + m) * c.in_plane + n % c.in_plane] = v;
    }
};

struct BackwardWeightOp {
    const float* x; const float* dy; float* dw;
    __device__ u32 m(const Conv& c) const { return c.kg; }
    __device__ u32 n(const Conv& c) const { return c.cg * c.taps; }
    __device__ u32 r(const Conv& c) const { return c.batch * c.out_plane; }
    __device__ float load_a(const Conv& c, u32 g, u32 m, u32 r) const {
        u32 b = r / c.out_plane;
        return dy[(b * c.cout + g * c.kg + m) * c.out_plane + r % c.out_plane];
    }
    __device__ float load_b(const Conv& c, u32 g, u32 r, u32 n) const {
        u32 b = r / c.out_plane;
        U3 o = coords(r % c.out_plane, c.y.output, c.x.output);
        u32 ci = n / c.taps;
        U3 t = coords(n % c.taps, c.y.kernel, c.x.kernel);
        return read_input_tap(c, x, (b * c.cin + g * c.cg + ci) * c.in_plane, o, t);
    }
    __device__ void store_c(const Conv& c, u32 g, u32 m, u32 n, float v) const {
        dw[(g * c.kg + m) * c.cg * c.taps + n] = v;
    }
};

extern "C" __global__ void conv_forward_tiled(const Params P, const float* conv_input,
        const float* weight, const float* bias, float* output) {
    Conv c = conv_params(P);
    ForwardOp op = {conv_input, weight, bias, output};
    gemm_tile(c, op);
}

extern "C" __global__ void conv_backward_input_tiled(const Params P, const float* grad_output,
        const float* weight, float* grad_input) {
    Conv c = conv_params(P);
    BackwardInputOp op = {grad_output, weight, grad_input};
    gemm_tile(c, op);
}

extern "C" __global__ void conv_backward_weight_tiled(const Params P, const float* conv_input,
        const float* grad_output, float* grad_weight) {
    Conv c = conv_params(P);
    BackwardWeightOp op = {conv_input, grad_output, grad_weight};
    gemm_tile(c, op);
}

// ---- pooling (crate::pool params; the pool block starts at word 32) ----

#define POOL_BLOCK 32u

struct Pool {
    u32 kind, planes, in_plane, out_plane, count_include_pad, divisor_override;
    Axis a[3];
};

__device__ __forceinline__ Pool pool_params(const Params& P) {
    Pool q;
    q.kind = P.w[POOL_BLOCK]; q.planes = P.w[POOL_BLOCK + 1]; q.in_plane = P.w[POOL_BLOCK + 2];
    q.out_plane = P.w[POOL_BLOCK + 3]; q.count_include_pad = P.w[POOL_BLOCK + 4];
    q.divisor_override = P.w[POOL_BLOCK + 5];
    for (u32 i = 0; i < 3u; i++) q.a[i] = axis_at(P, POOL_BLOCK + 6u + 6u * i);
    return q;
}

__device__ __forceinline__ int first_valid_tap(u32 o, Axis a) {
    u32 start = o * a.stride;
    u32 before = a.pad > start ? a.pad - start : 0u;
    u32 t = (before + a.dilation - 1u) / a.dilation;
    return (t < a.kernel && start + t * a.dilation < a.input + a.pad) ? (int)t : -1;
}

__device__ __forceinline__ int last_valid_tap(u32 o, Axis a) {
    int first = first_valid_tap(o, a);
    if (first < 0) return -1;
    u32 room = a.input - 1u + a.pad - o * a.stride;
    int t = (int)min(room / a.dilation, a.kernel - 1u);
    return t > first ? t : first;
}

__device__ __forceinline__ u32 taps_in_input(u32 o, Axis a) {
    int first = first_valid_tap(o, a);
    return first < 0 ? 0u : (u32)(last_valid_tap(o, a) - first + 1);
}

__device__ __forceinline__ u32 taps_in_padded(u32 o, Axis a) {
    u32 end = a.input + 2u * a.pad, start = o * a.stride;
    if (start >= end) return 0u;
    return min((end - start - 1u) / a.dilation + 1u, a.kernel);
}

__device__ __forceinline__ float divisor_at(const Pool& q, U3 o) {
    if (q.divisor_override != 0u) return (float)q.divisor_override;
    u32 oo[3] = {o.x, o.y, o.z};
    u32 count = 1u;
    for (u32 i = 0; i < 3u; i++)
        count *= q.count_include_pad != 0u ? taps_in_padded(oo[i], q.a[i]) : taps_in_input(oo[i], q.a[i]);
    return (float)count;
}

__device__ __forceinline__ float divisor_of_flat(const Pool& q, u32 flat) {
    return divisor_at(q, coords(flat % q.out_plane, q.a[1].output, q.a[2].output));
}

extern "C" __global__ void pool_forward_direct(const Params P, const float* pool_input,
        float* pool_output, u32* indices) {
    Pool q = pool_params(P);
    u32 gid = group_index() * 256u + threadIdx.x;
    if (gid >= q.planes * q.out_plane) return;
    Axis z = q.a[0], y = q.a[1], x = q.a[2];
    u32 plane = gid / q.out_plane;
    U3 o = coords(gid % q.out_plane, y.output, x.output);
    u32 base = plane * q.in_plane;
    bool is_max = q.kind == 0u;
    float acc = 0.0f;
    u32 best = 0u;
    bool found = false;
    int tz1 = last_valid_tap(o.x, z), ty1 = last_valid_tap(o.y, y), tx1 = last_valid_tap(o.z, x);
    for (int tz = first_valid_tap(o.x, z); tz <= tz1; tz++) {
        u32 iz = o.x * z.stride + (u32)tz * z.dilation - z.pad;
        for (int ty = first_valid_tap(o.y, y); ty <= ty1; ty++) {
            u32 iy = o.y * y.stride + (u32)ty * y.dilation - y.pad;
            for (int tx = first_valid_tap(o.z, x); tx <= tx1; tx++) {
                u32 ix = o.z * x.stride + (u32)tx * x.dilation - x.pad;
                u32 at = (iz * y.input + iy) * x.input + ix;
                float v = pool_input[base + at];
                if (is_max) {
                    if (!found || v > acc || is_nan_bits(v)) {
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
    if (q.kind == 1u) acc = acc / divisor_at(q, o);
    pool_output[gid] = acc;
    if (is_max) indices[gid] = best;
}

// Pooling's backward by gathering, as pool_backward_gather.wgsl: per input element, every
// window that reads it in increasing output order; average divides, max keeps a window's
// gradient only where its index names the element.
extern "C" __global__ void pool_backward_gather(const Params P, const float* grad_output,
        const u32* indices, float* grad_input) {
    Pool q = pool_params(P);
    u32 gid = group_index() * 256u + threadIdx.x;
    if (gid >= q.planes * q.in_plane) return;
    Axis z = q.a[0], y = q.a[1], x = q.a[2];
    u32 plane = gid / q.in_plane;
    u32 at = gid % q.in_plane;
    U3 i = coords(at, y.input, x.input);
    u32 base = plane * q.out_plane;
    float acc = 0.0f;
    for (int tz = (int)z.kernel - 1; tz >= 0; tz--) {
        int oz = inverse_tap(i.x, (u32)tz, z);
        if (oz < 0) continue;
        for (int ty = (int)y.kernel - 1; ty >= 0; ty--) {
            int oy = inverse_tap(i.y, (u32)ty, y);
            if (oy < 0) continue;
            for (int tx = (int)x.kernel - 1; tx >= 0; tx--) {
                int ox = inverse_tap(i.z, (u32)tx, x);
                if (ox < 0) continue;
                U3 o = {(u32)oz, (u32)oy, (u32)ox};
                u32 at_o = base + (o.x * y.output + o.y) * x.output + o.z;
                if (q.kind == 0u) {
                    if (indices[at_o] == at) acc += grad_output[at_o];
                } else if (q.kind == 1u) {
                    acc += grad_output[at_o] / divisor_at(q, o);
                } else {
                    acc += grad_output[at_o];
                }
            }
        }
    }
    grad_input[gid] = acc;
}

// PrefixSum's window pass, as pool_window_pass.wgsl: each block owns a segment of SEGMENT
// virtual positions, scans it in shared memory (Hillis-Steele, restarted at blocks of k taps
// per residue class, aligned to the line's start) into pre and suf, and answers each
// window with suf[first] (+) pre[last].

#define SEGMENT 1024u
#define THREADS 256u
#define ITEMS 4u
#define NO_BLOCK 0xffffffffu

struct Pass {
    u32 outer, inner, src_len, upsample, virtual_len, out_len, out_stride;
    int pad;
    u32 window, dilation, first_pass, scale_mode, seg_outputs, segments, per_class;
};

__device__ __forceinline__ Pass pass_params(const Params& P) {
    Pass s;
    s.outer = P.w[0]; s.inner = P.w[1]; s.src_len = P.w[2]; s.upsample = P.w[3];
    s.virtual_len = P.w[4]; s.out_len = P.w[5]; s.out_stride = P.w[6]; s.pad = (int)P.w[7];
    s.window = P.w[8]; s.dilation = P.w[9]; s.first_pass = P.w[10]; s.scale_mode = P.w[11];
    s.seg_outputs = P.w[12]; s.segments = P.w[13]; s.per_class = P.w[14];
    return s;
}

struct Item {
    float v;
    u32 i;
};

__device__ __forceinline__ Item identity(const Pool& q) {
    Item it = {q.kind == 0u ? __uint_as_float(0xff800000u) : 0.0f, 0u};
    return it;
}

__device__ __forceinline__ Item combine(const Pool& q, Item a, Item b) {
    if (q.kind != 0u) {
        Item s = {a.v + b.v, 0u};
        return s;
    }
    if (is_nan_bits(b.v)) return b;
    if (is_nan_bits(a.v) || !(b.v > a.v)) return a;
    return b;
}

__device__ __forceinline__ u32 slot_rel(const Pass& s, u32 slot) {
    return slot / s.per_class + (slot % s.per_class) * s.dilation;
}

__device__ __forceinline__ u32 block_of(const Pass& s, int q) {
    return q < 0 ? NO_BLOCK : ((u32)q / s.dilation) / s.window;
}

extern "C" __global__ void pool_window_pass(const Params P, const float* src, const u32* src_index,
        float* dst, u32* dst_index) {
    __shared__ float pre_v[SEGMENT];
    __shared__ u32 pre_i[SEGMENT];
    __shared__ float suf_v[SEGMENT];
    __shared__ u32 suf_i[SEGMENT];
    Pool q = pool_params(P);
    Pass s = pass_params(P);
    u32 wg = group_index();
    if (wg >= s.outer * s.inner * s.segments) return;
    u32 lid = threadIdx.x;
    u32 seg = wg % s.segments, line = wg / s.segments;
    u32 ii = line % s.inner, oo = line / s.inner;
    u32 o_first = seg * s.seg_outputs;
    int base = (int)(o_first * s.out_stride) - s.pad;
    u32 per = s.per_class, d = s.dilation;

    u32 block[ITEMS];
    for (u32 e = 0; e < ITEMS; e++) {
        u32 slot = lid + e * THREADS;
        u32 rel = slot_rel(s, slot);
        int qv = base + (int)rel;
        Item item = identity(q);
        if (slot / per < d && rel < SEGMENT && qv >= 0 && (u32)qv < s.virtual_len &&
            (u32)qv % s.upsample == 0u) {
            u32 at = (oo * s.src_len + (u32)qv / s.upsample) * s.inner + ii;
            item.v = src[at];
            if (q.kind == 0u) item.i = s.first_pass != 0u ? at % q.in_plane : src_index[at];
            if (s.scale_mode == 2u) item.v = item.v / divisor_of_flat(q, at);
        }
        block[e] = block_of(s, qv);
        pre_v[slot] = item.v; pre_i[slot] = item.i;
        suf_v[slot] = item.v; suf_i[slot] = item.i;
    }
    __syncthreads();

    for (u32 off = 1u; off < per; off <<= 1) {
        Item pre_new[ITEMS], suf_new[ITEMS];
        for (u32 e = 0; e < ITEMS; e++) {
            u32 slot = lid + e * THREADS;
            u32 j = slot % per;
            Item mine_p = {pre_v[slot], pre_i[slot]};
            pre_new[e] = mine_p;
            if (j >= off && block_of(s, base + (int)slot_rel(s, slot - off)) == block[e]) {
                Item before = {pre_v[slot - off], pre_i[slot - off]};
                pre_new[e] = combine(q, before, mine_p);
            }
            Item mine_s = {suf_v[slot], suf_i[slot]};
            suf_new[e] = mine_s;
            if (j + off < per && block_of(s, base + (int)slot_rel(s, slot + off)) == block[e]) {
                Item after = {suf_v[slot + off], suf_i[slot + off]};
                suf_new[e] = combine(q, mine_s, after);
            }
        }
        __syncthreads();
        for (u32 e = 0; e < ITEMS; e++) {
            u32 slot = lid + e * THREADS;
            pre_v[slot] = pre_new[e].v; pre_i[slot] = pre_new[e].i;
            suf_v[slot] = suf_new[e].v; suf_i[slot] = suf_new[e].i;
        }
        __syncthreads();
    }

    u32 k = s.window;
    for (u32 ol = lid; ol < s.seg_outputs; ol += THREADS) {
        u32 o = o_first + ol;
        if (o >= s.out_len) break;
        u32 r0 = ol * s.out_stride;
        int q0 = base + (int)r0;
        u32 t0 = q0 < 0 ? ((u32)(-q0) + d - 1u) / d : 0u;
        Item result = identity(q);
        int last = (int)s.virtual_len - 1;
        if (t0 < k && q0 + (int)(t0 * d) <= last) {
            u32 t1 = min(k - 1u, (u32)(last - q0) / d);
            u32 ra = r0 + t0 * d, rb = r0 + t1 * d;
            u32 sa = (ra % d) * per + ra / d, sb = (rb % d) * per + rb / d;
            u32 ja = (u32)(q0 + (int)(t0 * d)) / d, jb = (u32)(q0 + (int)(t1 * d)) / d;
            Item pa = {pre_v[sb], pre_i[sb]}, sa_it = {suf_v[sa], suf_i[sa]};
            if (ja / k == jb / k) {
                result = (ja % k == 0u) ? pa : sa_it;
            } else {
                result = combine(q, sa_it, pa);
            }
        }
        u32 at = (oo * s.out_len + o) * s.inner + ii;
        if (s.scale_mode == 1u) result.v = result.v / divisor_of_flat(q, at);
        dst[at] = result.v;
        if (q.kind == 0u) dst_index[at] = result.i;
    }
}
