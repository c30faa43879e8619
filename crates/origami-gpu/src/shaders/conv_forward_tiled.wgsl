// Forward as a GEMM per group: M = output channels, N = batch x output positions,
// R = input channels x taps; A is the weight, B the unrolled input (gathered, zero in the
// padding), C the output.
@group(0) @binding(1) var<storage, read> conv_input: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> output: array<f32>;

fn gemm_dims() -> vec3<u32> {
    return vec3<u32>(kg(), batch() * out_plane(), cg() * taps());
}

fn load_a(g: u32, m: u32, r: u32) -> f32 {
    return weight[(g * kg() + m) * cg() * taps() + r];
}

fn load_b(g: u32, r: u32, n: u32) -> f32 {
    let c = r / taps();
    let t = coords(r % taps(), ay().kernel, ax().kernel);
    let b = n / out_plane();
    let o = coords(n % out_plane(), ay().output, ax().output);
    return read_input_tap((b * cin() + g * cg() + c) * in_plane(), o, t);
}

fn store_c(g: u32, m: u32, n: u32, v: f32) {
    let k = g * kg() + m;
    var s = v;
    if (has_bias()) {
        s += bias[k];
    }
    output[((n / out_plane()) * cout() + k) * out_plane() + n % out_plane()] = s;
}
