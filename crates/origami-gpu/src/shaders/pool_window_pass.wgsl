// PrefixSum pooling on the GPU: one pass of 1-D windows along one axis of a tensor viewed as
// [outer, line, inner]; a box window is such passes along W, H and D in turn.
//
// Each workgroup owns one line segment of SEGMENT virtual positions and the outputs whose
// windows fit inside it. It loads the segment into workgroup memory and scans it twice
// (Hillis-Steele, restarted at block boundaries): `pre` reduces from each block's start,
// `suf` to its end. Blocks hold `k` taps of one residue class modulo the dilation, aligned
// to the line's start (van Herk / Gil-Werman, as the CPU's prefix_sum), so any full window
// is suf[first] (+) pre[last] and a window clipped by the line's ends is one of the two:
// O(1) per output whatever the window's size, and sums never run past two blocks, which
// keeps their rounding that of one window.
//
// The backward pass of average and sum pooling is the same pass over a virtual line: the
// output gradient upsampled by the stride (zeros between), read through a reversed window.
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> src_index: array<u32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;
@group(0) @binding(4) var<storage, read_write> dst_index: array<u32>;

const SEGMENT: u32 = 1024u;
const THREADS: u32 = 256u;
const ITEMS: u32 = 4u; // SEGMENT / THREADS
const NO_BLOCK: u32 = 0xffffffffu;

var<workgroup> pre_v: array<f32, 1024>;
var<workgroup> pre_i: array<u32, 1024>;
var<workgroup> suf_v: array<f32, 1024>;
var<workgroup> suf_i: array<u32, 1024>;

fn outer() -> u32 { return p(0u); }
fn inner() -> u32 { return p(1u); }
fn src_len() -> u32 { return p(2u); }      // source elements along the line
fn upsample() -> u32 { return p(3u); }     // virtual positions per source element
fn virtual_len() -> u32 { return p(4u); }  // (src_len - 1) * upsample + 1
fn out_len() -> u32 { return p(5u); }
fn out_stride() -> u32 { return p(6u); }
fn pad() -> i32 { return bitcast<i32>(p(7u)); }
fn window() -> u32 { return p(8u); }
fn dilation() -> u32 { return p(9u); }
fn first_pass() -> bool { return p(10u) != 0u; } // max: indices come from positions
fn scale_mode() -> u32 { return p(11u); } // 1: divide outputs, 2: divide the source
fn seg_outputs() -> u32 { return p(12u); }
fn segments() -> u32 { return p(13u); }
fn per_class() -> u32 { return p(14u); }   // ceil(SEGMENT / dilation)

struct Item {
    v: f32,
    i: u32,
}

fn identity() -> Item {
    if (pool_kind() == 0u) {
        return Item(bitcast<f32>(0xff800000u), 0u); // -inf
    }
    return Item(0.0, 0u);
}

// `a` comes before `b` along the line. Max keeps the first maximum and the last NaN.
fn combine(a: Item, b: Item) -> Item {
    if (pool_kind() != 0u) {
        return Item(a.v + b.v, 0u);
    }
    if (is_nan(b.v)) {
        return b;
    }
    if (is_nan(a.v) || !(b.v > a.v)) {
        return a;
    }
    return b;
}

// Slot s holds residue class s / per_class, position s % per_class within it: the segment
// is stored class by class, so each class is contiguous for the scans.
fn slot_rel(s: u32) -> u32 {
    return s / per_class() + (s % per_class()) * dilation();
}

