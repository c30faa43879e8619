// Input gradient as a GEMM per group: M = input channels, N = batch x input positions,
// R = output channels x taps; A is the weight (transposed per group), B the output gradient
// gathered through the reversed anchor (zero where no output reads the input that way).
@group(0) @binding(1) var<storage, read> grad_output: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read_write> grad_input: array<f32>;

fn gemm_dims() -> vec3<u32> {
    return vec3<u32>(cg(), batch() * in_plane(), kg() * taps());
}

fn load_a(g: u32, m: u32, r: u32) -> f32 {
    let k = g * kg() + r / taps();
    return weight[(k * cg() + m) * taps() + r % taps()];
}

fn load_b(g: u32, r: u32, n: u32) -> f32 {
    let k = g * kg() + r / taps();
    let t = coords(r % taps(), ay().kernel, ax().kernel);
    let b = n / in_plane();
    let i = coords(n % in_plane(), ay().input, ax().input);
    let o = output_of_tap(i, t);
    if (o < 0) {
        return 0.0;
    }
    return grad_output[(b * cout() + k) * out_plane() + u32(o)];
}

fn store_c(g: u32, m: u32, n: u32, v: f32) {
    grad_input[((n / in_plane()) * cin() + g * cg() + m) * in_plane() + n % in_plane()] = v;
}
