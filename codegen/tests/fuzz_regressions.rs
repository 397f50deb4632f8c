//! Every input the fuzzer once broke the generator with (codegen/fuzz/regressions/), and
//! the repository's specs with bytes cut off at every line, go through the whole
//! pipeline: generated, or refused with positioned spec errors.

use std::path::Path;

fn inputs(dir: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    out.sort();
    out
}

#[test]
fn crashes_found_by_the_fuzzer_stay_fixed() {
    let inputs = inputs("fuzz/regressions");
    assert!(!inputs.is_empty());
    for (name, data) in inputs {
        if let Err(bug) = codegen::generate_untrusted(&data) {
            panic!("{name}: {bug}");
        }
    }
}

#[test]
fn specs_cut_short_are_generated_or_explained() {
    for (name, data) in inputs("tests/fixtures") {
        let text = String::from_utf8(data).unwrap();
        let mut cut = 0;
        for line in text.split_inclusive('\n') {
            cut += line.len();
            if let Err(bug) = codegen::generate_untrusted(&text.as_bytes()[..cut]) {
                panic!("{name} cut after byte {cut}: {bug}");
            }
        }
    }
}
