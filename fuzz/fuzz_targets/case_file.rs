//! Arbitrary bytes (and, from the seed corpus, mutated valid case files) through the `eval`
//! reader: it returns cases or an error naming the problem, and never panics or hangs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use origami_cases::case_file::read_cases;
use std::io::Write;

fuzz_target!(|bytes: &[u8]| {
    let path = std::env::temp_dir().join(format!("origami-fuzz-case-{}.h5", std::process::id()));
    let mut f = std::fs::File::create(&path).expect("temp file");
    f.write_all(bytes).expect("temp file");
    drop(f);
    if let Ok(cases) = read_cases(&path) {
        // A file that reads must also validate every case (read_cases promises it).
        for c in &cases {
            c.validate().expect("read_cases returned an invalid case");
        }
    }
});
