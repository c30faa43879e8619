// Needs a binding named conv_input.

// The input value output position `o` (3-D) reads through kernel tap `t` (3-D) in input
// plane `plane_base`, or 0 in the padding.
fn read_input_tap(plane_base: u32, o: vec3<u32>, t: vec3<u32>) -> f32 {
    let z = az(); let y = ay(); let x = ax();
    let iz = tap(o.x, t.x, z);
    let iy = tap(o.y, t.y, y);
    let ix = tap(o.z, t.z, x);
    if (iz < 0 || iy < 0 || ix < 0) {
        return 0.0;
    }
    return conv_input[plane_base + (u32(iz) * y.input + u32(iy)) * x.input + u32(ix)];
}