// The block of the virtual position `q`, or NO_BLOCK before the line's start.
fn block_of(q: i32) -> u32 {
    if (q < 0) {
        return NO_BLOCK;
    }
    return (u32(q) / dilation()) / window();
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let wg = group_index(wid, nwg);
    if (wg >= outer() * inner() * segments()) {
        return;
    }
    let seg = wg % segments();
    let line = wg / segments();
    let ii = line % inner();
    let oo = line / inner();
    let o_first = seg * seg_outputs();
    let base = i32(o_first * out_stride()) - pad();
    let per = per_class();
    let d = dilation();

    var block: array<u32, 4>;
    for (var e = 0u; e < ITEMS; e++) {
        let s = lid + e * THREADS;
        let rel = slot_rel(s);
        let q = base + i32(rel);
        var item = identity();
        if (s / per < d && rel < SEGMENT && q >= 0 && u32(q) < virtual_len()
            && u32(q) % upsample() == 0u) {
            let at = (oo * src_len() + u32(q) / upsample()) * inner() + ii;
            item.v = src[at];
            if (pool_kind() == 0u) {
                if (first_pass()) {
                    item.i = at % pool_in_plane();
                } else {
                    item.i = src_index[at];
                }
            }
            if (scale_mode() == 2u) {
                item.v = item.v / divisor_of_flat(at);
            }
        }
        block[e] = block_of(q);
        pre_v[s] = item.v;
        pre_i[s] = item.i;
        suf_v[s] = item.v;
        suf_i[s] = item.i;
    }
    workgroupBarrier();

    for (var off = 1u; off < per; off <<= 1u) {
        var pre_new: array<Item, 4>;
        var suf_new: array<Item, 4>;
        for (var e = 0u; e < ITEMS; e++) {
            let s = lid + e * THREADS;
            let j = s % per;
            pre_new[e] = Item(pre_v[s], pre_i[s]);
            if (j >= off && block_of(base + i32(slot_rel(s - off))) == block[e]) {
                pre_new[e] = combine(Item(pre_v[s - off], pre_i[s - off]), pre_new[e]);
            }
            suf_new[e] = Item(suf_v[s], suf_i[s]);
            if (j + off < per && block_of(base + i32(slot_rel(s + off))) == block[e]) {
                suf_new[e] = combine(suf_new[e], Item(suf_v[s + off], suf_i[s + off]));
            }
        }
        workgroupBarrier();
        for (var e = 0u; e < ITEMS; e++) {
            let s = lid + e * THREADS;
            pre_v[s] = pre_new[e].v;
            pre_i[s] = pre_new[e].i;
            suf_v[s] = suf_new[e].v;
            suf_i[s] = suf_new[e].i;
        }
        workgroupBarrier();
    }

    let k = window();
    for (var ol = lid; ol < seg_outputs(); ol += THREADS) {
        let o = o_first + ol;
        if (o >= out_len()) {
            break;
        }
        let r0 = ol * out_stride();
        let q0 = base + i32(r0);
        // Taps t0..=t1 read inside the line: q0 + t * d in [0, virtual_len).
        var t0 = 0u;
        if (q0 < 0) {
            t0 = (u32(-q0) + d - 1u) / d;
        }
        var result = identity();
        let last = i32(virtual_len()) - 1;
        if (t0 < k && q0 + i32(t0 * d) <= last) {
            let t1 = min(k - 1u, u32(last - q0) / d);
            let ra = r0 + t0 * d;
            let rb = r0 + t1 * d;
            let sa = (ra % d) * per + ra / d;
            let sb = (rb % d) * per + rb / d;
            let ja = u32(q0 + i32(t0 * d)) / d;
            let jb = u32(q0 + i32(t1 * d)) / d;
            if (ja / k == jb / k) {
                if (ja % k == 0u) {
                    result = Item(pre_v[sb], pre_i[sb]);
                } else {
                    result = Item(suf_v[sa], suf_i[sa]);
                }
            } else {
                result = combine(Item(suf_v[sa], suf_i[sa]), Item(pre_v[sb], pre_i[sb]));
            }
        }
        let at = (oo * out_len() + o) * inner() + ii;
        if (scale_mode() == 1u) {
            result.v = result.v / divisor_of_flat(at);
        }
        dst[at] = result.v;
        if (pool_kind() == 0u) {
            dst_index[at] = result.i;
        }
    }
}
