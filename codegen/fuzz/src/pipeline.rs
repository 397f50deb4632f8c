//! Arbitrary bytes through parse, lower and every emitter: a panic or an internal
//! error (anything but a generated system or positioned spec errors) is a crash.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        if let Err(bug) = codegen::generate_untrusted(data) {
            panic!("{bug}");
        }
    });
}
