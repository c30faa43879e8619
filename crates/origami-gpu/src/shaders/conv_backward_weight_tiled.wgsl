// Weight gradient as a GEMM per group: M = output channels, N = input channels x taps,
// R = batch x output positions; A is the output gradient, B the unrolled input transposed.
@group(0) @binding(1) var<storage, read> conv_input: array<f32>;
@group(0) @binding(2) var<storage, read> grad_output: array<f32>;
@group(0) @binding(3) var<storage, read_write> grad_weight: array<f32>;

fn gemm_dims() -> vec3<u32> {
    return vec3<u32>(kg(), cg() * taps(), batch() * out_plane());
}

fn load_a(g: u32, m: u32, r: u32) -> f32 {
    let b = r / out_plane();
    return grad_output[(b * cout() + g * kg() + m) * out_plane() + r % out_plane()];
}

fn load_b(g: u32, r: u32, n: u32) -> f32 {
    let b = r / out_plane();
    let o = coords(r % out_plane(), ay().output, ax().output);
    let c = n / taps();
    let t = coords(n % taps(), ay().kernel, ax().kernel);
    return read_input_tap((b * cin() + g * cg() + c) * in_plane(), o, t);
}

fn store_c(g: u32, m: u32, n: u32, v: f32) {
    grad_weight[(g * kg() + m) * cg() * taps() + n] = v;
}
